#!/usr/bin/env python3
"""h5py side of the HDF5 peer checks (tests/hdf5_peers.rs).

  h5_peer.py dump FILE            print every dataset of FILE as JSON (shape, dtype, values)
  h5_peer.py write-original FILE  write a small file in the original DeepGalaxy layout and print
                                  the labels the original code would give, as JSON
  h5_peer.py write-mismatched FILE  a group whose camera has 4 images but 3 times
"""
import json
import sys

import h5py
import numpy as np


def dump(path):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            out[name] = {"shape": list(data.shape), "dtype": str(data.dtype),
                         "values": [float(v) for v in np.asarray(data, dtype=np.float64).ravel()]}

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    print(json.dumps(out))


def write_original(path):
    rng = np.random.default_rng(7)
    records = []
    with h5py.File(path, "w") as f:
        # float16 images, as output_bw_512.hdf5 stores them; times not starting at 0
        for size, mass in [(0.5, 1), (1.25, 0.75)]:
            g = f.create_group(f"s_{size}_m_{mass}")
            for cam in range(2):
                imgs = rng.random((4, 6, 5)).astype(np.float16)
                t = np.array([12.0, 17.5, 33.0, 360.0]) + 3.0 * cam + (10.0 if size > 1 else 0.0)
                g.create_dataset(f"images_camera_{cam:02d}", data=imgs)
                g.create_dataset(f"t_myr_camera_{cam:02d}", data=t)
                for i, ti in enumerate(t):
                    records.append({"simulation": g.name.strip("/"), "camera": cam, "snapshot": i,
                                    "t_myr": float(ti), "first_value": float(imgs[i].ravel()[0])})
        f.create_group("metadata")  # not a simulation group: must be ignored
    # the original code's labels: int(t / 5) - min over the file
    classes = [int(r["t_myr"] / 5) for r in records]
    lo = min(classes)
    for r, c in zip(records, classes):
        r["label"] = c - lo
    print(json.dumps(records))


def write_mismatched(path):
    with h5py.File(path, "w") as f:
        g = f.create_group("s_1_m_1")
        g.create_dataset("images_camera_00", data=np.zeros((4, 6, 5), dtype=np.uint8))
        g.create_dataset("t_myr_camera_00", data=np.arange(3.0))


{"dump": dump, "write-original": write_original, "write-mismatched": write_mismatched}[sys.argv[1]](sys.argv[2])
