#!/usr/bin/env python3
"""ONNX Runtime's own INT8 quantizer as the peer of `deepgalaxy bench precision`: static
quantisation of the same FP32 file with the same calibration images, in the configuration ONNX
Runtime recommends for x86 CPUs (QDQ, per-channel symmetric int8 weights, uint8 activations,
min-max calibration), after its pre-processing (shape inference and graph optimisation). The
Softmax stays in float, as in ours: 8-bit probabilities of 71 classes are mostly 0 and tie, so
the top class would be lost (measured: 0% agreement with FP32 when ONNX Runtime quantises it).

  quantize_peer.py MODEL_FP32 RAW_F32 N C H W OUT

RAW_F32 holds the N preprocessed calibration images (little-endian float32, N x C x H x W).
Writes the quantised model to OUT and prints JSON {"seconds": ..., "onnxruntime": version}.
"""
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Images(CalibrationDataReader):
    """The calibration images, one batch of 16 at a time."""

    def __init__(self, name, x):
        self.batches = iter([{name: x[i : i + 16]} for i in range(0, len(x), 16)])

    def get_next(self):
        return next(self.batches, None)


def main():
    model, raw = sys.argv[1], sys.argv[2]
    n, c, h, w = map(int, sys.argv[3:7])
    out = sys.argv[7]
    x = np.fromfile(raw, dtype="<f4").reshape(n, c, h, w)
    name = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"]).get_inputs()[0].name
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(model, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared,
            out,
            Images(name, x),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=[n.name for n in onnx.load(prepared).graph.node if n.op_type == "Softmax"],
        )
    print(json.dumps({"seconds": time.perf_counter() - start, "onnxruntime": onnxruntime.__version__}))


if __name__ == "__main__":
    main()
