//! The tract backend: pure Rust, no system library.
//!
//! The ONNX file is parsed once; a plan is compiled and optimised per batch size on first use
//! (tract optimises best with concrete shapes) and shared by the worker threads, each of which
//! runs it single-threaded on its own state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::Result;
use deepgalaxy_core::Error;
use tract_onnx::prelude::{
    tvec, Datum, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable,
    IntoTensor, TValue, TVec, TypedRunnableModel,
};

use super::{Backend, BackendKind, Tensor};

/// tract with one compiled plan per batch size.
pub struct TractBackend {
    path: PathBuf,
    threads: usize,
    model: InferenceModel,
    plans: Mutex<HashMap<Vec<usize>, Arc<TypedRunnableModel>>>,
}

impl TractBackend {
    /// Parses the ONNX file at `path`; `threads` batches may then run at once.
    pub fn open(path: &Path, threads: usize) -> Result<TractBackend> {
        TractBackend::from_bytes(path, &deepgalaxy_core::io::read_bytes(path)?, threads)
    }

    /// Parses the ONNX model `bytes` read from `path` (named in errors).
    pub fn from_bytes(path: &Path, bytes: &[u8], threads: usize) -> Result<TractBackend> {
        let onnx = tract_onnx::onnx().with_ignore_value_info(true);
        let model = onnx
            .model_for_read(&mut &*bytes)
            .map_err(|e| crate::Error::backend(path, "tract cannot load this ONNX model", e))?;
        if model.input_outlets().map(|i| i.len()).unwrap_or(0) != 1 {
            return Err(Error::invalid(path, "the model must have exactly one input").into());
        }
        Ok(TractBackend {
            path: path.to_path_buf(),
            threads,
            model,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The plan for inputs of `shape`, compiled on first use.
    fn plan(&self, shape: &[usize]) -> Result<Arc<TypedRunnableModel>> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = plans.get(shape) {
            return Ok(plan.clone());
        }
        let fact = InferenceFact::dt_shape(f32::datum_type(), shape);
        let plan = self
            .model
            .clone()
            .with_input_fact(0, fact)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| {
                crate::Error::backend(
                    &self.path,
                    format!("tract cannot compile the model for input {shape:?}"),
                    e,
                )
            })?;
        plans.insert(shape.to_vec(), plan.clone());
        Ok(plan)
    }
}

impl Backend for TractBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Tract
    }

    fn workers(&self) -> usize {
        self.threads
    }

    fn run(&self, input: &Tensor) -> Result<Vec<Tensor>> {
        let plan = self.plan(&input.shape)?;
        let value = tract_onnx::prelude::Tensor::from_shape(&input.shape, &input.data)
            .map_err(|e| crate::Error::backend(&self.path, "tract cannot take this input", e))?;
        let inputs: TVec<TValue> = tvec!(value.into());
        let outputs = plan
            .run(inputs)
            .map_err(|e| crate::Error::backend(&self.path, "tract run failed", e))?;
        outputs
            .into_iter()
            .map(|v| {
                let t = v
                    .into_tensor()
                    .cast_to::<f32>()
                    .map_err(|e| crate::Error::backend(&self.path, "output is not numeric", e))?
                    .into_owned();
                let array = t
                    .into_plain_array::<f32>()
                    .map_err(|e| crate::Error::backend(&self.path, "output is not an array", e))?;
                let shape = array.shape().to_vec();
                Tensor::new(shape, array.into_iter().collect())
            })
            .collect()
    }
}
