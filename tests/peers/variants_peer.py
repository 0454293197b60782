#!/usr/bin/env python3
"""Peer for the precision variants (tests/variants.rs): checks every model file with onnx's
full checker and runs it with ONNX Runtime (CPU).

  variants_peer.py RAW_F32_FILE N C H W MODEL [MODEL ...]

RAW_F32_FILE holds N x C x H x W little-endian float32 images. A model whose input is `image`
gets them; one whose input is `latent` (decoder) gets N deterministic latents
0.5 * sin(0.37 * k). Prints JSON {model path: {"outputs": {name: flat values}, "ms_per_image":
t, "ops": [operator types]}}; every output must be float32 whatever the precision inside.
"""
import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort

raw = sys.argv[1]
shape = [int(d) for d in sys.argv[2:6]]
images = np.fromfile(raw, dtype="<f4").reshape(shape)
result = {}
for path in sys.argv[6:]:
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    if inp.name == "image":
        x = images
    else:
        dim = inp.shape[1]
        x = (0.5 * np.sin(0.37 * np.arange(shape[0] * dim))).astype(np.float32).reshape(shape[0], dim)
    names = [o.name for o in sess.get_outputs()]
    sess.run(names, {inp.name: x[:1]})  # warm-up
    start = time.perf_counter()
    outs = sess.run(names, {inp.name: x})
    ms = 1000.0 * (time.perf_counter() - start) / shape[0]
    for name, value in zip(names, outs):
        if value.dtype != np.float32:
            raise SystemExit(f"{path}: output {name} is {value.dtype}, not float32")
    result[path] = {
        "outputs": {n: [float(v) for v in o.ravel()] for n, o in zip(names, outs)},
        "ms_per_image": ms,
        "ops": sorted({n.op_type for n in model.graph.node}),
    }
print(json.dumps(result))
