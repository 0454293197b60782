//! A minimal HTTP/1.1 client over loopback for the `serve` tests, the browser test's WebDriver
//! calls and the load benchmark: one request per connection (`Connection: close`), so the
//! benchmark measures the server and not a client library, and no HTTP crate is needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Child;

/// Reads the address from the first line `serve` prints (`serving http://ADDRESS`); panics
/// with the server's stderr when it did not start.
pub fn served_address(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("serve's stdout is piped"))
        .read_line(&mut line)
        .expect("serve prints its address");
    match line.trim().strip_prefix("serving http://") {
        Some(address) => address.to_string(),
        None => {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("serve did not start: {line:?} {err}");
        }
    }
}

/// One request to `address`; the status and the body. A body the server refuses may be
/// answered before it is all sent: the answer is still read.
pub fn request(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    exchange(address, method, path, None, body)
}

/// [`request`] with a JSON body (as WebDriver wants), answered with JSON.
pub fn json(
    address: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let body = serde_json::to_vec(body).unwrap();
    let (status, answer) = exchange(address, method, path, Some("application/json"), &body);
    let value = serde_json::from_slice(&answer)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}: {}", String::from_utf8_lossy(&answer)));
    (status, value)
}

fn exchange(
    address: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(address).expect("the server accepts connections");
    // a server that stops answering fails the test instead of hanging it
    s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .unwrap();
    let kind = content_type.map_or(String::new(), |t| format!("Content-Type: {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{kind}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("the request head is sent");
    let _ = s.write_all(body);
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("the answer is read");
        if n == 0 || line == "\r\n" {
            break;
        }
        head += &line.to_ascii_lowercase();
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let mut out = Vec::new();
    // some servers keep the connection open despite `Connection: close`: read what the head
    // announces, not to the end of the stream
    match length {
        Some(n) => {
            out.resize(n, 0);
            reader
                .read_exact(&mut out)
                .expect("the answer's body is read");
        }
        None if head.contains("transfer-encoding: chunked") => loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a chunk size");
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .expect("a hexadecimal chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("a chunk");
            if size == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..size]);
        },
        None => {
            reader.read_to_end(&mut out).expect("the answer is read");
        }
    }
    (status, out)
}
