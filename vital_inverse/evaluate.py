# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluation suite: score matching methods on a set of target notes.

    vital-inverse evaluate --set synthetic:DIR|presets:DIR|clips:DIR \\
        --method init|mean|nearest|predict|refine[,...] [--budget N] [--notes 48,60,72] --out RESULTS_DIR

One target = one item (a generated preset, a .vital file or an audio clip) at one note, analysed
by intake exactly as a user's clip; each method's preset is rendered at the analysed note and
lengths, matched to the clip (`scoring.match_to_target`) and scored with `metrics.all_metrics`.
`floor` (the true preset rendered twice) and `oracle` (the true preset through the analysis)
rows bound what is possible. Writes `results.csv` (one row per item x note x method),
`summary.md` (means with item-level bootstrap CIs) and `run.json`. The full protocol:
docs/evaluation.md.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .constants import RENDER_VELOCITY as VELOCITY, SAMPLE_RATE
from .constants import SILENT_RENDER_PEAK as SILENT_PEAK  # a render below it is called silent in a row's detail
from .errors import UserError
from .summary import METRICS, REFERENCE_ROWS, bootstrap_ci, load_rows, method_stats, summarize

__all__ = [
    "COLUMNS",
    "METHODS",
    "METRICS",
    "EvalResult",
    "EvalSet",
    "EvaluateError",
    "add_arguments",
    "bootstrap_ci",
    "evaluate",
    "load_rows",
    "main",
    "main_args",
    "method_stats",
    "param_errors",
    "parse_set",
    "predict_best",
    "prepare_target",
    "refine_preset",
    "score_metrics",
    "score_presets",
    "summarize",
]

METHODS = ("init", "mean", "nearest", "predict", "refine")
SET_KINDS = ("synthetic", "presets", "clips")
DEFAULT_NOTES = (48, 60, 72)
PRESET_NOTE_SECONDS, PRESET_RENDER_SECONDS = 1.5, 2.0
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")

COLUMNS = (
    "set", "item", "note", "method",
    *METRICS, "param_mae", "cat_acc",
    "analysed_note", "cents", "note_seconds", "render_seconds",
    "analysis_s", "method_s", "select_s", "renders", "chosen",
    "refine_start_loss", "refine_loss", "refine_t90_s", "refine_r90",
    "detail", "error",
)


class EvaluateError(UserError):
    """The evaluation cannot start with these arguments; the message says what to change."""


# --------------------------------------------------------------------------
# Sets
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    id: str
    path: str | None = None  # .vital or audio file
    index: int | None = None  # synthetic dataset item index


@dataclass(frozen=True)
class EvalSet:
    """What to evaluate on: items x notes and how the targets are rendered."""

    kind: str
    root: Path
    items: tuple[Item, ...]
    notes: tuple[int | None, ...]  # (None,) for clips: the clip's own note
    velocity: float = VELOCITY
    note_seconds: float = PRESET_NOTE_SECONDS
    render_seconds: float = PRESET_RENDER_SECONDS
    seed: int = 0  # synthetic: the dataset's sampling seed
    description: str = ""

    @property
    def has_truth(self) -> bool:
        return self.kind != "clips"

    def targets(self) -> list[tuple[Item, int | None]]:
        return [(item, note) for item in self.items for note in self.notes]


def _check_notes(notes: Iterable[int]) -> tuple[int, ...]:
    out = tuple(int(n) for n in notes)
    if not out or any(not 0 <= n <= 127 for n in out):
        raise EvaluateError(f"notes must be MIDI numbers 0-127, got {list(out)}")
    return out


