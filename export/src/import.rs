//! ONNX initialisers back into candle tensors, for transfer learning (`deepgalaxy train
//! --init-from model.onnx`): the trainer loads those whose name and shape match its model.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use deepgalaxy_core::{Error, Result};
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::TensorProto;

use crate::onnx::read;

/// Every float (FLOAT, FLOAT16) initialiser of an ONNX file as an `f32` tensor, by name.
/// Integer initialisers (shapes, quantisation zero points) are not weights and are left out.
pub fn initializers(path: &Path) -> Result<HashMap<String, Tensor>> {
    let model = read(path)?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::invalid(path, "the ONNX model has no graph"))?;
    let mut out = HashMap::new();
    for t in &graph.initializer {
        if let Some(values) = floats(t)
            .map_err(|what| Error::invalid(path, format!("initialiser `{}`: {what}", t.name)))?
        {
            let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
            let tensor = Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)
                .map_err(|e| Error::invalid(path, format!("initialiser `{}`: {e}", t.name)))?;
            out.insert(t.name.clone(), tensor);
        }
    }
    Ok(out)
}

pub(crate) fn floats(t: &TensorProto) -> std::result::Result<Option<Vec<f32>>, String> {
    let n: i64 = t.dims.iter().product();
    let values = if t.data_type == DataType::FLOAT as i32 {
        if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        } else {
            t.float_data.clone()
        }
    } else if t.data_type == DataType::FLOAT16 as i32 {
        let bits: Vec<u16> = if !t.raw_data.is_empty() {
            t.raw_data
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect()
        } else {
            t.int32_data.iter().map(|&v| v as u16).collect()
        };
        bits.into_iter()
            .map(|b| half::f16::from_bits(b).to_f32())
            .collect()
    } else {
        return Ok(None);
    };
    if values.len() as i64 != n {
        return Err(format!("{} values for shape {:?}", values.len(), t.dims));
    }
    Ok(Some(values))
}
