#!/usr/bin/env python3
"""Where ONNX Runtime spends its time on an ONNX file, and which layout operators its graph
optimisations leave in: the profile behind the INT8 notes of `benches/README.md`.

  ort_profile.py MODEL RAW_F32 N C H W BATCH THREADS

RAW_F32 holds at least N preprocessed images (little-endian float32, N x C x H x W; `bench precision`
leaves its input as OUT/input.f32). Runs one warm-up pass and one profiled pass over them and
prints a Markdown table: the share of kernel time per operator type, how many of each run, and
the layout operators (Transpose, ReorderInput, ReorderOutput) in the optimised graph.
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

LAYOUT = ("Transpose", "ReorderInput", "ReorderOutput")


def main():
    model = sys.argv[1]
    n, c, h, w, batch, threads = map(int, sys.argv[3:9])
    x = np.fromfile(sys.argv[2], dtype="<f4", count=n * c * h * w).reshape(n, c, h, w)
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        for i in range(0, n, batch):
            sess.run(None, {name: x[i : i + batch]})
        optimized = onnx.load(opts.optimized_model_filepath)
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "profile")
        opts.optimized_model_filepath = ""
        sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        sess.run(None, {name: x[:batch]})  # warm-up
        for i in range(0, n, batch):
            sess.run(None, {name: x[i : i + batch]})
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    time = collections.Counter()
    calls = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            time[op] += e.get("dur", 0)
            calls[op] += 1
    total = sum(time.values()) or 1
    in_graph = collections.Counter(node.op_type for node in optimized.graph.node)
    print(f"| operator | share of kernel time | calls | in optimised graph |")
    print(f"| --- | ---: | ---: | ---: |")
    for op, t in time.most_common():
        print(f"| {op} | {100 * t / total:.1f}% | {calls[op]} | {in_graph.get(op, 0)} |")
    layout = ", ".join(f"{op} {in_graph.get(op, 0)}" for op in LAYOUT)
    print(f"\nlayout operators in the optimised graph: {layout}")


if __name__ == "__main__":
    main()
