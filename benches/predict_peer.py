#!/usr/bin/env python3
"""Python onnxruntime as the peer row of `deepgalaxy bench`: the same ONNX file, batch size and
thread count, timed the same way (median of repeats after one warm-up pass).

  predict_peer.py files MODEL FILE_LIST SIZE BATCH THREADS REPEATS
      end to end from image files: decode (Pillow), centre square crop, bilinear resize to
      SIZE, scale to [0, 1], then inference
  predict_peer.py tensor MODEL RAW_F32 N C H W BATCH THREADS REPEATS
      inference only, on N preprocessed images stored as little-endian float32

prints JSON {"images_per_sec": median, "runs": [...], "latencies_ms": [per batch, last run]}.
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def load(path, size):
    from PIL import Image

    img = Image.open(path).convert("F")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    img = img.resize((size, size), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32)
    lo, hi = float(a.min()), float(a.max())
    return ((a - lo) / (hi - lo if hi > lo else 1.0))[None]


def timed(n, batch, run_batch, repeats):
    runs, latencies = [], []
    run_batch(0, min(batch, n))  # warm-up
    for _ in range(repeats):
        latencies = []
        start = time.perf_counter()
        for i in range(0, n, batch):
            t = time.perf_counter()
            run_batch(i, min(i + batch, n))
            latencies.append(1e3 * (time.perf_counter() - t))
        runs.append(n / (time.perf_counter() - start))
    return {"images_per_sec": statistics.median(runs), "runs": runs, "latencies_ms": latencies}


def main():
    mode, model = sys.argv[1], sys.argv[2]
    if mode == "files":
        files = [l.strip() for l in open(sys.argv[3]) if l.strip()]
        size, batch, threads, repeats = map(int, sys.argv[4:8])
        sess = session(model, threads)
        name = sess.get_inputs()[0].name

        def run_batch(a, b):
            x = np.stack([load(f, size) for f in files[a:b]])
            sess.run(None, {name: x})

        print(json.dumps(timed(len(files), batch, run_batch, repeats)))
    elif mode == "tensor":
        raw = sys.argv[3]
        n, c, h, w, batch, threads, repeats = map(int, sys.argv[4:11])
        x = np.fromfile(raw, dtype="<f4").reshape(n, c, h, w)
        sess = session(model, threads)
        name = sess.get_inputs()[0].name
        print(json.dumps(timed(n, batch, lambda a, b: sess.run(None, {name: x[a:b]}), repeats)))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
