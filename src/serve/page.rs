//! The web page, compiled into the binary so that `serve` needs no network and no files
//! beside the program: one HTML page, its script and its style sheet.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::api::Shared;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// `/`, `/app.js` and `/style.css`.
pub fn routes() -> Router<Shared> {
    let asset = |kind: &'static str, body: &'static str| {
        get(move || async move { ([(header::CONTENT_TYPE, kind)], body).into_response() })
    };
    Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX))
        .route("/app.js", asset("text/javascript; charset=utf-8", SCRIPT))
        .route("/style.css", asset("text/css; charset=utf-8", STYLE))
}
