//! `deepgalaxy serve` in a real headless browser (feature `browser`: Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver with plain HTTP: the page loads with its model
//! and latent map, a Hubble image is chosen in its file input, and the predicted time, the
//! class chart, the gallery of neighbours and the query's star on the map appear, and clicking
//! a point of the map shows that library image. With
//! `DEEPGALAXY_SCREENSHOT=FILE` the page's screenshot is written there (docs/serve.png).
//!
//! The server runs the shipped model over a library of one simulated merger (2 cameras)
//! indexed by it, so the page shows what a user sees.
#![cfg(all(feature = "browser", feature = "full"))]

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{deepgalaxy, http, root};
use serde_json::{json, Value};

/// Kills a child process when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Driver {
    address: String,
    session: String,
}

impl Driver {
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, answer) = http::json(&self.address, method, &path, &body);
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    fn elements(&self, css: &str) -> Vec<String> {
        let found = self.call(
            "POST",
            "/elements",
            json!({"using": "css selector", "value": css}),
        );
        found
            .as_array()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .iter()
            .map(|e| match e.as_object().and_then(|o| o.values().next()) {
                Some(Value::String(id)) => id.clone(),
                _ => panic!("{css}: {e} is not an element reference"),
            })
            .collect()
    }

    /// The rendered text of the first element matching `css`.
    fn text(&self, css: &str) -> String {
        let found = self.elements(css);
        assert!(!found.is_empty(), "no {css}");
        self.call("GET", &format!("/element/{}/text", found[0]), json!({}))
            .as_str()
            .unwrap()
            .to_string()
    }

    fn script(&self, js: &str) -> Value {
        self.call("POST", "/execute/sync", json!({"script": js, "args": []}))
    }

    /// Waits up to a minute for `ready` to hold, checking twice a second.
    fn wait(&self, what: &str, ready: impl Fn(&Driver) -> bool) {
        let start = Instant::now();
        while !ready(self) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{what}: not within a minute; page errors: {}",
                self.script("return document.getElementById('error').textContent")
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_hubble_image_dropped_on_the_page_shows_its_time_and_neighbours() {
    let tmp = tempfile::tempdir().unwrap();
    let sims = tmp.path().join("sims");
    let a = std::ffi::OsStr::new;
    let (ok, _, err) = deepgalaxy(&[
        a("simulate"),
        a("--out"),
        sims.as_os_str(),
        a("--grid"),
        a("small"),
        a("--mergers"),
        a("1"),
        a("--particles"),
        a("2000"),
        a("--size"),
        a("64"),
        a("--cameras"),
        a("2"),
    ]);
    assert!(ok, "simulate: {err}");
    let index = sims.join("library.idx");
    let (ok, _, err) = deepgalaxy(&[
        a("index"),
        a("--data"),
        sims.join("catalog.csv").as_os_str(),
        a("--output"),
        index.as_os_str(),
    ]);
    assert!(ok, "index: {err}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_deepgalaxy"))
        .args([
            a("serve"),
            a("--index"),
            index.as_os_str(),
            a("--port"),
            a("0"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let served = http::served_address(&mut server);
    let _server = Killed(server);

    let port = free_port();
    let driver = Killed(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (Debian: apt-get install chromium chromium-driver)"),
    );
    let address = format!("127.0.0.1:{port}");
    let start = Instant::now();
    while std::net::TcpStream::connect(&address).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, session) = http::json(
        &address,
        "POST",
        "/session",
        &json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1700"]
        }}}}),
    );
    assert_eq!(status, 200, "{session}");
    let d = Driver {
        address,
        session: session["value"]["sessionId"].as_str().unwrap().to_string(),
    };

    d.call("POST", "/url", json!({"url": format!("http://{served}/")}));
    d.wait("the model line", |d| {
        d.text("#model").contains("library of")
    });
    let points = d.script("return library === null ? 0 : library.points.length");
    assert_eq!(points, json!(142), "71 snapshots x 2 cameras on the map");

    let hubble = root().join("fixtures/observations/hst/hst_arp142.jpg");
    let input = d.elements("#file");
    d.call(
        "POST",
        &format!("/element/{}/value", input[0]),
        json!({"text": hubble.display().to_string()}),
    );
    d.wait("the gallery", |d| {
        d.elements("#gallery figure.neighbour").len() == 6
    });
    let time = d.text("#time");
    assert!(time.contains("Myr") && time.contains('±'), "{time}");
    let bars = d.elements("#chart rect").len();
    let classes = d.script("return document.querySelectorAll('#chart rect').length");
    assert!(bars > 1 && json!(bars) == classes, "{bars} {classes}");
    let caption = d.text("#gallery figure.neighbour figcaption");
    assert!(
        caption.contains("SSIM") && caption.contains("class"),
        "{caption}"
    );
    assert_eq!(d.script("return query !== null"), json!(true));
    assert_eq!(d.text("#error"), "");

    // clicking a point of the map shows that library image
    let picked = d.script(
        "const c = document.getElementById('map'); const b = c.getBoundingClientRect(); \
         const p = library.points[70]; const [x, y] = mapTransform(c)(p.xy); \
         pick({clientX: b.left + x * b.width / c.width, clientY: b.top + y * b.height / c.height}); \
         return p.id",
    );
    d.wait("the picked library image", |d| {
        d.script("return document.getElementById('picked-image').naturalWidth > 0") == json!(true)
    });
    let caption = d.text("#picked-caption");
    assert!(
        caption.starts_with("s_") && caption.contains("Myr"),
        "{caption} ({picked})"
    );

    let shot = d.call("GET", "/screenshot", json!({}));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot.as_str().unwrap())
        .unwrap();
    assert_eq!(&png[1..4], b"PNG");
    if let Some(path) = std::env::var_os("DEEPGALAXY_SCREENSHOT") {
        std::fs::write(Path::new(&path), &png).unwrap();
    }
    let (status, _) = http::json(
        &d.address,
        "DELETE",
        &format!("/session/{}", d.session),
        &json!({}),
    );
    assert_eq!(status, 200);
    drop(driver);
}
