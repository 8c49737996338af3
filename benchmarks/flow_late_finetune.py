# SPDX-License-Identifier: GPL-3.0-or-later
"""Experiment (BENCHMARKS 12, session 5; not the product): finetune the shipped flow on late times only (t ~ U(T_LO, 1)), all of data/synth-s3's train split,
to test whether the flow's field near the data can be made accurate enough for edits of neighbours.

    python benchmarks/flow_late_finetune.py 0.7 14 runs/ckpt-late     # t_lo, minutes, output checkpoint folder

The output folder is a copy of the shipped checkpoint with the finetuned flow; score it with
``bench_generative.py --checkpoint runs/ckpt-late --anchors 32 --t0 0.9 --retrieval-wide 32``.
"""
import math
import shutil
import sys
import time
from pathlib import Path
import torch
from vital_inverse.params import default_space
from vital_inverse.predict import PresetPredictor
from vital_inverse.data import dataset as ds
from vital_inverse.flow import FlowCodec, save_flow
from vital_inverse.training.flow_train import FlowPairs, embeddings

T_LO, MINUTES, OUT = float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
torch.set_num_threads(1); torch.manual_seed(0)
space = default_space()
pred = PresetPredictor.load(None, space)
net = pred.flow
train = ds.load("data/synth-s3", ("train",), space_hash=space.hash)
val = ds.load("data/synth-s3", ("val",), space_hash=space.hash)
print("train presets", train.n_presets, flush=True)
cache = Path("data/synth-s3/cache")
codec = FlowCodec.for_net(net, space)
tp = FlowPairs(codec, train, embeddings(pred, train, cache, torch.device("cpu")), torch.device("cpu"))
vp = FlowPairs(codec, val, embeddings(pred, val, cache, torch.device("cpu")), torch.device("cpu"))
emb_std = tp.emb.reshape(-1, tp.emb.shape[-1]).std(0)
gen = torch.Generator().manual_seed(0)

def loss_fn(x1, emb, note, train=True):
    b = len(x1)
    x0 = torch.randn(x1.shape, generator=gen)
    t = T_LO + (1 - T_LO) * torch.rand(b, generator=gen)
    xt = (1 - t[:, None]) * x0 + t[:, None] * x1
    if train:
        drop = torch.rand(b, generator=gen) < net.cfg.cond_dropout
        emb = torch.where(drop[:, None], net.null.expand(b, -1), emb)
    return ((net(xt, t, emb, note) - (x1 - x0)) ** 2).mean()

def val_loss():
    net.eval(); tot = 0
    with torch.no_grad():
        for s in range(0, len(vp), 1024):
            rows = torch.arange(s, min(s + 1024, len(vp)))
            x1, e, n = vp.batch(rows); tot += float(loss_fn(x1, e, n, False)) * len(rows)
    return tot / len(vp)

opt = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=1e-4)
print("val before", val_loss(), flush=True)
t_start = time.perf_counter(); best = math.inf; ep = 0
shutil.copytree("checkpoints/default", OUT, dirs_exist_ok=True)
while (time.perf_counter() - t_start) / 60 < MINUTES:
    net.train(); ep += 1
    order = torch.randperm(len(tp), generator=gen)
    for b in range(0, len(order), 256):
        x1, e, n = tp.batch(order[b:b + 256])
        e = e + 0.1 * emb_std * torch.randn(e.shape, generator=gen)
        l = loss_fn(x1, e, n)
        opt.zero_grad(); l.backward(); torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0); opt.step()
    v = val_loss()
    print(f"epoch {ep} val(late) {v:.4f} ({time.perf_counter()-t_start:.0f} s)", flush=True)
    if v < best:
        best = v; save_flow(OUT, net, {"experiment": f"late-time finetune t~U({T_LO},1)", "val_late": v, "epoch": ep})
