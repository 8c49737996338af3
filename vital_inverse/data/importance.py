# SPDX-License-Identifier: GPL-3.0-or-later
"""Perceptual importance weights: how much each continuous parameter changes the sound.

For each continuous parameter: the mean MRSTFT change caused by a small
step around many sampled presets, over the presets where that parameter is
audible (a filter's cutoff says nothing while the filter is off, and the
training loss masks it there anyway). Vita's run-to-run noise is measured
per preset (the base rendered twice) and subtracted, so a parameter that
does nothing scores near zero rather than at the noise level. Weights are
normalised to a maximum of 1 and floored at ``FLOOR`` so no parameter is
ignored outright by training.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..constants import RENDER_VELOCITY
from ..params import ParamSpace, default_space
from ..progress import progress_bar
from ..synth import ParallelRenderer, RenderJob
from .sampling import PresetSampler

FLOOR = 0.02


@dataclass(frozen=True)
class ImportanceConfig:
    n_presets: int = 48
    step: float = 0.05  # normalised step size
    seed: int = 20261121
    note: int = 60
    note_seconds: float = 0.8
    render_seconds: float = 1.2


def compute(space: ParamSpace | None = None, cfg: ImportanceConfig = ImportanceConfig(), workers: int | None = None,
            progress: bool = True) -> dict:
    """Weights and the raw measurements behind them, as a JSON-ready dict."""
    import torch

    from ..metrics import mrstft_batch

    torch.set_num_threads(1)  # the render workers fill the cores; more threads here only contend
    space = space or default_space()
    sampler = PresetSampler(space, cfg.seed)
    cont = space.continuous
    sums = np.zeros(len(cont))
    counts = np.zeros(len(cont))
    noise = []
    t0 = time.perf_counter()
    bar = progress_bar(cfg.n_presets, "importance", unit="preset", enabled=progress, smoothing=0.05)
    with ParallelRenderer(workers) as pr:
        for i in range(cfg.n_presets):
            base = sampler.preset(i)
            x = space.continuous_vector(base.values)
            audible = space.audible(base.values)
            idx = [j for j, p in enumerate(cont) if p.name in audible]
            jobs = [RenderJob(base, cfg.note, RENDER_VELOCITY, cfg.note_seconds, cfg.render_seconds)] * 2
            for j in idx:
                xp = x.copy()
                xp[j] = x[j] + cfg.step if x[j] + cfg.step <= 1.0 else x[j] - cfg.step
                jobs.append(RenderJob(base.with_values(space.with_continuous(base.values, xp)), cfg.note, RENDER_VELOCITY,
                                      cfg.note_seconds, cfg.render_seconds))
            audio = pr.render_jobs(jobs)
            losses = mrstft_batch(audio[1:], audio[0])  # one sound per score, batched
            floor = float(losses[0])
            noise.append(floor)
            for j, d in zip(idx, losses[1:]):
                sums[j] += max(0.0, float(d) - floor)
                counts[j] += 1
            bar.update(1)
    bar.close()
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    weights = mean / mean.max() if mean.max() > 0 else np.ones_like(mean)
    weights = np.maximum(weights, FLOOR)
    return {
        "space_hash": space.hash,
        "config": cfg.__dict__,
        "weights": {p.name: float(w) for p, w in zip(cont, weights)},
        "mean_mrstft_change": {p.name: float(m) for p, m in zip(cont, mean)},
        "presets_audible": {p.name: int(c) for p, c in zip(cont, counts)},
        "noise_floor_mrstft": {"mean": float(np.mean(noise)), "median": float(np.median(noise))},
        "seconds": time.perf_counter() - t0,
    }


def save(result: dict, out: str | Path) -> tuple[Path, Path]:
    """Write the JSON and a bar chart (PNG) beside it."""
    out = Path(out)
    if out.suffix != ".json":
        out = out / "importance.json" if out.is_dir() else out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    png = out.with_suffix(".png")
    plot(result["weights"], png)
    return out, png


def load_weights(path: str | Path, space: ParamSpace) -> np.ndarray:
    """Weights in the order of ``space.continuous``; refuses another ParamSpace."""
    from .dataset import DatasetError

    data = json.loads(Path(path).read_text())
    if data.get("space_hash") != space.hash:
        raise DatasetError(f"{path} was computed for ParamSpace {data.get('space_hash')}, not {space.hash}; "
                           "run `vital-inverse importance` again")
    return np.array([data["weights"][p.name] for p in space.continuous], dtype=np.float32)


def plot(weights: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(weights, key=weights.get, reverse=True)
    fig, ax = plt.subplots(figsize=(8, max(4, 0.16 * len(names))))
    ax.barh(range(len(names)), [weights[n] for n in names], color="#3b7dd8")
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlabel("importance (mean MRSTFT change for a small step, max = 1)")
    ax.set_title("Perceptual importance of continuous parameters")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
