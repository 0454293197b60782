//! `deepgalaxy serve`: a local web page over a model and a latent library. Drop an image and
//! see its predicted time with the class probabilities, its nearest simulated mergers, and its
//! place on the library's latent map. The page (compiled into the binary, `page`) talks to a
//! JSON API (`api`, documented in docs/serve.md); the answers themselves are
//! `deepgalaxy_runtime::library::explore`. axum on tokio serves it: a well-kept HTTP stack,
//! where requests run concurrently and inference runs on blocking threads, at most as many at
//! once as the backend has workers.

mod api;
mod page;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use deepgalaxy_runtime::library::explore::Explorer;
use deepgalaxy_runtime::library::index::LatentIndex;

use crate::run_args::{in_range, ModelArgs};

/// Serve a web page for predicting and searching uploaded images.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The latent library to search (from `deepgalaxy index`, embedded by the same model).
    #[arg(long)]
    pub index: PathBuf,
    /// The address to listen on: this machine only by default. Another address (e.g.
    /// 0.0.0.0) lets anyone who can reach this machine upload images and read the library.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port (0: any free port; the address is printed on the first line of output).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Largest upload accepted, in MB (1 to 1024).
    #[arg(long, default_value_t = 64, value_parser = in_range(1, 1024))]
    pub max_upload_mb: usize,
    /// Read library images wherever the index's entries say, even outside the index's folder.
    /// Off by default: an index from someone else could otherwise make the server read and
    /// send any image on this machine.
    #[arg(long)]
    pub allow_paths_outside_index: bool,
}

/// Runs `serve` until the process is interrupted.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let model = args.model.open()?;
    // the server lives until the process ends: the index and its path are leaked once so that
    // the explorer can borrow them for the whole run
    let index_path: &'static std::path::Path = Box::leak(args.index.clone().into_boxed_path());
    let index: &'static LatentIndex = Box::leak(Box::new(LatentIndex::load(
        index_path,
        Some(model.latent_dim()?),
    )?));
    if !args.allow_paths_outside_index {
        index.check_files_inside(index_path).context(
            "refusing to serve library images outside the index's folder \
             (if you trust this index, pass --allow-paths-outside-index)",
        )?;
    }
    let workers = model.backend().workers().max(1);
    let explorer = Explorer::new(model, index, index_path)
        .with_context(|| format!("cannot serve the library {}", index_path.display()))?;
    let state = api::Served::new(explorer, workers);
    let app = api::router(Arc::new(state), args.max_upload_mb << 20);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the server's runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let address = listener.local_addr()?;
        // the first line of output, flushed: tests and scripts read the port from it
        println!("serving http://{address}");
        use std::io::Write;
        std::io::stdout().flush()?;
        eprintln!(
            "library {} ({} images); press Ctrl-C to stop",
            index_path.display(),
            index.len()
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the server stopped")
    })
}
