//! Checkpoints: a folder with `model.safetensors` (parameters and batch-norm statistics),
//! `spec.json` (the ModelSpec, with the preprocessing), `optimizer.safetensors` and
//! `state.json` (configuration, progress, random-generator position, metrics history).
//!
//! Written atomically: the files go to a temporary folder next to the checkpoint, which then
//! replaces the old one by rename (the old one is kept as `checkpoint.old` until the new one is
//! in place, and [`load`] falls back to it if a crash struck between the two renames).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use deepgalaxy_models::{Graph, ModelSpec, Weights};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::metrics::EvalMetrics;
use crate::optim::Optimizer;
use crate::split::Split;
use deepgalaxy_core::{Error, Result};

/// The position of the training's random generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    /// ChaCha8 seed.
    pub seed: [u8; 32],
    /// Stream.
    pub stream: u64,
    /// Word position (as text: JSON numbers cannot hold a u128).
    pub word_pos: String,
}

impl RngState {
    /// Captures a generator's position.
    pub fn of(rng: &ChaCha8Rng) -> RngState {
        RngState {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator at the captured position.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| Error::setting("checkpoint", "bad random-generator position"))?;
        let mut rng = ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// One epoch's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: u64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training top-1 accuracy (on augmented batches, in training mode).
    pub train_top1: f64,
    /// Training throughput.
    pub images_per_sec: f64,
    /// Validation metrics (none when nothing is held out).
    pub val: Option<EvalMetrics>,
}

/// Progress of a run, saved in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Version of the deepgalaxy tool that wrote it.
    pub tool_version: String,
    /// The run's configuration.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    /// Batches of the current epoch already done (non-zero when stopped mid-epoch).
    pub batch_in_epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// The training generator's position.
    pub rng: RngState,
    /// The split used.
    pub split: Split,
    /// SHA-256 of the training data file.
    pub training_digest: String,
    /// Time in Myr of each class.
    pub class_t_myr: Vec<f64>,
    /// Per-epoch metrics.
    pub history: Vec<EpochRecord>,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The architecture.
    pub spec: ModelSpec,
    /// Its graph.
    pub graph: Graph,
    /// The weights.
    pub weights: Weights,
    /// Raw optimizer state tensors (restored by the trainer with the configured kind).
    pub optimizer: HashMap<String, Tensor>,
    /// Progress.
    pub state: TrainState,
}

/// The checkpoint folder inside a run's output folder.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn save_tensors(path: &Path, tensors: impl IntoIterator<Item = (String, Tensor)>) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, path)
        .map_err(|e| Error::invalid(path, format!("cannot write safetensors: {e}")))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid(path, format!("cannot serialise: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Saves a checkpoint atomically into `dir`.
pub fn save(
    dir: &Path,
    spec: &ModelSpec,
    weights: &Weights,
    optimizer: &Optimizer,
    state: &TrainState,
) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".checkpoint-")
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    save_tensors(&tmp.path().join("model.safetensors"), weights.tensors())?;
    save_tensors(
        &tmp.path().join("optimizer.safetensors"),
        optimizer.tensors(),
    )?;
    write_json(&tmp.path().join("spec.json"), spec)?;
    write_json(&tmp.path().join("state.json"), state)?;
    let old = dir.with_extension("old");
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    let fresh = tmp.keep();
    // temporary folders are created private (0700); a checkpoint is an ordinary folder
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&fresh, e))?;
    }
    std::fs::rename(&fresh, dir).map_err(|e| Error::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(path, format!("malformed: {e}")))
}

fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::invalid(path, "missing from the checkpoint"));
    }
    candle_core::safetensors::load(path, device)
        .map_err(|e| Error::invalid(path, format!("not a readable safetensors file: {e}")))
}

/// The folder to read for the checkpoint `dir`: `dir` itself, or its `.old` twin if an
/// interrupted save left only that.
fn resolve(dir: &Path) -> Result<PathBuf> {
    let old = dir.with_extension("old");
    let dir = if !dir.exists() && old.exists() {
        old
    } else {
        dir.to_path_buf()
    };
    if !dir.join("state.json").is_file() {
        return Err(Error::invalid(
            &dir,
            "no checkpoint here (is this a training output folder?)",
        ));
    }
    Ok(dir)
}

/// Reads only the progress and configuration (`state.json`) of the checkpoint in `dir`, e.g.
/// to find the catalog it was trained on.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    read_json(&resolve(dir)?.join("state.json"))
}

/// Loads the checkpoint in `dir` (or its `.old` twin, if an interrupted save left only that).
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let dir = resolve(dir)?;
    let dir = dir.as_path();
    let spec: ModelSpec = read_json(&dir.join("spec.json"))?;
    let graph =
        Graph::build(&spec).map_err(|e| Error::invalid(dir.join("spec.json"), e.to_string()))?;
    let model_path = dir.join("model.safetensors");
    let weights = Weights::from_tensors(
        &graph,
        load_tensors(&model_path, device)?,
        &model_path,
        device,
    )?;
    let optimizer = load_tensors(&dir.join("optimizer.safetensors"), device)?;
    let state: TrainState = read_json(&dir.join("state.json"))?;
    Ok(Checkpoint {
        spec,
        graph,
        weights,
        optimizer,
        state,
    })
}
