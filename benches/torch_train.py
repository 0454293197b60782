#!/usr/bin/env python3
"""PyTorch peer for benches/train_throughput.rs: trains the *same* network, built from the
graph JSON our Rust code writes (the node list of deepgalaxy-models' Graph), on CPU.

Usage: torch_train.py GRAPH.json BATCH THREADS STEPS   -> prints images/s (one number)

Every node maps to one PyTorch operation with the same parameter shapes; the loss is the same
(cross-entropy + FCAE MSE + VAE MSE + 1e-3 KL) and the optimizer is Adam.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

graph_path, batch, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
graph = json.load(open(graph_path))
nodes, outs = graph["nodes"], graph["outputs"]

params, buffers = {}, {}


def param(name, shape, fan_in=None, ones=False):
    if name not in params:
        if ones:
            t = torch.ones(shape)
        elif fan_in is None:
            t = torch.zeros(shape)
        else:
            b = 1.0 / fan_in ** 0.5
            t = torch.empty(shape).uniform_(-b, b)
        params[name] = t.requires_grad_(True)
    return params[name]


def run(x, need):
    vals = {}
    for i, node in enumerate(nodes):
        if not need[i]:
            continue
        op = node["op"]
        ins = [vals[j] for j in node["inputs"]]
        kind = op if isinstance(op, str) else next(iter(op))
        a = None if isinstance(op, str) else op[kind]
        if kind == "Image":
            y = x
        elif kind == "Normalize":
            m = torch.tensor(a["mean"]).view(1, -1, 1, 1)
            s = torch.tensor(a["std"]).view(1, -1, 1, 1)
            y = (ins[0] - m) / s
        elif kind == "Conv":
            k, g = a["kernel"], a["groups"]
            w = param(a["param"] + ".weight", (a["c_out"], a["c_in"] // g, k, k), a["c_in"] // g * k * k)
            b = param(a["param"] + ".bias", (a["c_out"],), a["c_in"] // g * k * k) if a["bias"] else None
            y = F.conv2d(ins[0], w, b, stride=a["stride"], padding=a["padding"], groups=g)
        elif kind == "BatchNorm":
            c = a["channels"]
            w = param(a["param"] + ".weight", (c,), ones=True)
            b = param(a["param"] + ".bias", (c,))
            rm = buffers.setdefault(a["param"] + ".rm", torch.zeros(c))
            rv = buffers.setdefault(a["param"] + ".rv", torch.ones(c))
            y = F.batch_norm(ins[0], rm, rv, w, b, training=True)
        elif kind == "Relu":
            y = F.relu(ins[0])
        elif kind == "Silu":
            y = F.silu(ins[0])
        elif kind == "Sigmoid":
            y = torch.sigmoid(ins[0])
        elif kind == "MaxPool2":
            y = F.max_pool2d(ins[0], 2)
        elif kind == "GlobalAvgPool":
            y = ins[0].mean(dim=(2, 3), keepdim=True)
        elif kind == "Flatten":
            y = ins[0].flatten(1)
        elif kind == "Linear":
            w = param(a["param"] + ".weight", (a["outputs"], a["inputs"]), a["inputs"])
            b = param(a["param"] + ".bias", (a["outputs"],), a["inputs"])
            y = F.linear(ins[0], w, b)
        elif kind == "Dropout":
            y = F.dropout(ins[0], a["p"], training=True)
        elif kind == "Upsample2":
            y = F.interpolate(ins[0], scale_factor=2, mode="nearest")
        elif kind == "Add":
            y = ins[0] + ins[1]
        elif kind == "Mul":
            y = ins[0] * ins[1]
        elif kind == "Reshape":
            y = ins[0].reshape(ins[0].shape[0], *a["shape"])
        elif kind == "Softmax":
            y = torch.softmax(ins[0], -1)
        elif kind == "Sample":
            y = ins[0] + torch.randn_like(ins[0]) * torch.exp(0.5 * ins[1])
        else:
            raise SystemExit(f"unknown op {kind}")
        vals[i] = y
    return vals


targets = [outs["logits"], outs["reconstruction"], outs["mu"], outs["logvar"], outs["vae_reconstruction"]]
need = [False] * len(nodes)
for t in targets:
    need[t] = True
for i in range(len(nodes) - 1, -1, -1):
    if need[i]:
        for j in nodes[i]["inputs"]:
            need[j] = True

c, s = nodes[outs["image"]]["shape"][0], nodes[outs["image"]]["shape"][1]
classes = nodes[outs["logits"]]["shape"][0]
x = torch.rand(batch, c, s, s)
y = torch.randint(0, classes, (batch,))
run(x, need)  # create the parameters
opt = torch.optim.Adam(list(params.values()), lr=1e-3)


def step():
    v = run(x, need)
    mu, lv = v[outs["mu"]], v[outs["logvar"]]
    kl = (-0.5 * (1 + lv - mu.pow(2) - lv.exp()).sum(1)).mean()
    loss = (F.cross_entropy(v[outs["logits"]], y) + F.mse_loss(v[outs["reconstruction"]], x)
            + F.mse_loss(v[outs["vae_reconstruction"]], x) + 1e-3 * kl)
    opt.zero_grad()
    loss.backward()
    opt.step()


for _ in range(2):
    step()
t0 = time.perf_counter()
for _ in range(steps):
    step()
print(batch * steps / (time.perf_counter() - t0))
