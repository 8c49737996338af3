# SPDX-License-Identifier: GPL-3.0-or-later
"""Training the predictor (``vital-inverse train``).

AdamW with a warm-up + cosine schedule, gradient clipping, resumable
(``train_state.pt`` beside the checkpoint), a progress bar, per-epoch
metrics (CSV, and TensorBoard when installed), and a validation that
renders the predictions for a fixed subset of validation presets through
Vita and scores them (MSS, MRSTFT) against the presets' own renders: the
best checkpoint is chosen by that audio score, not by the parameter loss.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..data import dataset as ds
from ..params import ParamSpace, default_space
from ..predict import model_config_for, values_from_outputs
from ..preset import Preset
from .losses import Targets, categorical_accuracy, loss_fn, make_targets


@dataclass
class TrainConfig:
    data: str
    out: str
    encoder: str = "compact"
    epochs: int = 12
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    clip: float = 1.0
    ce_weight: float = 0.5
    seed: int = 0
    val_audio_items: int = 32  # validation presets rendered each epoch
    limit: int | None = None  # use at most this many training presets (tiny runs)
    importance: str | None = None  # default: DATA/importance.json when present
    ast_source: str | None = None  # AST weights: a folder or Hub id (default: the model in the config)
    workers: int | None = None
    threads: int | None = None
    time_limit_minutes: float | None = None  # stop cleanly after this long (resume continues)
    channels: tuple[int, ...] | None = None  # compact encoder widths (default: ModelConfig's)
    embed_dim: int | None = None
    hidden: int | None = None
    dropout: float | None = None


class TrainingError(ds.DatasetError):
    pass


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


class Inputs:
    """Network inputs per (preset, note): log-mels, or cached AST layer states."""

    def __init__(self, data: ds.LoadedData, model, encoder: str, cache_dir: Path | None = None) -> None:
        self.encoder = encoder
        if encoder == "compact":
            self.x = data.mel  # (P, N, M, T) float16
        else:
            self.x = ast_cache(model, data, cache_dir)  # (P, N, L, D) float16

    def batch(self, p: np.ndarray, n: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Inputs for (preset, note) pairs; with ``rng``, log-mels are delayed by 0-2 frames
        (up to 23 ms at hop 512) so the model does not rely on the exact onset a
        render has and a trimmed user clip may not."""
        x = self.x[p, n].astype(np.float32)
        if rng is not None and self.encoder == "compact":
            for i, shift in enumerate(rng.integers(0, 3, len(x))):
                if shift:
                    x[i, :, shift:] = x[i, :, :-shift].copy()
                    x[i, :, :shift] = x[i].min()
        return torch.from_numpy(x)


def ast_cache(model, data: ds.LoadedData, cache_dir: Path | None) -> np.ndarray:
    """Per-layer pooled AST states for every stored clip, computed once and cached on disk."""
    if data.audio is None:
        raise TrainingError("the AST encoder needs stored audio: generate the dataset with --store-audio")
    key = f"{model.cfg.ast_name.replace('/', '_')}-{len(data.index)}-{int(data.index.sum())}"
    path = cache_dir / f"ast-{key}.npy" if cache_dir else None
    if path is not None and path.exists():
        return np.load(path, mmap_mode="r")
    enc = model.encoder
    P, N = data.audio.shape[:2]
    out = np.zeros((P, N, model.cfg.ast_layers, model.cfg.ast_dim), np.float16)
    for p in range(P):
        clips = [data.audio[p, n].astype(np.float32) / 32768.0 for n in range(N)]
        out[p] = enc.layer_states(clips).numpy().astype(np.float16)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def _batch_targets(t: Targets, p: np.ndarray) -> dict[str, torch.Tensor]:
    return {
        "plain": torch.from_numpy(t.plain[p]), "routes": torch.from_numpy(t.routes[p]),
        "categorical": torch.from_numpy(t.categorical[p]), "plain_mask": torch.from_numpy(t.plain_mask[p]),
        "route_mask": torch.from_numpy(t.route_mask[p]), "cat_mask": torch.from_numpy(t.cat_mask[p]),
    }


# --------------------------------------------------------------------------
# Audio validation
# --------------------------------------------------------------------------


