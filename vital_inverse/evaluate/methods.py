# SPDX-License-Identifier: GPL-3.0-or-later
"""The matching methods an evaluation compares, each a way to get a preset from an analysed clip.

``init`` (Vital's Init), ``mean`` (the mean training preset), ``nearest``
(retrieval by log-mel), ``predict`` (the app's prediction: K candidates,
best by MRSTFT; its most probable candidate gives the ``predict_top1``
row) and ``refine`` (CMA-ES from the prediction's best). ``Methods``
builds each one's tools once and refuses arguments that cannot run,
before any work.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..constants import SAMPLE_RATE
from .score import Scored, score_presets
from .sets import EvalSet, EvaluateError

__all__ = [
    "METHODS",
    "Methods",
    "Refined",
    "param_errors",
    "parse_methods",
    "predict_best",
    "refine_preset",
    "target_seed",
]

METHODS = ("init", "mean", "nearest", "predict", "refine")


def parse_methods(method: str | Sequence[str]) -> list[str]:
    """'init,predict' -> ['init', 'predict']; ``refine`` brings ``predict`` (it starts from the prediction)."""
    names = [m.strip() for m in (method.split(",") if isinstance(method, str) else method) if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if not names or bad:
        raise EvaluateError(f"--method must be one or more of {', '.join(METHODS)} (comma-separated), got {method!r}")
    if "refine" in names and "predict" not in names:  # refinement starts from the prediction: its rows come free
        names.insert(names.index("refine"), "predict")
    return list(dict.fromkeys(names))


def param_errors(space, truth_values, values) -> tuple[float, float]:
    """(MAE of normalised audible continuous params, accuracy over audible categoricals); audible for the truth."""
    audible = space.audible(truth_values)
    idx = [i for i, p in enumerate(space.continuous) if p.name in audible]
    mae = float(np.mean(np.abs(space.continuous_vector(values)[idx] - space.continuous_vector(truth_values)[idx]))) \
        if idx else float("nan")
    cats = [p for p in space.categorical if p.name in audible]
    acc = float(np.mean([p.index_of(values[p.name]) == p.index_of(truth_values[p.name]) for p in cats])) \
        if cats else float("nan")
    return mae, acc


def predict_best(predictor, analysis, k: int = 4) -> tuple[Any, Scored, list, float]:
    """The app's prediction: K candidates, each rendered (in this thread), the lowest MRSTFT kept.

    Returns (best preset, its Scored with the matched audio, the candidates, prediction seconds).
    """
    t0 = time.perf_counter()
    cands = predictor.predict(analysis, k=k)
    seconds = time.perf_counter() - t0
    a = analysis
    s = score_presets(a.audio, a.note, a.note_seconds, a.render_seconds, [c.preset for c in cands],
                      first_too=True, keep_audio=True)
    if s.error:
        raise RuntimeError(f"none of the {len(cands)} candidates could be rendered: {s.error}")
    return cands[s.chosen].preset, s, cands, seconds


@dataclass
class Refined:
    """What a refinement run gave: the preset, its cost and how fast the loss fell."""

    preset: Any
    seconds: float
    renders: int
    start_loss: float
    loss: float
    t90: float  # seconds until 90% of the loss drop was reached (NaN if no drop)
    r90: float  # renders until then
    history: list[tuple[float, int, float]]  # (elapsed s, renders, best loss) per event


def refine_preset(analysis, start, budget: int, seed: int = 0, renderer=None) -> Refined:
    """Run ``refine.refine`` from ``start`` with a render budget; the last event's best and the trajectory."""
    from ..refine import Budget, refine

    t0 = time.perf_counter()
    history: list[tuple[float, int, float]] = []
    last = None
    for ev in refine(analysis, [start], Budget(renders=int(budget), seconds=None), seed=seed, renderer=renderer):
        history.append((float(ev.elapsed), int(ev.renders), float(ev.best_loss)))
        last = ev
    seconds = time.perf_counter() - t0
    start_loss, end = history[0][2], history[-1][2]
    t90, r90 = _time_to_90(history, start_loss, end)
    return Refined(last.best, seconds, int(last.renders), start_loss, end, t90, r90, history)