def parse_notes(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """'48,60,72' -> (48, 60, 72); None stays None (the set's default)."""
    if text is None:
        return None
    if isinstance(text, str):
        try:
            return _check_notes(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise EvaluateError(f"--notes must be comma-separated MIDI numbers, got {text!r}") from None
    return _check_notes(text)


def parse_set(spec: str, notes: Sequence[int] | str | None = None, limit: int | None = None,
              note_seconds: float | None = None, render_seconds: float | None = None) -> EvalSet:
    """``synthetic:DIR`` | ``presets:DIR`` | ``clips:DIR`` -> an EvalSet (items sorted, first ``limit``)."""
    kind, sep, where = str(spec).partition(":")
    if not sep or kind not in SET_KINDS or not where:
        raise EvaluateError(f"--set must be synthetic:DIR, presets:DIR or clips:DIR, got {spec!r}")
    root = Path(where).expanduser()
    if not root.is_dir():
        raise EvaluateError(f"--set {spec}: {root} is not a folder")
    if limit is not None and limit < 1:
        raise EvaluateError(f"--limit must be at least 1, got {limit}")
    notes = parse_notes(notes)
    for name, v in (("--note-seconds", note_seconds), ("--render-seconds", render_seconds)):
        if v is not None and not 0 < v <= 30:
            raise EvaluateError(f"{name} must be in (0, 30] seconds, got {v}")
    if kind == "synthetic":
        from .data import dataset as ds
        from .params import default_space

        meta = ds.read_meta(root)
        data = ds.load(root, ("test",), space_hash=default_space().hash)
        index = [int(i) for i in data.index][:limit]
        ns, rs = note_seconds or meta.note_seconds, render_seconds or meta.render_seconds
        if ns > rs:
            raise EvaluateError(f"the note ({ns} s) must not be longer than the render ({rs} s)")
        return EvalSet("synthetic", root, tuple(Item(str(i), index=i) for i in index), notes or tuple(meta.notes),
                       meta.velocity, ns, rs, meta.seed,
                       f"test split of {root} ({len(data.index)} presets, seed {meta.seed}), {len(index)} used")
    if kind == "presets":
        paths = sorted(p for p in root.glob("*.vital") if p.is_file())
        if not paths:
            raise EvaluateError(f"--set {spec}: no *.vital files in {root}")
        paths = paths[:limit]
        ns = note_seconds or PRESET_NOTE_SECONDS
        rs = render_seconds or max(PRESET_RENDER_SECONDS, ns)
        if ns > rs:
            raise EvaluateError(f"the note ({ns} s) must not be longer than the render ({rs} s)")
        return EvalSet("presets", root, tuple(Item(p.stem, path=str(p)) for p in paths), notes or DEFAULT_NOTES,
                       VELOCITY, ns, rs, 0, f"{len(paths)} .vital presets in {root}")
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not paths:
        raise EvaluateError(f"--set {spec}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in {root}")
    paths = paths[:limit]
    return EvalSet("clips", root, tuple(Item(p.stem, path=str(p)) for p in paths), (None,),
                   description=f"{len(paths)} audio clips in {root} (note and lengths from intake)")


def parse_methods(method: str | Sequence[str]) -> list[str]:
    names = [m.strip() for m in (method.split(",") if isinstance(method, str) else method) if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if not names or bad:
        raise EvaluateError(f"--method must be one or more of {', '.join(METHODS)} (comma-separated), got {method!r}")
    if "refine" in names and "predict" not in names:  # refinement starts from the prediction: its rows come free
        names.insert(names.index("refine"), "predict")
    return list(dict.fromkeys(names))


# --------------------------------------------------------------------------
# Worker side: render, analyse, score (run in the render workers, or here)
# --------------------------------------------------------------------------


def _renderer():
    """The render worker's Renderer (in a ParallelRenderer worker) or this thread's own."""
    from .synth import worker_renderer

    return worker_renderer()


_samplers: dict[int, Any] = {}


def _truth_preset(kind: str, item: Item, seed: int):
    if kind == "synthetic":
        from .data.sampling import PresetSampler
        from .params import default_space

        sampler = _samplers.get(seed)
        if sampler is None:
            sampler = _samplers[seed] = PresetSampler(default_space(), seed)
        return sampler.preset(int(item.index))
    from .preset import load_vital

    return load_vital(item.path)


def _error_text(e: BaseException) -> str:
    text = str(e).strip().replace("\n", " ")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def score_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``metrics.all_metrics(a, b)`` with MRSTFT from ``metrics.mrstft_batch`` (equal to ~1e-6, and 2-5x
    faster: it skips the phase auraloss computes and never uses). Keys and order as ``all_metrics``."""
    from . import metrics as mt

    mt._as_2d(a, "a"), mt._as_2d(b, "b")
    return {
        "mss": mt.mss(a, b),
        "wmfcc": mt.wmfcc(a, b),
        "sot": mt.sot(a, b),
        "rms": mt.rms_similarity(a, b),
        "mrstft": float(mt.mrstft_batch([a], b)[0]),
        "f0_cents": mt.f0_error_cents(a, b),
    }


class _OneThread:
    """Torch on one thread while scoring outside a render worker (workers already are single-threaded):
    on 2 shared cores two threads spin and MRSTFT runs ~5x slower (BENCHMARKS.md section 3)."""

    def __enter__(self):
        import sys

        self.torch = sys.modules.get("torch")
        from .synth import in_render_worker

        self.prev = None
        if not in_render_worker() and self.torch is not None:
            self.prev = self.torch.get_num_threads()
            self.torch.set_num_threads(1)
        return self

    def __exit__(self, *exc) -> None:
        if self.prev is not None:
            self.torch.set_num_threads(self.prev)


@dataclass
class Scored:
    """Metrics of the chosen preset (and of the first one when asked) against a target."""

    metrics: dict[str, float] | None = None
    first_metrics: dict[str, float] | None = None
    chosen: int = 0
    losses: list[float] = field(default_factory=list)  # selection loss per preset (when several)
    seconds: float = 0.0  # render + selection (not the final metrics)
    error: str = ""
    audio: np.ndarray | None = field(default=None, repr=False)  # the chosen render, matched (if keep_audio)
    note: str = ""  # e.g. the chosen render was silent


def score_presets(target_audio: np.ndarray, note: int, note_seconds: float, render_seconds: float,
                  presets: Sequence, first_too: bool = False, keep_audio: bool = False) -> Scored:
    """Render ``presets`` at (note, velocity 0.8, note_seconds, render_seconds), match each to the target
    (``scoring.match_to_target``), keep the one with the lowest MRSTFT (if several) and return its ``all_metrics``.

    A preset whose render fails loses the selection; if every one fails, ``error`` says why.
    """
    import torch  # noqa: F401 - loaded before _OneThread looks for it

    with _OneThread():
        return _score_presets(target_audio, note, note_seconds, render_seconds, presets, first_too, keep_audio)


def _score_presets(target_audio, note, note_seconds, render_seconds, presets, first_too, keep_audio) -> Scored:
    t0 = time.perf_counter()
    matched, peaks, errors = _render_matched(target_audio, note, note_seconds, render_seconds, presets)
    ok = [i for i, m in enumerate(matched) if m is not None]
    if not ok:
        return Scored(error=errors[0] if errors else "no preset to score", seconds=time.perf_counter() - t0)
    losses = _selection_losses(matched, target_audio) if len(presets) > 1 else []
    chosen = int(np.argmin(losses)) if losses else ok[0]
    seconds = time.perf_counter() - t0
    out = Scored(metrics=score_metrics(matched[chosen], target_audio), chosen=chosen, losses=losses, seconds=seconds,
                 note=_silence_note(peaks[chosen]))
    if first_too:
        if chosen == 0:
            out.first_metrics = out.metrics
        elif matched[0] is not None:
            out.first_metrics = score_metrics(matched[0], target_audio)
    if keep_audio:
        out.audio = matched[chosen]
    return out


def _render_matched(target_audio, note, note_seconds, render_seconds, presets) -> tuple[list, list[float], list[str]]:
    """Render each preset on this process's Renderer and match it to the target (``scoring``): (matched render
    or None, raw peak or nan, and the error text of each failure)."""
    from .scoring import jobs_for, match_to_target, render_each

    matched: list[np.ndarray | None] = []
    peaks: list[float] = []
    errors: list[str] = []
    for a in render_each(_renderer(), jobs_for(presets, note, note_seconds, render_seconds)):
        if not isinstance(a, Exception):
            try:
                matched.append(match_to_target(a, target_audio))
                peaks.append(float(np.max(np.abs(a))) if a.size else 0.0)
                continue
            except Exception as e:  # noqa: BLE001 - recorded; the other candidates still count
                a = e
        matched.append(None)
        peaks.append(float("nan"))
        errors.append(_error_text(a))
    return matched, peaks, errors


def _selection_losses(matched: Sequence, target_audio: np.ndarray) -> list[float]:
    """MRSTFT (``metrics.mrstft_batch``, batched in torch) of each matched render; inf where it failed."""
    from .metrics import mrstft_batch

    ok = [i for i, m in enumerate(matched) if m is not None]
    losses = [math.inf] * len(matched)
    for i, v in zip(ok, mrstft_batch([matched[i] for i in ok], target_audio) if ok else []):
        losses[i] = float(v) if math.isfinite(v) else math.inf
    return losses


def score_groups(target_audio: np.ndarray, note: int, note_seconds: float, render_seconds: float,
                 presets: Sequence, groups: dict[str, Sequence[int]]) -> dict[str, Scored]:
    """Render every preset once and, per named group of preset indices, keep the lowest-MRSTFT one and score it:
    what ``score_presets`` gives for each group's presets, at one render per preset (benchmarks comparing
    candidate sources: heads, retrieval, K generative samples, all together)."""
    import torch  # noqa: F401 - loaded before _OneThread looks for it

    with _OneThread():
        t0 = time.perf_counter()
        matched, peaks, _ = _render_matched(target_audio, note, note_seconds, render_seconds, presets)
        losses = _selection_losses(matched, target_audio)
        seconds = time.perf_counter() - t0
        scored: dict[int, dict[str, float]] = {}
        out: dict[str, Scored] = {}
        for name, idx in groups.items():
            alive = [i for i in idx if matched[i] is not None]
            if not alive:
                out[name] = Scored(error="no candidate of this group could be rendered")
                continue
            best = min(alive, key=lambda i: losses[i])
            if best not in scored:
                scored[best] = score_metrics(matched[best], target_audio)
            out[name] = Scored(metrics=scored[best], chosen=best, losses=[losses[i] for i in idx], seconds=seconds,
                               note=_silence_note(peaks[best]))
        return out


def _silence_note(peak: float, what: str = "render") -> str:
    return f"{what} silent (peak {peak:.2g})" if peak < SILENT_PEAK else ""


@dataclass
class Target:
    """A prepared target: the analysed clip, the truth (preset sets) and the reference rows."""

    item: Item
    note: int | None  # the note it was rendered at (None for clips)
    analysis: Any = None  # intake.Analysis
    truth: Any = None  # Preset
    analysis_s: float = float("nan")
    floor: dict[str, float] | None = None
    floor_note: str = ""
    oracle: Scored | None = None
    error: str = ""
    raw: np.ndarray | None = field(default=None, repr=False)  # the rendered target (preset sets), if kept

    @property
    def key(self) -> tuple[str, int | None]:
        return self.item.id, self.note


def prepare_target(kind: str, item: Item, note: int | None, velocity: float = VELOCITY,
                   note_seconds: float = PRESET_NOTE_SECONDS, render_seconds: float = PRESET_RENDER_SECONDS,
                   seed: int = 0, floor: bool = True, keep_raw: bool = False) -> Target:
    """Render (or read) one target, analyse it like a user's clip; with ``floor``, the floor and oracle rows."""
    from .intake import analyze, analyze_file

    t = Target(item, note)
    try:
        if kind == "clips":
            t0 = time.perf_counter()
            t.analysis = analyze_file(item.path)
            t.analysis_s = time.perf_counter() - t0
            return t
        t.truth = _truth_preset(kind, item, seed)
        renderer = _renderer()
        raw = renderer.render(t.truth, int(note), velocity, note_seconds, render_seconds)
        t0 = time.perf_counter()
        t.analysis = analyze(raw, SAMPLE_RATE, f"{item.id}@{note}")
        t.analysis_s = time.perf_counter() - t0
        if keep_raw:
            t.raw = raw
    except Exception as e:  # noqa: BLE001 - any failure is this target's row, the run goes on
        t.error = _error_text(e)
        return t
    if floor:
        try:
            again = renderer.render(t.truth, int(note), velocity, note_seconds, render_seconds)
            g = np.float32(t.analysis.gain)
            import torch  # noqa: F401 - loaded before _OneThread looks for it

            with _OneThread():
                t.floor = score_metrics(again * g, raw * g)
            t.floor_note = "; ".join(x for x in (_silence_note(float(np.max(np.abs(raw))), "first render"),
                                                 _silence_note(float(np.max(np.abs(again))), "second render")) if x)
        except Exception as e:  # noqa: BLE001 - recorded on the floor row
            t.floor = {"error": _error_text(e)}  # type: ignore[dict-item]
        a = t.analysis
        t.oracle = score_presets(a.audio, a.note, a.note_seconds, a.render_seconds, [t.truth])
    return t


# --------------------------------------------------------------------------
# Method side (this process): presets from an analysis
# --------------------------------------------------------------------------


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
    from .refine import Budget, refine

    t0 = time.perf_counter()
    history: list[tuple[float, int, float]] = []
    last = None
    for ev in refine(analysis, [start], Budget(renders=int(budget), seconds=None), seed=seed, renderer=renderer):
        history.append((float(ev.elapsed), int(ev.renders), float(ev.best_loss)))
        last = ev
    seconds = time.perf_counter() - t0
    start_loss, end = history[0][2], history[-1][2]
    t90 = r90 = float("nan")
    if start_loss - end > 0:
        goal = start_loss - 0.9 * (start_loss - end)
        for el, r, lo in history:
            if lo <= goal:
                t90, r90 = el, float(r)
                break
    return Refined(last.best, seconds, int(last.renders), start_loss, end, t90, r90, history)


class _Methods:
    """Builds each method's tools once (baselines, checkpoint) and checks they can run."""

    def __init__(self, names: list[str], eset: EvalSet, checkpoint, train_data, k: int, budget: int,
                 prior_samples: int, seed: int) -> None:
        self.names, self.k, self.budget, self.seed = names, int(k), int(budget), int(seed)
        self.descriptions: dict[str, str] = {}
        self.init = self.mean = self.nearest = self.predictor = None
        from . import baselines

        train = Path(train_data) if train_data else (eset.root if eset.kind == "synthetic" else None)
        if train is not None and not (train / "dataset.json").exists():
            raise EvaluateError(f"--train-data {train} is not a generated dataset (no dataset.json)")
        if "init" in names:
            self.init = baselines.InitBaseline()
            self.descriptions["init"] = self.init.description
        if "nearest" in names:
            if train is None:
                raise EvaluateError("--method nearest needs --train-data DIR (a generated dataset to retrieve from)")
            self.nearest = baselines.NearestNeighbour(train)
            self.descriptions["nearest"] = self.nearest.description
        if "mean" in names:
            if self.nearest is not None:  # same training split, already in memory
                self.mean = baselines.MeanBaseline.from_loaded(self.nearest.data, train)
            elif train is not None:
                self.mean = baselines.MeanBaseline.from_dataset(train)
            else:
                self.mean = baselines.MeanBaseline.from_prior(prior_samples)
            self.descriptions["mean"] = self.mean.description
        if "predict" in names:
            from .predict import PresetPredictor

            if self.k < 1:
                raise EvaluateError(f"--k must be at least 1, got {k}")
            self.predictor = PresetPredictor.load(checkpoint)
            _warm_up(self.predictor, self.k)  # the first forward pass pays torch's one-off costs: keep them out of timings
            self.descriptions["predict"] = (f"checkpoint {self.predictor.source}: best of K={self.k} network "
                                            "candidates, the retrieval ones and the clip's own (resynthesis) "
                                            "starts by MRSTFT (refinement loss) after rendering all of them")
            self.descriptions["predict_top1"] = f"checkpoint {self.predictor.source}: most probable candidate"
        if "refine" in names:
            if self.budget < 1:
                raise EvaluateError(f"--budget must be at least 1 render for --method refine, got {budget}")
            self.descriptions["refine"] = (f"CMA-ES refinement from the predicted best, {self.budget} renders "
                                           f"(refinement renders only), seed {self.seed} + target hash")


def _warm_up(predictor, k: int) -> None:
    from .intake import analyze

    t = np.arange(int(0.5 * SAMPLE_RATE)) / SAMPLE_RATE
    note = (0.5 * np.sin(2 * np.pi * 261.63 * t) * np.minimum(1.0, (0.5 - t) * 20)).astype(np.float32)
    predictor.predict(analyze(np.stack([note, note]), SAMPLE_RATE, "warm-up"), k=k)


def _target_seed(seed: int, key: tuple[str, int | None]) -> int:
    h = hashlib.blake2b(f"{key[0]}@{key[1]}".encode(), digest_size=4).digest()
    return int(seed) + int.from_bytes(h, "little") % 100_000


# --------------------------------------------------------------------------
# Execution helpers
# --------------------------------------------------------------------------


class _Inline:
    """Executor stand-in that runs each task at once, in this process."""

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller like a pool would
            f.set_exception(e)
        return f


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


class _Writer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        self._f = open(path, "w", newline="")  # noqa: SIM115 - rows are flushed as they come; closed by close()
        self._w = csv.DictWriter(self._f, fieldnames=list(COLUMNS))
        self._w.writeheader()
        self._f.flush()

    def write(self, row: dict[str, Any]) -> None:
        full = {c: row.get(c) for c in COLUMNS}
        self.rows.append(full)
        self._w.writerow({c: _fmt(v) for c, v in full.items()})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


@dataclass
class EvalResult:
    out: Path
    csv: Path
    summary: Path
    rows: list[dict[str, Any]]
    seconds: float


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


def evaluate(set_spec: str, method: str | Sequence[str], out: str | Path, budget: int = 600,
             notes: Sequence[int] | str | None = None, *, checkpoint: str | None = None,
             train_data: str | Path | None = None, limit: int | None = None, workers: int | None = None,
             k: int = 4, seed: int = 0, floor: bool = True, note_seconds: float | None = None,
             render_seconds: float | None = None, prior_samples: int = 1024, progress: bool = True) -> EvalResult:
    """Evaluate ``method`` (one name or several, comma-separated) on ``set_spec``; write CSV + summary to ``out``.

    ``notes`` overrides the set's notes (presets default 48,60,72; synthetic: the dataset's).
    ``workers``: render worker processes (default: every core); 0 runs everything in this process.
    ``floor``: add the render-twice ``floor`` and ``oracle`` rows (preset sets).
    Raises EvaluateError (or another UserError) before any work if the arguments cannot run.
    """
    t_start = time.perf_counter()
    eset = parse_set(set_spec, notes, limit, note_seconds, render_seconds)
    names = parse_methods(method)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EvaluateError(f"--out {out} is a file; give a folder")
    if workers is not None and workers < 0:
        raise EvaluateError(f"--workers must be 0 or more, got {workers}")
    methods = _Methods(names, eset, checkpoint, train_data, k, budget, prior_samples, seed)
    from .params import default_space

    space = default_space()
    out.mkdir(parents=True, exist_ok=True)
    do_floor = bool(floor) and eset.has_truth
    settings = {
        "set": set_spec, "set_description": eset.description, "methods": names, "method_descriptions": methods.descriptions,
        "notes": [n for n in eset.notes if n is not None], "velocity": eset.velocity,
        "note_seconds": eset.note_seconds, "render_seconds": eset.render_seconds,
        "budget": budget if "refine" in names else None, "k": k, "seed": seed, "floor": do_floor,
        "checkpoint": checkpoint, "train_data": str(train_data) if train_data else None, "limit": limit,
        "workers": workers, "items": len(eset.items), "targets": len(eset.targets()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }

    pool = None
    n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if n_workers > 0:
        from .synth import ParallelRenderer

        pool = ParallelRenderer(n_workers)
        ex = pool  # has submit(fn, *args), like _Inline
    else:
        ex = _Inline()
    refine_pool = pool
    window = 1 if ("refine" in names or pool is None) else 2 * n_workers

    writer = _Writer(out / "results.csv")
    targets = eset.targets()
    bar = _bar(len(targets), progress, f"evaluate {','.join(names)} on {eset.kind}")
    outstanding: dict[tuple, int] = {}
    scoring: deque[tuple[Future, Callable[[Any], None], tuple]] = deque()

    def base_row(t: Target, m: str) -> dict[str, Any]:
        a = t.analysis
        return {"set": eset.kind, "item": t.item.id, "note": t.note, "method": m,
                "analysed_note": getattr(a, "note", None), "cents": getattr(a, "cents", None),
                "note_seconds": getattr(a, "note_seconds", None), "render_seconds": getattr(a, "render_seconds", None),
                "analysis_s": t.analysis_s}

    def metric_row(t: Target, m: str, metrics: dict | None, preset=None, **extra) -> dict[str, Any]:
        row = base_row(t, m)
        row.update(extra)
        if metrics:
            row.update({k2: float(metrics[k2]) for k2 in METRICS if k2 in metrics})
        if (preset is not None and t.truth is not None and eset.kind == "synthetic" and not row.get("error")
                and m not in REFERENCE_ROWS):
            row["param_mae"], row["cat_acc"] = param_errors(space, t.truth.values, preset.values)
        return row

    def finish_one(key: tuple) -> None:
        outstanding[key] -= 1
        if outstanding[key] == 0:
            bar.update(1)

    def submit_score(t: Target, presets: list, on_done: Callable[[Scored | BaseException], None],
                     first_too: bool = False) -> None:
        a = t.analysis
        fut = ex.submit(score_presets, a.audio, a.note, a.note_seconds, a.render_seconds, presets, first_too)
        outstanding[t.key] = outstanding.get(t.key, 0) + 1
        scoring.append((fut, on_done, t.key))

    def drain(block: bool) -> None:
        while scoring and (block or scoring[0][0].done()):
            fut, on_done, key = scoring.popleft()
            try:
                res: Scored | BaseException = fut.result()
            except BaseException as e:  # noqa: BLE001 - a broken worker: recorded for this row
                res = e
            on_done(res)
            finish_one(key)

    def scored_row(t: Target, m: str, preset, res, **extra) -> dict[str, Any]:
        if isinstance(res, BaseException):
            return metric_row(t, m, None, error=_error_text(res), **extra)
        if res.error:
            return metric_row(t, m, None, error=res.error, **extra)
        if res.note:
            extra["detail"] = "; ".join(x for x in (extra.get("detail", ""), res.note) if x)
        return metric_row(t, m, res.metrics, preset, **extra)

    def run_methods(t: Target) -> None:
        for m in names:
            if m == "refine":
                continue  # handled with predict
            try:
                if m in ("init", "mean"):
                    tool = methods.init if m == "init" else methods.mean
                    preset = tool(t.analysis)
                    submit_score(t, [preset], lambda r, t=t, m=m, p=preset: writer.write(
                        scored_row(t, m, p, r, method_s=0.0, renders=1)))
                elif m == "nearest":
                    t0 = time.perf_counter()
                    preset, hit = methods.nearest.lookup(t.analysis)
                    dt = time.perf_counter() - t0
                    detail = f"item {hit.index} at note {hit.note}, {hit.distance:.2f} dB RMS"
                    submit_score(t, [preset], lambda r, t=t, p=preset, dt=dt, d=detail: writer.write(
                        scored_row(t, "nearest", p, r, method_s=dt, renders=1, detail=d)))
                elif m == "predict":
                    run_predict(t)
            except Exception as e:  # noqa: BLE001 - this method failed on this target; the run goes on
                failed = [m] + (["predict_top1"] + (["refine"] if "refine" in names else []) if m == "predict" else [])
                for f in failed:
                    writer.write(metric_row(t, f, None, error=_error_text(e)))

    def run_predict(t: Target) -> None:
        t0 = time.perf_counter()
        cands = methods.predictor.predict(t.analysis, k=methods.k)
        dt = time.perf_counter() - t0
        presets = [c.preset for c in cands]
        refine_too = "refine" in names

        def done(r, t=t, presets=presets, dt=dt) -> None:
            ok = not isinstance(r, BaseException) and not r.error
            chosen = r.chosen if ok else None
            losses = ",".join(f"{x:.4g}" for x in r.losses) if ok and r.losses else ""
            writer.write(scored_row(t, "predict", presets[chosen] if ok else None, r, method_s=dt,
                                    select_s=r.seconds if ok else None, renders=len(presets), chosen=chosen,
                                    detail=f"candidate losses {losses}" if losses else ""))
            top1 = dataclasses.replace(r, metrics=r.first_metrics) if ok else r
            if ok and r.first_metrics is None:
                top1 = RuntimeError("the most probable candidate could not be rendered")
            writer.write(scored_row(t, "predict_top1", presets[0], top1, method_s=dt, renders=0, chosen=0))
            if refine_too:
                if not ok:
                    writer.write(metric_row(t, "refine", None, error="prediction failed; nothing to refine"))
                else:
                    run_refine(t, presets[chosen])

        submit_score(t, presets, done, first_too=True)

    def run_refine(t: Target, start) -> None:
        nonlocal refine_pool
        try:
            if refine_pool is None:
                from .synth import ParallelRenderer

                refine_pool = ParallelRenderer(1)
            rr = refine_preset(t.analysis, start, methods.budget, _target_seed(seed, t.key), refine_pool)
        except Exception as e:  # noqa: BLE001 - recorded on the refine row
            writer.write(metric_row(t, "refine", None, error=_error_text(e)))
            return
        extra = {"method_s": rr.seconds, "renders": rr.renders, "refine_start_loss": rr.start_loss,
                 "refine_loss": rr.loss, "refine_t90_s": rr.t90, "refine_r90": rr.r90}
        a = t.analysis
        try:
            res: Scored | BaseException = ex.submit(score_presets, a.audio, a.note, a.note_seconds, a.render_seconds,
                                                    [rr.preset]).result()
        except BaseException as e:  # noqa: BLE001
            res = e
        writer.write(scored_row(t, "refine", rr.preset, res, **extra))

    def handle_target(t: Target) -> None:
        outstanding[t.key] = outstanding.get(t.key, 0) + 1  # held until the methods are submitted
        if t.error:
            for m in names + (["predict_top1"] if "predict" in names else []):
                writer.write(metric_row(t, m, None, error=t.error))
        else:
            if t.floor is not None:
                err = t.floor.get("error") if isinstance(t.floor.get("error"), str) else ""
                writer.write(metric_row(t, "floor", None if err else t.floor, error=err, renders=1, detail=t.floor_note))
            if t.oracle is not None:
                writer.write(scored_row(t, "oracle", t.truth, t.oracle, renders=1))
            run_methods(t)
        finish_one(t.key)

    pending: deque[tuple[Future, Item, int | None]] = deque()
    todo = deque(targets)

    def feed() -> None:
        while todo and len(pending) < window:
            item, note = todo.popleft()
            pending.append((ex.submit(prepare_target, eset.kind, item, note, eset.velocity, eset.note_seconds,
                                      eset.render_seconds, eset.seed, do_floor), item, note))

    try:
        feed()
        while pending:
            fut, item, note = pending.popleft()
            try:
                t = fut.result()
            except BaseException as e:  # noqa: BLE001 - a worker died on this target
                t = Target(item, note, error=_error_text(e))
            if window > 1:
                feed()  # keep the workers busy while this target's methods run
            handle_target(t)
            drain(block=window == 1)
            feed()  # with refine: only now, so nothing else runs during a refinement
        drain(block=True)
    finally:
        bar.close()
        writer.close()
        if refine_pool is not None and refine_pool is not pool:
            refine_pool.close()
        if pool is not None:
            pool.close()

    rows = writer.rows
    seconds = time.perf_counter() - t_start
    settings["seconds"] = round(seconds, 1)
    (out / "run.json").write_text(json.dumps(settings, indent=2))
    summary = out / "summary.md"
    summary.write_text(summarize(rows, settings))
    return EvalResult(out, writer.path, summary, rows, seconds)


def _bar(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="target", dynamic_ncols=True)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """Add the ``evaluate`` options to an argparse (sub)parser."""
    parser.add_argument("--set", dest="set_spec", required=True, metavar="KIND:DIR",
                        help="synthetic:DIR (test split of a generated dataset), presets:DIR (*.vital) or clips:DIR (audio)")
    parser.add_argument("--method", required=True,
                        help="init, mean, nearest, predict or refine; several comma-separated (refine implies predict)")
    parser.add_argument("--out", type=Path, required=True, help="results folder (results.csv, summary.md, run.json)")
    parser.add_argument("--budget", type=int, default=600, help="refinement renders per target (default 600)")
    parser.add_argument("--notes", default=None, help="MIDI notes, comma-separated (presets default 48,60,72; "
                                                      "synthetic: the dataset's)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint folder or Hub id (default: the shipped one)")
    parser.add_argument("--train-data", type=Path, default=None,
                        help="dataset for nearest/mean (default: a synthetic set's own dataset)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many items (first in sorted order)")
    parser.add_argument("--workers", type=int, default=None, help="render worker processes (default: every core; "
                                                                  "0: all in this process)")
    parser.add_argument("--k", type=int, default=4, help="predicted candidates rendered per target (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note-seconds", type=float, default=None, help="key held (presets default 1.5 s)")
    parser.add_argument("--render-seconds", type=float, default=None, help="render length (presets default 2.0 s)")
    parser.add_argument("--prior-samples", type=int, default=1024,
                        help="presets drawn from the prior for the mean baseline when no dataset is given")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor and oracle rows")
    parser.add_argument("--no-progress", action="store_true")


def main_args(args) -> int:
    """Run from parsed ``add_arguments`` options; prints where the results are and the median MSS per method."""
    res = evaluate(args.set_spec, args.method, args.out, budget=args.budget, notes=args.notes,
                   checkpoint=args.checkpoint, train_data=args.train_data, limit=args.limit, workers=args.workers,
                   k=args.k, seed=args.seed, floor=not args.no_floor, note_seconds=args.note_seconds,
                   render_seconds=args.render_seconds, prior_samples=args.prior_samples,
                   progress=not args.no_progress)
    mss = method_stats(res.rows, "mss")
    failed = sum(1 for r in res.rows if r.get("error"))
    print(f"wrote {res.csv} ({len(res.rows)} rows, {failed} failed) and {res.summary} in {res.seconds:.0f} s")
    print("median MSS (dB): " + ", ".join(f"{m} {s['median']:.2f}" for m, s in mss.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vital_inverse.evaluate ...`` (same options as ``vital-inverse evaluate``)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="vital-inverse evaluate", description="Evaluate a matching method.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return main_args(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
