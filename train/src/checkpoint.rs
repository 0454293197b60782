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
use crate::Result;
use deepgalaxy_core::card::{ModelCard, Simulations, CARD_VERSION};
use deepgalaxy_core::io::sync_dir;
use deepgalaxy_core::time::TimeTarget;
use deepgalaxy_core::Error;

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
    /// What the class times are measured from (checkpoints written before targets existed:
    /// the snapshot label).
    #[serde(default)]
    pub target: TimeTarget,
    /// Per-epoch metrics.
    pub history: Vec<EpochRecord>,
    /// How the configuration's paths are stored (see [`PATHS_RELATIVE_TO_RUN`]; 0 in files
    /// written before it existed). In memory the paths are always usable as they are.
    #[serde(default)]
    pub paths: u32,
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

impl Checkpoint {
    /// The model card of this checkpoint, as export writes it into every ONNX file:
    /// architecture, preprocessing, class times and their target, training-data digest, split,
    /// the simulations of each part and the last validation metrics.
    pub fn card(&self) -> Result<ModelCard> {
        let ck = self;
        let s = &ck.state;
        let mut metrics = std::collections::BTreeMap::new();
        if let Some(v) = s.history.last().and_then(|r| r.val.as_ref()) {
            for (k, x) in [
                ("val_top1", v.top1),
                ("val_within1", v.within1),
                ("val_within2", v.within2),
                ("val_mae_myr", v.mae_myr),
                ("val_median_abs_myr", v.median_abs_myr),
                ("val_within_10_myr", v.within_10_myr),
                ("val_within_25_myr", v.within_25_myr),
                ("val_coverage_1sigma", v.coverage_1sigma),
                ("val_recon_mse", v.recon_mse),
            ] {
                metrics.insert(k.to_string(), x);
            }
        }
        let card = ModelCard {
            card_version: CARD_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").into(),
            model_spec: serde_json::to_value(&ck.spec)
                .map_err(|e| Error::setting("model card", e.to_string()))?,
            preprocess: ck.spec.preprocess.clone(),
            num_classes: ck.spec.num_classes,
            class_t_myr: s.class_t_myr.clone(),
            target: s.target,
            time_sigma_scale: s
                .history
                .last()
                .and_then(|r| r.val.as_ref())
                .and_then(|v| v.sigma_scale),
            simulations: Some(Simulations {
                train: s.split.train_simulations.clone(),
                validation: s.split.val_simulations.clone(),
                test: s.split.test_simulations.clone(),
            }),
            latent_dim: Some(ck.spec.latent_dim),
            training_digest: Some(s.training_digest.clone()),
            split: Some(s.split.kind.name().into()),
            metrics,
            precision: "fp32".into(),
            quantization: None,
            test: None,
        };
        card.validate()?;
        Ok(card)
    }
}

/// The checkpoint folder inside a run's output folder.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn save_tensors(path: &Path, tensors: impl IntoIterator<Item = (String, Tensor)>) -> Result<()> {
    let map: HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, path)
        .map_err(|e| Error::invalid(path, format!("cannot write safetensors: {e}")))?;
    sync_file(path)
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid(path, format!("cannot serialise: {e}")))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))?;
    sync_file(path)
}

/// Forces a written file's data to disk, so that the folder renamed into place later cannot
/// hold an empty or partial file after a crash.
fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
        .map_err(Into::into)
}

/// The version of `state.json`'s path convention: from 2 on, `config.data`, `config.out` and
/// `config.init_from` are stored relative to the run folder (the checkpoint's parent), so a
/// run folder can be moved or copied and resumed from any working directory. Files written
/// before (no `paths` field) hold the paths as they were given on the command line.
pub const PATHS_RELATIVE_TO_RUN: u32 = 2;

/// Saves a checkpoint atomically into `dir` (normally `<run>/checkpoint`).
///
/// The files are written and synced in a temporary folder beside `dir`; then the complete
/// checkpoint already at `dir` (if any) becomes `dir.old`, the new folder is renamed to `dir`
/// and `dir.old` is removed, with the parent folder synced after every rename. A process
/// killed at any moment leaves `dir` or `dir.old` complete, and [`load`] reads whichever is
/// there. Temporary folders left by a killed save are removed.
pub fn save(
    dir: &Path,
    spec: &ModelSpec,
    weights: &Weights,
    optimizer: &Optimizer,
    state: &TrainState,
) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    deepgalaxy_core::io::create_dir_all(parent)?;
    remove_stale_temporaries(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    save_tensors(&tmp.path().join("model.safetensors"), weights.tensors())?;
    save_tensors(
        &tmp.path().join("optimizer.safetensors"),
        optimizer.tensors(),
    )?;
    write_json(&tmp.path().join("spec.json"), spec)?;
    write_json(
        &tmp.path().join("state.json"),
        &relative_paths(state, parent)?,
    )?;
    sync_dir(tmp.path())?;
    let old = dir.with_extension("old");
    // `dir` exists only as a complete checkpoint (it is only ever made by the rename below);
    // when it is missing, a save was interrupted between the renames and `old` is the only
    // complete checkpoint: it stays until the new one is in place
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        sync_dir(parent)?;
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
    sync_dir(parent)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        sync_dir(parent)?;
    }
    Ok(())
}

