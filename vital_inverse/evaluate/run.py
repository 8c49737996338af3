# SPDX-License-Identifier: GPL-3.0-or-later
"""The evaluation run: every target of a set through every method, rows written as results come.

Targets are rendered and analysed in the render workers a few ahead of
their methods (``prepare_target``); each method's presets are made here and
scored in the workers (``score_presets``), so rendering, analysis and
prediction overlap. With ``refine`` the targets go one at a time, so that
nothing else competes with a refinement's timing. ``evaluate`` then writes
``run.json`` (the settings) and ``summary.md`` beside ``results.csv``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..progress import progress_bar
from .methods import Methods, parse_methods, refine_preset, target_seed
from .rows import ResultRows
from .score import Scored, error_text, score_presets
from .sets import EvalSet, EvaluateError, Item, parse_set
from .summary import summarize
from .targets import Target, prepare_target

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """Where a run wrote its results, its rows, and how long it took (s)."""

    out: Path
    csv: Path
    summary: Path
    rows: list[dict[str, Any]]
    seconds: float


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
    methods = Methods(names, eset, checkpoint, train_data, k, budget, prior_samples, seed)
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
    n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
    rows = _Run(eset, methods, out / "results.csv", n_workers, seed, do_floor, progress).execute()
    seconds = time.perf_counter() - t_start
    settings["seconds"] = round(seconds, 1)
    (out / "run.json").write_text(json.dumps(settings, indent=2))
    summary = out / "summary.md"
    summary.write_text(summarize(rows, settings))
    return EvalResult(out, out / "results.csv", summary, rows, seconds)


class _Inline:
    """Executor stand-in that runs each task at once, in this process."""

    def submit(self, fn: Callable, *args, **kwargs) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller like a pool would
            f.set_exception(e)
        return f


OnScored = Callable[[Scored | BaseException], None]


class _Run:
    """One run's schedule over the set's targets (see the module docstring); ``execute`` returns the rows."""

    def __init__(self, eset: EvalSet, methods: Methods, csv_path: Path, workers: int, seed: int, floor: bool,
                 progress: bool) -> None:
        from ..params import default_space

        self.eset, self.methods, self.names, self.seed, self.floor = eset, methods, methods.names, seed, floor
        self.refine_too = "refine" in self.names
        self.todo: deque[tuple[Item, int | None]] = deque(eset.targets())
        self.rows = ResultRows(csv_path, eset.kind, default_space())
        self.bar = progress_bar(len(self.todo), f"evaluate {','.join(self.names)} on {eset.kind}", unit="target",
                                enabled=progress)
        self.pool = self.refine_pool = None
        if workers > 0:
            from ..synth import ParallelRenderer

            self.pool = self.refine_pool = ParallelRenderer(workers)
        self.ex = self.pool if self.pool is not None else _Inline()  # both have submit(fn, *args)
        # targets prepared ahead: one at a time with refine (nothing beside it) or in this process
        self.window = 1 if (self.refine_too or self.pool is None) else 2 * workers
        self.pending: deque[tuple[Future, Item, int | None]] = deque()
        self.scoring: deque[tuple[Future, OnScored, tuple]] = deque()
        self.outstanding: dict[tuple, int] = {}  # per target: results still to come before its bar tick

    def execute(self) -> list[dict[str, Any]]:
        try:
            self._feed()
            while self.pending:
                fut, item, note = self.pending.popleft()
                try:
                    t = fut.result()
                except BaseException as e:  # noqa: BLE001 - a worker died on this target
                    t = Target(item, note, error=error_text(e))
                if self.window > 1:
                    self._feed()  # keep the workers busy while this target's methods run
                self._handle_target(t)
                self._drain(block=self.window == 1)
                self._feed()  # with refine: only now, so nothing else runs during a refinement
            self._drain(block=True)
        finally:
            self._close()
        return self.rows.rows

    def _close(self) -> None:
        self.bar.close()
        self.rows.close()
        if self.refine_pool is not None and self.refine_pool is not self.pool:
            self.refine_pool.close()
        if self.pool is not None:
            self.pool.close()

    # -- scheduling ---------------------------------------------------------

    def _feed(self) -> None:
        e = self.eset
        while self.todo and len(self.pending) < self.window:
            item, note = self.todo.popleft()
            fut = self.ex.submit(prepare_target, e.kind, item, note, e.velocity, e.note_seconds, e.render_seconds,
                                 e.seed, self.floor)
            self.pending.append((fut, item, note))

    def _submit_score(self, t: Target, presets: list, on_done: OnScored, first_too: bool = False) -> None:
        a = t.analysis
        fut = self.ex.submit(score_presets, a.audio, a.note, a.note_seconds, a.render_seconds, presets, first_too)
        self.outstanding[t.key] = self.outstanding.get(t.key, 0) + 1
        self.scoring.append((fut, on_done, t.key))

    def _drain(self, block: bool) -> None:
        while self.scoring and (block or self.scoring[0][0].done()):
            fut, on_done, key = self.scoring.popleft()
            try:
                res: Scored | BaseException = fut.result()
            except BaseException as e:  # noqa: BLE001 - a broken worker: recorded for this row
                res = e
            on_done(res)
            self._finish_one(key)

    def _finish_one(self, key: tuple) -> None:
        self.outstanding[key] -= 1
        if self.outstanding[key] == 0:
            self.bar.update(1)

    # -- one target ---------------------------------------------------------

    def _handle_target(self, t: Target) -> None:
        self.outstanding[t.key] = self.outstanding.get(t.key, 0) + 1  # held until the methods are submitted
        if t.error:
            for m in self.names + (["predict_top1"] if "predict" in self.names else []):
                self.rows.error(t, m, t.error)
        else:
            self._reference_rows(t)
            for m in self.names:
                self._run_method(t, m)
        self._finish_one(t.key)

    def _reference_rows(self, t: Target) -> None:
        if t.floor is not None:
            err = t.floor.get("error") if isinstance(t.floor.get("error"), str) else ""
            self.rows.metric(t, "floor", None if err else t.floor, error=err, renders=1, detail=t.floor_note)
        if t.oracle is not None:
            self.rows.scored(t, "oracle", t.truth, t.oracle, renders=1)

    def _run_method(self, t: Target, m: str) -> None:
        if m == "refine":
            return  # handled with predict
        try:
            if m in ("init", "mean"):
                self._run_baseline(t, m)
            elif m == "nearest":
                self._run_nearest(t)
            elif m == "predict":
                self._run_predict(t)
        except Exception as e:  # noqa: BLE001 - this method failed on this target; the run goes on
            failed = [m] + (["predict_top1"] + (["refine"] if self.refine_too else []) if m == "predict" else [])
            for f in failed:
                self.rows.error(t, f, error_text(e))

    def _run_baseline(self, t: Target, m: str) -> None:
        preset = (self.methods.init if m == "init" else self.methods.mean)(t.analysis)
        self._submit_score(t, [preset], lambda r: self.rows.scored(t, m, preset, r, method_s=0.0, renders=1))

    def _run_nearest(self, t: Target) -> None:
        t0 = time.perf_counter()
        preset, hit = self.methods.nearest.lookup(t.analysis)
        dt = time.perf_counter() - t0
        detail = f"item {hit.index} at note {hit.note}, {hit.distance:.2f} dB RMS"
        self._submit_score(t, [preset], lambda r: self.rows.scored(t, "nearest", preset, r, method_s=dt, renders=1,
                                                                   detail=detail))

    def _run_predict(self, t: Target) -> None:
        t0 = time.perf_counter()
        cands = self.methods.predictor.predict(t.analysis, k=self.methods.k)
        dt = time.perf_counter() - t0
        presets = [c.preset for c in cands]
        self._submit_score(t, presets, lambda r: self._predicted(t, presets, dt, r), first_too=True)

    def _predicted(self, t: Target, presets: list, dt: float, r: Scored | BaseException) -> None:
        """The ``predict`` and ``predict_top1`` rows; then, with ``refine``, refinement from the chosen preset."""
        ok = not isinstance(r, BaseException) and not r.error
        chosen = r.chosen if ok else None
        losses = ",".join(f"{x:.4g}" for x in r.losses) if ok and r.losses else ""
        self.rows.scored(t, "predict", presets[chosen] if ok else None, r, method_s=dt,
                         select_s=r.seconds if ok else None, renders=len(presets), chosen=chosen,
                         detail=f"candidate losses {losses}" if losses else "")
        top1: Scored | BaseException = dataclasses.replace(r, metrics=r.first_metrics) if ok else r
        if ok and r.first_metrics is None:
            top1 = RuntimeError("the most probable candidate could not be rendered")
        self.rows.scored(t, "predict_top1", presets[0], top1, method_s=dt, renders=0, chosen=0)
        if self.refine_too:
            if not ok:
                self.rows.error(t, "refine", "prediction failed; nothing to refine")
            else:
                self._run_refine(t, presets[chosen])

    def _run_refine(self, t: Target, start) -> None:
        try:
            if self.refine_pool is None:
                from ..synth import ParallelRenderer

                self.refine_pool = ParallelRenderer(1)
            rr = refine_preset(t.analysis, start, self.methods.budget, target_seed(self.seed, t.key),
                               self.refine_pool)
        except Exception as e:  # noqa: BLE001 - recorded on the refine row
            self.rows.error(t, "refine", error_text(e))
            return
        extra = {"method_s": rr.seconds, "renders": rr.renders, "refine_start_loss": rr.start_loss,
                 "refine_loss": rr.loss, "refine_t90_s": rr.t90, "refine_r90": rr.r90}
        a = t.analysis
        try:
            res: Scored | BaseException = self.ex.submit(score_presets, a.audio, a.note, a.note_seconds,
                                                         a.render_seconds, [rr.preset]).result()
        except BaseException as e:  # noqa: BLE001
            res = e
        self.rows.scored(t, "refine", rr.preset, res, **extra)
