#!/usr/bin/env python3
"""The most INT8 can gain on this CPU in ONNX Runtime: one 3x3 convolution of ResNet-18's sizes
(64 channels at 64x64 ... 512 at 8x8, as at 256 px input), alone in a graph, in FP32 and as ONNX
Runtime's own QDQ INT8 (u8 activations, per-channel s8 weights), timed at batch 32 on 2
threads. A whole network cannot gain more than its convolutions do.

  int8_conv_bound.py [BATCH] [THREADS]

prints a Markdown table: images/s of each precision and their ratio, per layer size.
"""
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


def conv_model(c, hw, path):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((c, c, 3, 3)) * np.sqrt(2 / (9 * c))).astype(np.float32)
    b = np.zeros(c, np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["y"], ["z"]),
        ],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, hw, hw])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", c, hw, hw])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


class Data(CalibrationDataReader):
    def __init__(self, x):
        self.batches = iter([{"x": x[i : i + 8]} for i in range(0, len(x), 8)])

    def get_next(self):
        return next(self.batches, None)


def images_per_sec(path, x, batch, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    sess.run(None, {"x": x[:batch]})
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        sess.run(None, {"x": x[:batch]})
        runs.append(batch / (time.perf_counter() - start))
    return statistics.median(runs)


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    rng = np.random.default_rng(1)
    print(f"ONNX Runtime {ort.__version__}, batch {batch}, {threads} threads\n")
    print("| 3x3 convolution | FP32 images/s | INT8 images/s | INT8 / FP32 |")
    print("| --- | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for c, hw in [(64, 64), (128, 32), (256, 16), (512, 8)]:
            fp32, int8 = os.path.join(tmp, "fp32.onnx"), os.path.join(tmp, "int8.onnx")
            conv_model(c, hw, fp32)
            x = np.maximum(rng.standard_normal((batch, c, hw, hw)), 0).astype(np.float32)
            quantize_static(
                fp32,
                int8,
                Data(x[:32]),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
            f = images_per_sec(fp32, x, batch, threads)
            q = images_per_sec(int8, x, batch, threads)
            print(f"| {c} channels at {hw}x{hw} | {f:.0f} | {q:.0f} | {q / f:.2f} |")


if __name__ == "__main__":
    main()