/// Prefix of the temporary folders a save writes into.
const TEMP_PREFIX: &str = ".checkpoint-";

/// Removes the temporary folders of saves that were killed before their rename (they hold
/// partial checkpoints nobody reads).
fn remove_stale_temporaries(parent: &Path) -> Result<()> {
    let entries = std::fs::read_dir(parent).map_err(|e| Error::io(parent, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let stale = name.to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX))
            && entry.file_type().is_ok_and(|t| t.is_dir());
        if stale {
            let path = entry.path();
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// `state` with its configuration's paths relative to the run folder `run` (see
/// [`PATHS_RELATIVE_TO_RUN`]).
fn relative_paths(state: &TrainState, run: &Path) -> Result<TrainState> {
    let run_abs = std::fs::canonicalize(run).map_err(|e| Error::io(run, e))?;
    let rel = |p: &Path| -> PathBuf {
        // a path that cannot be resolved now (e.g. the data was removed) is kept as given
        match std::fs::canonicalize(p) {
            Ok(abs) => relative_to(&abs, &run_abs),
            Err(_) => p.to_path_buf(),
        }
    };
    let mut s = state.clone();
    s.paths = PATHS_RELATIVE_TO_RUN;
    s.config.data = rel(&state.config.data);
    s.config.out = PathBuf::from(".");
    s.config.init_from = state.config.init_from.as_deref().map(rel);
    Ok(s)
}

/// `path` relative to `base` (both absolute and free of `.`/`..`), climbing with `..` where
/// they part; `path` itself when they share no root (another drive on Windows).
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (p, b): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return path.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Undoes [`relative_paths`]: the configuration's paths resolved against the run folder
/// `run`, and `out` set to `run` itself (wherever the run folder is now).
fn resolve_paths(mut state: TrainState, run: &Path) -> TrainState {
    if state.paths >= PATHS_RELATIVE_TO_RUN {
        state.config.data = run.join(&state.config.data);
        state.config.init_from = state.config.init_from.map(|p| run.join(p));
    }
    state.config.out = run.to_path_buf();
    state
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(path, format!("malformed: {e}")).into())
}

fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(Error::invalid(path, "missing from the checkpoint").into());
    }
    candle_core::safetensors::load(path, device)
        .map_err(|e| Error::invalid(path, format!("not a readable safetensors file: {e}")))
        .map_err(Into::into)
}

/// Refuses to start a new run in `out` when it already holds one, naming it: its checkpoint
/// would be replaced at the first save.
pub fn refuse_existing_run(out: &Path) -> Result<()> {
    let dir = checkpoint_dir(out);
    if !(dir.exists() || dir.with_extension("old").exists()) {
        return Ok(());
    }
    let progress = match load_state(&dir) {
        Ok(s) => format!(
            " (epoch {} of {}, step {})",
            s.epoch, s.config.epochs, s.step
        ),
        Err(_) => String::new(),
    };
    Err(Error::invalid(
        out,
        format!(
            "already holds a training run{progress}; continue it with --resume, or pass --overwrite to replace it"
        ),
    ).into())
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
        )
        .into());
    }
    Ok(dir)
}

/// The run folder a checkpoint folder belongs to (its parent).
fn run_folder(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads only the progress and configuration (`state.json`) of the checkpoint in `dir`, e.g.
/// to find the catalog it was trained on; its paths are resolved against the run folder.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let state = read_json(&resolve(dir)?.join("state.json"))?;
    Ok(resolve_paths(state, &run_folder(dir)))
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
    let state_path = dir.join("state.json");
    let state: TrainState = read_json(&state_path)?;
    if state.class_t_myr.len() != spec.num_classes {
        return Err(Error::invalid(
            &state_path,
            format!(
                "class_t_myr holds {} times for {} classes",
                state.class_t_myr.len(),
                spec.num_classes
            ),
        )
        .into());
    }
    let state = resolve_paths(state, &run_folder(dir));
    Ok(Checkpoint {
        spec,
        graph,
        weights,
        optimizer,
        state,
    })
}
