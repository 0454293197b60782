#!/usr/bin/env python3
"""scikit-image side of the SSIM peer check (runtime/tests/ssim_peer.rs).

  ssim_peer.py --data-range R [--shape C,H,W | --shape H,W] A B
      A and B are .npy files, or raw little-endian float32 files (then --shape is required,
      channel-first for C > 1). Prints skimage's SSIM of A and B.
  ssim_peer.py --jobs JOBS.json
      JOBS.json is a list of {"a": path, "b": path, "shape": [..], "data_range": R};
      prints the list of SSIMs as JSON (one Python start-up for many pairs).

The reference computation, the one the Rust implementation reproduces:
  structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                        use_sample_covariance=False, data_range=R,
                        channel_axis=0 when there are channels)
on float64 copies of the inputs (float32 input would make skimage compute in float32).
"""
import argparse
import json

import numpy as np
from skimage.metrics import structural_similarity


def load(path, shape):
    if str(path).endswith(".npy"):
        return np.load(path).astype(np.float64)
    if shape is None:
        raise SystemExit(f"{path}: raw float32 input needs --shape")
    return np.fromfile(path, dtype="<f4").reshape(shape).astype(np.float64)


def ssim(a_path, b_path, shape, data_range):
    a, b = load(a_path, shape), load(b_path, shape)
    channel_axis = 0 if a.ndim == 3 else None
    return float(structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=data_range, channel_axis=channel_axis))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-range", type=float)
    p.add_argument("--shape", type=lambda s: tuple(int(x) for x in s.split(",")))
    p.add_argument("--jobs")
    p.add_argument("files", nargs="*")
    args = p.parse_args()
    if args.jobs:
        with open(args.jobs) as f:
            jobs = json.load(f)
        print(json.dumps([ssim(j["a"], j["b"], tuple(j["shape"]), j["data_range"]) for j in jobs]))
    else:
        if len(args.files) != 2 or args.data_range is None:
            p.error("give --data-range and two files (or --jobs)")
        print(repr(ssim(args.files[0], args.files[1], args.shape, args.data_range)))


if __name__ == "__main__":
    main()
