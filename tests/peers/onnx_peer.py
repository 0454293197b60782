#!/usr/bin/env python3
"""ONNX peer for export/tests/onnx_parity.rs: checks a model with onnx's full checker and runs
it with ONNX Runtime.

  onnx_peer.py MODEL INPUT_NAME RAW_F32_FILE DIM [DIM ...]

prints JSON {output name: flat list of values} for every output.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

path, input_name, raw = sys.argv[1], sys.argv[2], sys.argv[3]
shape = [int(d) for d in sys.argv[4:]]
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
x = np.fromfile(raw, dtype="<f4").reshape(shape)
opts = ort.SessionOptions()
opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
names = [o.name for o in sess.get_outputs()]
outs = sess.run(names, {input_name: x})
print(json.dumps({n: [float(v) for v in o.ravel()] for n, o in zip(names, outs)}))