class AudioValidation:
    """Renders predictions for fixed validation presets and scores them against their own renders."""

    def __init__(self, space: ParamSpace, data: ds.LoadedData, n_items: int, workers: int | None) -> None:
        from ..data.sampling import PresetSampler
        from ..synth import ParallelRenderer, RenderJob

        self.space, self.meta = space, data.meta
        self.rows = np.arange(min(n_items, data.n_presets))
        self.note_index = len(data.meta.notes) // 2
        self.note = data.meta.notes[self.note_index]
        sampler = PresetSampler(space, data.meta.seed)
        self.renderer = ParallelRenderer(workers)
        self._job = lambda preset: RenderJob(preset, self.note, data.meta.velocity, data.meta.note_seconds,
                                             data.meta.render_seconds)
        truth = [sampler.preset(int(data.index[r])) for r in self.rows]
        self.targets = self.renderer.render_jobs([self._job(p) for p in truth])

    def score(self, outputs) -> dict[str, float]:
        from ..metrics import mrstft, mss

        plain, routes, logits = outputs
        presets = []
        for i in range(len(self.rows)):
            choice = [int(l[i].argmax()) for l in logits]
            values = values_from_outputs(self.space, plain[i].numpy(), routes[i].numpy(), choice)
            presets.append(Preset(values=values, space_hash=self.space.hash))
        audio = self.renderer.render_jobs([self._job(p) for p in presets], raise_errors=False)
        m, r = [], []
        for a, t in zip(audio, self.targets):
            if isinstance(a, Exception):
                continue
            m.append(mss(t, a))
            r.append(mrstft(t, a))
        return {"val_mss": float(np.mean(m)) if m else math.inf, "val_mrstft": float(np.mean(r)) if r else math.inf}

    def close(self) -> None:
        self.renderer.close()


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


