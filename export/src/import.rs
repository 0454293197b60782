//! ONNX initialisers back into candle tensors, for transfer learning (`deepgalaxy train
//! --init-from model.onnx`): the trainer loads those whose name and shape match its model.

use std::collections::HashMap;
use std::path::Path;

use crate::Result;
use candle_core::{Device, Tensor};
use deepgalaxy_core::Error;
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
            // `floats` checked the dimensions: none is negative
            let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            let tensor = Tensor::from_vec(values, dims.as_slice(), &Device::Cpu)
                .map_err(|e| Error::invalid(path, format!("initialiser `{}`: {e}", t.name)))?;
            out.insert(t.name.clone(), tensor);
        }
    }
    Ok(out)
}

/// The values of a FLOAT or FLOAT16 tensor as `f32` (`None` for other types); an error when
/// the shape is invalid or does not match the number of values.
pub(crate) fn floats(t: &TensorProto) -> std::result::Result<Option<Vec<f32>>, String> {
    let n = deepgalaxy_core::element_count(&t.dims)?;
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
    if values.len() != n {
        return Err(format!("{} values for shape {:?}", values.len(), t.dims));
    }
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{GraphProto, ModelProto};

    /// A model file whose only initialiser is a FLOAT tensor of shape `dims` without values.
    fn model_with_dims(dir: &Path, dims: Vec<i64>) -> std::path::PathBuf {
        let model = ModelProto {
            graph: Some(GraphProto {
                initializer: vec![TensorProto {
                    name: "encoder.w".into(),
                    dims,
                    data_type: DataType::FLOAT as i32,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let path = dir.join("huge.onnx");
        crate::onnx::write(&path, &model).unwrap();
        path
    }

    /// `[2^32, 2^32]` has 2^64 elements: the product wrapped to 0 in `i64`, so a tensor without
    /// values passed as matching its shape and `inspect` counted 0 parameters.
    #[test]
    fn shapes_whose_size_overflows_are_errors_naming_file_and_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = model_with_dims(dir.path(), vec![1 << 32, 1 << 32]);
        for e in [
            initializers(&path).unwrap_err().to_string(),
            deepgalaxy_runtime::inference::summary::inspect_onnx(&path)
                .unwrap_err()
                .to_string(),
        ] {
            assert!(
                e.contains("huge.onnx")
                    && e.contains("`encoder.w`")
                    && e.contains("[4294967296, 4294967296] has more elements than can be counted"),
                "{e}"
            );
        }
        let path = model_with_dims(dir.path(), vec![-1, -1]);
        let e = initializers(&path).unwrap_err().to_string();
        assert!(e.contains("`encoder.w`: negative dimension -1"), "{e}");
    }
}
