# SPDX-License-Identifier: GPL-3.0-or-later
"""Training the generative head (``vital-inverse train-flow``).

The predictor stays frozen: every training clip's condition (encoder
embedding + the regression heads' outputs, ``flow.condition``) is
computed once (cached under DATA/cache/), so an epoch is only the small
velocity network's work and trains on a CPU in minutes. Pairs are
(preset, note); the target is the preset's ``FlowCodec`` vector. AdamW,
warm-up + cosine, gradient clipping; the epoch with the lowest validation
flow loss (fixed noise, so epochs compare) is saved into ``--out`` as
``flow.safetensors`` + ``flow.json``. ``--device auto`` trains on a GPU
when torch sees one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import dataset as ds
from ..flow import FlowCodec, FlowConfig, VelocityNet, condition, encoder_fingerprint, flow_loss, resolve_device, save_flow
from ..params import default_space


@dataclass
class FlowTrainConfig:
    data: str
    out: str
    checkpoint: str | None = None  # the predictor whose frozen encoder conditions the flow (default: shipped)
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    clip: float = 1.0
    hidden: int = 384
    blocks: int = 4
    dropout: float = 0.1
    cond_dropout: float = 0.1
    emb_noise: float = 0.1  # Gaussian noise on embeddings, in units of each dimension's std (train only)
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    threads: int | None = None
    time_limit_minutes: float | None = None
    one_hot_ordinals: bool = True  # FlowCodec layout (see flow.FlowCodec)


def embeddings(predictor, data: ds.LoadedData, cache_dir: Path | None, device: torch.device,
               batch: int = 256) -> np.ndarray:
    """The flow's condition (``flow.condition``) of every stored clip: (P, N, C) float16, computed once with the
    frozen predictor and cached on disk (keyed by the encoder's fingerprint and the items)."""
    model = predictor.model
    if model.cfg.encoder != "compact":
        raise ds.DatasetError("train-flow conditions on the compact encoder's embedding; use a compact checkpoint")
    key = f"cond-{encoder_fingerprint(model)}-{len(data.index)}-{int(data.index.sum())}"
    path = cache_dir / f"{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        return np.load(path)
    model = model.to(device).eval()
    P, N = data.mel.shape[:2]
    parts = []
    for n, note in enumerate(data.meta.notes):
        for s in range(0, P, batch):
            x = torch.from_numpy(data.mel[s:s + batch, n].astype(np.float32)).to(device)
            c = condition(model, x, torch.full((len(x),), int(note), device=device))
            parts.append((n, s, c.cpu().numpy().astype(np.float16)))
    model.to("cpu")
    out = np.zeros((P, N, parts[0][2].shape[1]), np.float16)
    for n, s, c in parts:
        out[s:s + len(c), n] = c
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


class FlowPairs:
    """(preset, note) training pairs on the device: targets (P, V), embeddings (P, N, D), notes (N,)."""

    def __init__(self, codec: FlowCodec, data: ds.LoadedData, emb: np.ndarray, device: torch.device) -> None:
        self.x1 = torch.from_numpy(codec.encode_arrays(data.continuous, data.categorical)).to(device)
        self.emb = torch.from_numpy(emb.astype(np.float32)).to(device)
        self.notes = torch.tensor(data.meta.notes, device=device)
        P, N = emb.shape[:2]
        self.pairs = torch.stack(torch.meshgrid(torch.arange(P), torch.arange(N), indexing="ij"), -1).reshape(-1, 2).to(device)

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, rows: torch.Tensor):
        p, n = self.pairs[rows, 0], self.pairs[rows, 1]
        return self.x1[p], self.emb[p, n], self.notes[n]