def train(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume) and return the best epoch's metrics."""
    from tqdm import tqdm

    from ..model import Predictor

    t_start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    space = default_space()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_data = ds.load(cfg.data, ("train",), space_hash=space.hash, limit=cfg.limit)
    val_data = ds.load(cfg.data, ("val",), space_hash=space.hash)
    torch.manual_seed(cfg.seed)
    sizes = {k: v for k, v in (("channels", list(cfg.channels) if cfg.channels else None),
                                ("embed_dim", cfg.embed_dim), ("hidden", cfg.hidden),
                                ("dropout", cfg.dropout)) if v is not None}
    model = Predictor(model_config_for(space, encoder=cfg.encoder, **sizes), ast_source=cfg.ast_source)
    train_t = make_targets(space, train_data.continuous, train_data.categorical)
    val_t = make_targets(space, val_data.continuous, val_data.categorical)
    cache_dir = Path(cfg.data) / "cache"
    train_x = Inputs(train_data, model, cfg.encoder, cache_dir)
    val_x = Inputs(val_data, model, cfg.encoder, cache_dir)
    weights = torch.from_numpy(_importance(cfg, space))

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_notes = len(train_data.meta.notes)
    steps_per_epoch = math.ceil(train_data.n_presets * n_notes / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps, total_steps))
    state_path = out / "train_state.pt"
    start_epoch, best, history, elapsed_before = 0, {"val_mss": math.inf}, [], 0.0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        if state["space_hash"] != space.hash or state["config"]["encoder"] != cfg.encoder:
            raise TrainingError(f"{state_path} is from another ParamSpace or encoder; use a new --out")
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start_epoch, best, history = state["epoch"], state["best"], state["history"]
        elapsed_before = state.get("elapsed", 0.0)
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming at epoch {start_epoch + 1} (best val MSS so far {best['val_mss']:.2f} dB)")
    audio_val = AudioValidation(space, val_data, cfg.val_audio_items, cfg.workers)
    writer = _tensorboard(out)
    rng = np.random.default_rng([cfg.seed, start_epoch])
    pairs = np.stack(np.meshgrid(np.arange(train_data.n_presets), np.arange(n_notes), indexing="ij"), -1).reshape(-1, 2)
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            order = rng.permutation(len(pairs))
            sums = {"loss": 0.0, "mse": 0.0, "route": 0.0, "ce": 0.0}
            bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                       unit="batch", leave=False)
            for b in bar:
                idx = pairs[order[b:b + cfg.batch_size]]
                p, n = idx[:, 0], idx[:, 1]
                x = train_x.batch(p, n, rng)
                note = torch.tensor([train_data.meta.notes[k] for k in n])
                outputs = model(x, note, cached=cfg.encoder == "ast")
                loss, parts = loss_fn(outputs, _batch_targets(train_t, p), weights, cfg.ce_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.clip)
                opt.step()
                sched.step()
                sums["loss"] += loss.item() * len(p)
                for k, v in parts.items():
                    sums[k] += v * len(p)
                bar.set_postfix(loss=f"{loss.item():.4f}")
            bar.close()
            row = {"epoch": epoch + 1, "lr": sched.get_last_lr()[0]}
            row.update({f"train_{k}": v / len(pairs) for k, v in sums.items()})
            row.update(_validate(model, val_x, val_t, val_data, weights, cfg, audio_val))
            row["epoch_seconds"] = time.perf_counter() - t0
            history.append(row)
            _log(out, row, writer)
            improved = row["val_mss"] < best["val_mss"]
            if improved:
                best = dict(row)
                _save_checkpoint(out, model, space, train_data, val_data, cfg, best, history,
                                 elapsed_before + time.perf_counter() - t_start)
            print(f"epoch {epoch + 1}: train {row['train_loss']:.4f} val {row['val_loss']:.4f} "
                  f"acc {row['val_cat_acc']:.3f} MSS {row['val_mss']:.2f} dB MRSTFT {row['val_mrstft']:.3f}"
                  f"{' *' if improved else ''} ({row['epoch_seconds']:.0f} s)", flush=True)
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "epoch": epoch + 1, "best": best, "history": history, "space_hash": space.hash,
                        "config": asdict(cfg), "torch_rng": torch.get_rng_state(),
                        "elapsed": elapsed_before + time.perf_counter() - t_start}, state_path)
            if cfg.time_limit_minutes and (time.perf_counter() - t_start) / 60 > cfg.time_limit_minutes:
                print(f"time limit reached after epoch {epoch + 1}; run the same command to resume")
                break
    finally:
        audio_val.close()
        if writer is not None:
            writer.close()
    return best


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress))


@torch.no_grad()
def _validate(model, val_x: Inputs, val_t: Targets, val_data: ds.LoadedData, weights, cfg: TrainConfig,
              audio_val: AudioValidation) -> dict:
    model.eval()
    tot, acc, n_seen = 0.0, 0.0, 0
    err = np.zeros(val_t.plain.shape[1])
    err_n = np.zeros(val_t.plain.shape[1])
    n_notes = len(val_data.meta.notes)
    for start in range(0, val_data.n_presets, cfg.batch_size):
        p = np.arange(start, min(start + cfg.batch_size, val_data.n_presets))
        for k in range(n_notes):
            n = np.full(len(p), k)
            outputs = model(val_x.batch(p, n), torch.full((len(p),), val_data.meta.notes[k]), cached=cfg.encoder == "ast")
            bt = _batch_targets(val_t, p)
            loss, _ = loss_fn(outputs, bt, weights, cfg.ce_weight)
            tot += float(loss) * len(p)
            acc += categorical_accuracy(outputs[2], bt["categorical"], bt["cat_mask"]) * len(p)
            n_seen += len(p)
            m = bt["plain_mask"].numpy()
            err += (np.abs(outputs[0].numpy() - bt["plain"].numpy()) * m).sum(0)
            err_n += m.sum(0)
    rows = audio_val.rows
    k = audio_val.note_index
    outputs = model(val_x.batch(rows, np.full(len(rows), k)), torch.full((len(rows),), audio_val.note),
                    cached=cfg.encoder == "ast")
    scores = audio_val.score(outputs)
    return {"val_loss": tot / n_seen, "val_cat_acc": acc / n_seen,
            "val_param_mae": float((err / np.maximum(err_n, 1)).mean()), **scores}