def _time_to_90(history: list[tuple[float, int, float]], start_loss: float, end: float) -> tuple[float, float]:
    """(seconds, renders) until the best loss had made 90% of its drop; NaN, NaN if it did not drop."""
    if start_loss - end > 0:
        goal = start_loss - 0.9 * (start_loss - end)
        for el, r, lo in history:
            if lo <= goal:
                return el, float(r)
    return float("nan"), float("nan")


def target_seed(seed: int, key: tuple[str, int | None]) -> int:
    """The refinement seed of one target: the run's seed plus a hash of (item, note), stable across runs."""
    h = hashlib.blake2b(f"{key[0]}@{key[1]}".encode(), digest_size=4).digest()
    return int(seed) + int.from_bytes(h, "little") % 100_000


class Methods:
    """Builds each method's tools once (baselines, checkpoint) and checks they can run."""

    def __init__(self, names: list[str], eset: EvalSet, checkpoint, train_data, k: int, budget: int,
                 prior_samples: int, seed: int) -> None:
        self.names, self.k, self.budget, self.seed = names, int(k), int(budget), int(seed)
        self.descriptions: dict[str, str] = {}
        self.init = self.mean = self.nearest = self.predictor = None
        train = Path(train_data) if train_data else (eset.root if eset.kind == "synthetic" else None)
        if train is not None and not (train / "dataset.json").exists():
            raise EvaluateError(f"--train-data {train} is not a generated dataset (no dataset.json)")
        self._baselines(train, prior_samples)
        if "predict" in names:
            self._predictor(checkpoint)
        if "refine" in names:
            if self.budget < 1:
                raise EvaluateError(f"--budget must be at least 1 render for --method refine, got {budget}")
            self.descriptions["refine"] = (f"CMA-ES refinement from the predicted best, {self.budget} renders "
                                           f"(refinement renders only), seed {self.seed} + target hash")

    def _baselines(self, train: Path | None, prior_samples: int) -> None:
        from . import baselines

        if "init" in self.names:
            self.init = baselines.InitBaseline()
            self.descriptions["init"] = self.init.description
        if "nearest" in self.names:
            if train is None:
                raise EvaluateError("--method nearest needs --train-data DIR (a generated dataset to retrieve from)")
            self.nearest = baselines.NearestNeighbour(train)
            self.descriptions["nearest"] = self.nearest.description
        if "mean" in self.names:
            if self.nearest is not None:  # same training split, already in memory
                self.mean = baselines.MeanBaseline.from_loaded(self.nearest.data, train)
            elif train is not None:
                self.mean = baselines.MeanBaseline.from_dataset(train)
            else:
                self.mean = baselines.MeanBaseline.from_prior(prior_samples)
            self.descriptions["mean"] = self.mean.description

    def _predictor(self, checkpoint) -> None:
        from ..predict import PresetPredictor

        if self.k < 1:
            raise EvaluateError(f"--k must be at least 1, got {self.k}")
        self.predictor = PresetPredictor.load(checkpoint)
        _warm_up(self.predictor, self.k)  # the first forward pass pays torch's one-off costs: keep them out of timings
        self.descriptions["predict"] = (f"checkpoint {self.predictor.source}: best of K={self.k} network "
                                        "candidates, the retrieval ones and the clip's own (resynthesis) "
                                        "starts by MRSTFT (refinement loss) after rendering all of them")
        self.descriptions["predict_top1"] = f"checkpoint {self.predictor.source}: most probable candidate"


def _warm_up(predictor, k: int) -> None:
    """One prediction on a 0.5 s middle-C sine, so that the timed ones do not pay torch's first-call costs."""
    from ..intake import analyze

    t = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
    note = (0.5 * np.sin(2 * np.pi * 261.63 * t) * np.minimum(1.0, (0.5 - t) * 20)).astype(np.float32)
    predictor.predict(analyze(np.stack([note, note]), SAMPLE_RATE, "warm-up"), k=k)