def train_flow(cfg: FlowTrainConfig, progress: bool = True) -> dict:
    """Train the generative head and save the best epoch into ``cfg.out``; returns its record."""
    from tqdm import tqdm

    from ..predict import PresetPredictor

    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    space = default_space()
    predictor = PresetPredictor.load(cfg.checkpoint, space)
    train_data = ds.load(cfg.data, ("train",), space_hash=space.hash, limit=cfg.limit)
    val_data = ds.load(cfg.data, ("val",), space_hash=space.hash)
    cache = Path(cfg.data) / "cache"
    t0 = time.perf_counter()
    train_emb = embeddings(predictor, train_data, cache, device)
    val_emb = embeddings(predictor, val_data, cache, device)
    emb_seconds = time.perf_counter() - t0
    codec = FlowCodec(space, cfg.one_hot_ordinals)
    fcfg = FlowConfig(n_continuous=codec.n_continuous, categorical_sizes=codec.sizes, cond_dim=train_emb.shape[-1],
                      hidden=cfg.hidden, blocks=cfg.blocks, dropout=cfg.dropout, cond_dropout=cfg.cond_dropout,
                      one_hot_ordinals=cfg.one_hot_ordinals,
                      space_hash=space.hash, encoder_fingerprint=encoder_fingerprint(predictor.model))
    net = VelocityNet(fcfg).to(device)
    train_p, val_p = FlowPairs(codec, train_data, train_emb, device), FlowPairs(codec, val_data, val_emb, device)
    emb_std = train_p.emb.reshape(-1, train_p.emb.shape[-1]).std(0)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_p) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps, total))
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    best: dict = {"val_loss": math.inf}
    history = []
    for epoch in range(cfg.epochs):
        te = time.perf_counter()
        net.train()
        order = torch.randperm(len(train_p), generator=gen, device=device)
        tot = 0.0
        bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"flow epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress, leave=False)
        for b in bar:
            x1, emb, note = train_p.batch(order[b:b + cfg.batch_size])
            if cfg.emb_noise > 0:
                emb = emb + cfg.emb_noise * emb_std * torch.randn(emb.shape, generator=gen, device=device)
            loss = flow_loss(net, x1, emb, note, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
            opt.step()
            sched.step()
            tot += loss.item() * len(x1)
        bar.close()
        row = {"epoch": epoch + 1, "train_loss": tot / len(train_p), "val_loss": validation_loss(net, val_p, cfg.seed),
               "epoch_seconds": time.perf_counter() - te}
        history.append(row)
        improved = row["val_loss"] < best["val_loss"]
        if improved:
            best = dict(row)
            record = _record(cfg, train_data, val_data, best, history, time.perf_counter() - t_start, emb_seconds, device, net)
            record["data"]["encoder_data_seed"] = predictor.info.data.get("seed")
            save_flow(cfg.out, net, record)
            update_card(Path(cfg.out), record, fcfg)
        print(f"flow epoch {epoch + 1}: train {row['train_loss']:.4f} val {row['val_loss']:.4f}"
              f"{' *' if improved else ''} ({row['epoch_seconds']:.0f} s)", flush=True)
        if cfg.time_limit_minutes and (time.perf_counter() - t_start) / 60 > cfg.time_limit_minutes:
            print(f"time limit reached after epoch {epoch + 1}")
            break
    return best


@torch.no_grad()
def validation_loss(net: VelocityNet, pairs: FlowPairs, seed: int, batch: int = 1024, repeats: int = 2) -> float:
    """Flow loss over the validation pairs with fixed noise and times (comparable across epochs)."""
    net.eval()
    gen = torch.Generator(device=pairs.x1.device)
    gen.manual_seed(seed + 1)
    tot, n = 0.0, 0
    for _ in range(repeats):
        for s in range(0, len(pairs), batch):
            x1, emb, note = pairs.batch(torch.arange(s, min(s + batch, len(pairs)), device=pairs.x1.device))
            tot += float(flow_loss(net, x1, emb, note, gen)) * len(x1)
            n += len(x1)
    return tot / max(1, n)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


def _record(cfg: FlowTrainConfig, train_data: ds.LoadedData, val_data: ds.LoadedData, best: dict, history: list,
            seconds: float, emb_seconds: float, device: torch.device, net: VelocityNet) -> dict:
    meta = train_data.meta
    return {
        "data": {"dataset": str(cfg.data), "seed": meta.seed, "notes": list(meta.notes),
                 "train_presets": int(train_data.n_presets), "val_presets": int(val_data.n_presets),
                 "train_examples": int(train_data.n_presets * len(meta.notes))},
        "best": {k: float(v) for k, v in best.items()},
        "history": history,
        "seconds": round(seconds, 1),
        "embedding_seconds": round(emb_seconds, 1),
        "device": str(device),
        "parameters": int(sum(p.numel() for p in net.parameters())),
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out",)},
    }


CARD_HEADING = "## Generative head"


def card_section(record: dict, fcfg: FlowConfig) -> str:
    """The model card's section on the generative head (what it is, its data and training)."""
    d, b = record["data"], record["best"]
    seen = ("presets the encoder never saw: its training data had seed {}".format(d.get("encoder_data_seed"))
            if d.get("encoder_data_seed") != d["seed"] else "the presets the encoder was trained on")
    return f"""{CARD_HEADING}
`flow.safetensors` + `flow.json`: a conditional flow-matching model (rectified flow, {record['parameters']:,}
parameters, residual MLP {fcfg.blocks} x {fcfg.hidden}) over the ParamSpace vector (continuous values in [-1, 1],
each categorical a one-hot block in {{-1, 1}}, decoded by arg-max), conditioned on this checkpoint's frozen encoder
embedding and regression-head outputs for the clip plus its MIDI note. `predict(..., generative=K)` (`vital-inverse
match --generative K`) adds K samples ({fcfg.steps} Heun steps, started part-way along the flow from the clip's
nearest training presets) to the candidates, which are all rendered and the closest kept (off by default: the
same renders spent on retrieved presets match better, see BENCHMARKS.md); its beliefs over options rank refinement's categorical
moves (`moves.py`). Trained on {d['train_examples']} examples
({d['train_presets']} synthetic presets of dataset seed {d['seed']}, notes {d['notes']}; {seen}), best validation flow loss {b.get('val_loss', float('nan')):.4f} at epoch {int(b.get('epoch', 0))},
{record['seconds'] / 60:.1f} minutes on {record['device']}. Scores: BENCHMARKS.md ("Generative head").

"""


def update_card(folder: Path, record: dict, fcfg: FlowConfig) -> None:
    """Put (or replace) the generative head's section in the checkpoint's README.md, before "## Limits"."""
    from .. import checkpoint as ckpt

    path = folder / ckpt.CARD
    text = path.read_text() if path.exists() else ""
    if CARD_HEADING in text:
        head, _, rest = text.partition(CARD_HEADING)
        nxt = rest.find("\n## ")
        text = head + (rest[nxt + 1:] if nxt >= 0 else "")
    section = card_section(record, fcfg)
    text = text.replace("## Limits", section + "## Limits", 1) if "## Limits" in text else text.rstrip() + "\n\n" + section
    path.write_text(text)