def _importance(cfg: TrainConfig, space: ParamSpace) -> np.ndarray:
    from ..data.importance import load_weights
    from ..predict import split_continuous

    path = Path(cfg.importance) if cfg.importance else Path(cfg.data) / "importance.json"
    plain, _ = split_continuous(space)
    if not path.exists():
        if cfg.importance:
            raise TrainingError(f"importance weights {path} not found; run `vital-inverse importance --data {cfg.data}`")
        print(f"note: no {path}; training with uniform weights (run `vital-inverse importance` first for better results)")
        return np.ones(len(plain), np.float32)
    w = load_weights(path, space)
    names = [p.name for p in space.continuous]
    return np.array([w[names.index(p.name)] for p in plain], np.float32)


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _log(out: Path, row: dict, writer) -> None:
    path = out / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)
    if writer is not None:
        for k, v in row.items():
            if k != "epoch":
                writer.add_scalar(k, v, row["epoch"])


def _save_checkpoint(out: Path, model, space: ParamSpace, train_data: ds.LoadedData, val_data: ds.LoadedData,
                     cfg: TrainConfig, best: dict, history: list, seconds: float) -> None:
    meta = train_data.meta
    info = ckpt.CheckpointInfo(
        model=model.cfg.to_dict(),
        space_hash=space.hash,
        features=meta.features,
        data={"dataset": str(cfg.data), "seed": meta.seed, "train_presets": int(train_data.n_presets),
              "val_presets": int(val_data.n_presets), "notes": list(meta.notes),
              "train_examples": int(train_data.n_presets * len(meta.notes)), "note_seconds": meta.note_seconds,
              "render_seconds": meta.render_seconds},
        metrics={k: float(v) for k, v in best.items()},
        training={"epochs_run": len(history), "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
                  "weight_decay": cfg.weight_decay, "importance": bool(cfg.importance) or (Path(cfg.data) / "importance.json").exists(),
                  "seconds": round(seconds, 1), "encoder": cfg.encoder,
                  "parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad))},
    )
    ckpt.save(out, model.trainable_state_dict(), info, model_card(info))


def model_card(info: ckpt.CheckpointInfo) -> str:
    d, m, t = info.data, info.metrics, info.training
    return f"""---
license: gpl-3.0
tags: [audio, synthesizer, vital, sound-matching]
---
# Vital Inverse predictor ({t.get('encoder', 'compact')} encoder)

Predicts the parameters of the Vital synthesizer (through the `vita`
package) from one recorded note. Part of Vital Inverse (GPL-3.0-or-later).

## Data
{d.get('train_examples')} rendered training examples: {d.get('train_presets')} synthetic presets sampled over
ParamSpace `{info.space_hash}` (the project's own wavetable bank, fixed modulation routes) at MIDI notes
{d.get('notes')}, note held {d.get('note_seconds')} s in a {d.get('render_seconds')} s render; {d.get('val_presets')}
validation presets, split by preset. No human-made preset was used for training.

## Training
Chosen by validation audio score at epoch {t.get('epochs_run')} of a {t.get('epochs')}-epoch schedule (batch
{t.get('batch_size')}, AdamW, lr {t.get('lr')}, warm-up + cosine), {t.get('parameters'):,} trainable parameters;
{t.get('seconds', 0) / 60:.1f} minutes of training up to that epoch on a 2-core CPU (no GPU).

## Scores (validation presets, rendered through Vita)
- MSS: {m.get('val_mss', float('nan')):.2f} dB, MRSTFT: {m.get('val_mrstft', float('nan')):.3f}
- categorical accuracy (audible parameters): {m.get('val_cat_acc', float('nan')):.3f},
  continuous MAE (normalised): {m.get('val_param_mae', float('nan')):.3f}

See BENCHMARKS.md in the repository for scores on held-out synthetic presets and on
hand-made presets, against baselines.

## Limits
Wavetables are chosen from the project's own bank (custom tables are approximated),
modulation beyond 8 fixed routes is not inferred, one note at a time.
"""


def describe_checkpoint(folder: str | Path) -> str:
    info = ckpt.CheckpointInfo.from_json((Path(folder) / ckpt.CONFIG).read_text())
    return json.dumps(info.metrics, indent=2)
