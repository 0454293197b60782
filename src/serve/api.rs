//! The JSON API behind the page (docs/serve.md lists it with examples). Uploads are the raw
//! image bytes as the request body (PNG, JPEG, TIFF or FITS, told apart by their first bytes),
//! `?name=` naming them in answers and messages. Every failure is a JSON `{"error": ...}`
//! with a status saying whose it is (400 a bad upload or parameter, 404 no such entry or
//! route, 413 an upload over the limit, 500 the server's own), and the server keeps serving.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use deepgalaxy_runtime::library::explore::Explorer;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

/// Most neighbours a search may ask for.
pub const MAX_K: usize = 100;

/// What every request shares: the explorer, and the permits that bound how many inferences
/// run at once (the backend's workers), so a burst of uploads queues instead of growing
/// memory.
pub struct Served {
    explorer: Explorer<'static>,
    permits: Semaphore,
}

impl Served {
    /// `explorer`, running at most `workers` inferences at once.
    pub fn new(explorer: Explorer<'static>, workers: usize) -> Served {
        Served {
            explorer,
            permits: Semaphore::new(workers.max(1)),
        }
    }
}

/// The state every handler receives.
pub type Shared = Arc<Served>;

/// A failed request: its status and message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.0, Json(Body { error: self.1 })).into_response()
    }
}

fn bad(message: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::BAD_REQUEST, message.to_string())
}

fn internal(message: impl std::fmt::Display) -> Failure {
    Failure(StatusCode::INTERNAL_SERVER_ERROR, message.to_string())
}

/// The routes: the page, the API under `/api`, and a JSON 404 for anything else. Uploads
/// larger than `max_upload` bytes are refused with 413.
pub fn router(state: Shared, max_upload: usize) -> Router {
    Router::new()
        .route("/api/model", get(model))
        .route("/api/predict", post(predict))
        .route("/api/search", post(search))
        .route("/api/library", get(library))
        .route("/api/library/{index}", get(entry))
        .route("/api/library/{index}/image", get(entry_image))
        .merge(super::page::routes())
        .fallback(|| async { Failure(StatusCode::NOT_FOUND, "no such page or API route".into()) })
        .layer(DefaultBodyLimit::max(max_upload))
        .with_state(state)
}

/// `?name=` of an upload (default "upload").
#[derive(Debug, Deserialize)]
struct Upload {
    name: Option<String>,
    k: Option<usize>,
}

impl Upload {
    fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| "upload".into())
    }
}

/// The upload's bytes and parameters, or the JSON error saying what is wrong with them.
fn upload(
    query: Result<Query<Upload>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Upload, Bytes), Failure> {
    let Query(query) = query.map_err(|e| bad(format!("bad parameters: {}", e.body_text())))?;
    let body = body.map_err(|e| {
        let status = e.status();
        let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "{}: the upload is larger than the server accepts (--max-upload-mb)",
                query.name()
            )
        } else {
            format!("{}: {}", query.name(), e.body_text())
        };
        Failure(status, text)
    })?;
    if body.is_empty() {
        return Err(bad(format!(
            "{}: the upload is empty (send the image's bytes as the request body)",
            query.name()
        )));
    }
    Ok((query, body))
}

/// Runs `work` on a blocking thread once an inference permit is free.
async fn infer<T: Send + 'static>(
    state: &Shared,
    work: impl FnOnce(&Explorer<'static>) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let _permit = state.permits.acquire().await.map_err(internal)?;
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || work(&state.explorer))
        .await
        .map_err(|e| internal(format!("the request's worker failed: {e}")))?
}

/// `GET /api/model`: the model and library being served.
async fn model(State(state): State<Shared>) -> Response {
    let model = state.explorer.model();
    let card = model.card();
    Json(serde_json::json!({
        "model": model.path().display().to_string(),
        "digest": model.digest(),
        "target": card.target,
        "class_t_myr": card.class_t_myr,
        "latent_dim": card.latent_dim,
        "image_size": card.preprocess.size,
        "library_size": state.explorer.map().points.len(),
    }))
    .into_response()
}

/// `POST /api/predict?name=N`: the predicted time with every class probability, and the image
/// as the model saw it (`preview_png`, a data URL).
async fn predict(
    State(state): State<Shared>,
    query: Result<Query<Upload>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let (upload, bytes) = upload(query, body)?;
    let name = upload.name();
    let predicted = infer(&state, move |e| e.predict(&name, &bytes).map_err(bad)).await?;
    let mut json = serde_json::to_value(&predicted).map_err(internal)?;
    json["preview_png"] = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&predicted.preview)
    )
    .into();
    Ok(Json(json).into_response())
}

/// `POST /api/search?name=N&k=K`: the K (default 6) nearest library images with distance and
/// SSIM, the kNN time estimate, and the query's place on the latent map.
async fn search(
    State(state): State<Shared>,
    query: Result<Query<Upload>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Failure> {
    let (upload, bytes) = upload(query, body)?;
    let k = upload.k.unwrap_or(6);
    if !(1..=MAX_K).contains(&k) {
        return Err(bad(format!("k = {k} is not in 1..={MAX_K}")));
    }
    let name = upload.name();
    let found = infer(&state, move |e| e.search(&name, &bytes, k).map_err(bad)).await?;
    let mut json = serde_json::to_value(&found).map_err(internal)?;
    if let Some(neighbours) = json["recommendation"]["neighbours"].as_array_mut() {
        for n in neighbours {
            let image = format!("/api/library/{}/image", n["index"]);
            n["image"] = image.into();
        }
    }
    Ok(Json(json).into_response())
}

/// `GET /api/library`: every entry on the 2-D latent map.
async fn library(State(state): State<Shared>) -> Response {
    Json(state.explorer.map()).into_response()
}

fn entry_index(
    state: &Shared,
    index: Result<Path<usize>, PathRejection>,
) -> Result<usize, Failure> {
    let Path(i) = index.map_err(|e| bad(format!("bad library entry: {}", e.body_text())))?;
    if i >= state.explorer.map().points.len() {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!(
                "{i} is not an entry of the library (it has {})",
                state.explorer.map().points.len()
            ),
        ));
    }
    Ok(i)
}

/// `GET /api/library/{i}`: entry i with its file.
async fn entry(
    State(state): State<Shared>,
    index: Result<Path<usize>, PathRejection>,
) -> Result<Response, Failure> {
    let i = entry_index(&state, index)?;
    let file = state.explorer.entry_file(i).map_err(internal)?;
    let mut json = serde_json::to_value(&state.explorer.map().points[i]).map_err(internal)?;
    json["file"] = file.display().to_string().into();
    json["image"] = format!("/api/library/{i}/image").into();
    Ok(Json(json).into_response())
}

/// `GET /api/library/{i}/image`: entry i's image as the model saw it, as a PNG.
async fn entry_image(
    State(state): State<Shared>,
    index: Result<Path<usize>, PathRejection>,
) -> Result<Response, Failure> {
    let i = entry_index(&state, index)?;
    let bytes = infer(&state, move |e| e.entry_png(i).map_err(internal)).await?;
    Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
}
