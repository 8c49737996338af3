# SPDX-License-Identifier: GPL-3.0-or-later
"""Scoring a target's presets: render each, keep the closest, report its metrics.

Runs in a render worker (or in this process when there are none). Each
preset is rendered at the target's note and lengths and matched to it
(``scoring.jobs_for``, ``scoring.render_each``, ``scoring.match_to_target``:
the path the app and refinement use); the closest by MRSTFT
(``metrics.mrstft_batch``) is kept and scored with every metric
(``metrics.all_metrics``). A row's ``detail`` says when the kept render was
silent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..constants import SILENT_RENDER_PEAK

__all__ = [
    "OneThread",
    "Scored",
    "error_text",
    "score_groups",
    "score_metrics",
    "score_presets",
    "silence_note",
]


def error_text(e: BaseException) -> str:
    """One line for a result row's ``error`` column: the exception's type and message."""
    text = str(e).strip().replace("\n", " ")
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def silence_note(peak: float, what: str = "render") -> str:
    """A row's detail when a render's peak is below ``SILENT_RENDER_PEAK`` (else empty)."""
    return f"{what} silent (peak {peak:.2g})" if peak < SILENT_RENDER_PEAK else ""


def score_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``metrics.all_metrics(a, b)`` with the batched MRSTFT (same values to ~1e-6, faster)."""
    from ..metrics import all_metrics

    return all_metrics(a, b, batched_mrstft=True)


class OneThread:
    """Torch on one thread while scoring outside a render worker (workers already are single-threaded):
    on two shared cores, two torch threads spin against each other and MRSTFT runs several times slower."""

    def __enter__(self) -> OneThread:
        import torch

        from ..synth import in_render_worker

        self.torch = torch
        self.prev = None
        if not in_render_worker():
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
    mss_each: list[float] = field(default_factory=list)  # MSS per preset of the group (when asked)


def score_presets(target_audio: np.ndarray, note: int, note_seconds: float, render_seconds: float,
                  presets: Sequence, first_too: bool = False, keep_audio: bool = False) -> Scored:
    """Render ``presets`` at (note, velocity 0.8, note_seconds, render_seconds), match each to the target
    (``scoring.match_to_target``), keep the one with the lowest MRSTFT (if several) and return its metrics.

    ``first_too``: also the metrics of ``presets[0]`` (the most probable prediction).
    ``keep_audio``: keep the chosen render, matched, float32 (2, n).
    A preset whose render fails loses the selection; if every one fails, ``error`` says why.
    """
    with OneThread():
        t0 = time.perf_counter()
        matched, peaks, errors = _render_matched(target_audio, note, note_seconds, render_seconds, presets)
        ok = [i for i, m in enumerate(matched) if m is not None]
        if not ok:
            return Scored(error=errors[0] if errors else "no preset to score", seconds=time.perf_counter() - t0)
        losses = _selection_losses(matched, target_audio) if len(presets) > 1 else []
        chosen = int(np.argmin(losses)) if losses else ok[0]
        seconds = time.perf_counter() - t0  # render + selection, not the final metrics
        out = Scored(metrics=score_metrics(matched[chosen], target_audio), chosen=chosen, losses=losses,
                     seconds=seconds, note=silence_note(peaks[chosen]))
        if first_too:
            out.first_metrics = _first_metrics(out, matched, target_audio)
        if keep_audio:
            out.audio = matched[chosen]
        return out


def _first_metrics(out: Scored, matched: Sequence, target_audio: np.ndarray) -> dict[str, float] | None:
    if out.chosen == 0:
        return out.metrics
    return score_metrics(matched[0], target_audio) if matched[0] is not None else None


def score_groups(target_audio: np.ndarray, note: int, note_seconds: float, render_seconds: float,
                 presets: Sequence, groups: dict[str, Sequence[int]], mss_each: bool = False) -> dict[str, Scored]:
    """Render every preset once and, per named group of preset indices, keep the lowest-MRSTFT one and score it:
    what ``score_presets`` gives for each group's presets, at one render per preset (benchmarks comparing
    candidate sources: heads, retrieval, K generative samples, all together). ``mss_each``: also the MSS of
    every preset (inf where its render failed), for studying selection rules offline."""
    with OneThread():
        t0 = time.perf_counter()
        matched, peaks, _ = _render_matched(target_audio, note, note_seconds, render_seconds, presets)
        losses = _selection_losses(matched, target_audio)
        seconds = time.perf_counter() - t0
        from ..metrics import mss

        each = [mss(m, target_audio) if m is not None else math.inf for m in matched] if mss_each else []
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
                               note=silence_note(peaks[best]), mss_each=[each[i] for i in idx] if each else [])
        return out


def _render_matched(target_audio, note, note_seconds, render_seconds, presets) -> tuple[list, list[float], list[str]]:
    """Render each preset on this process's Renderer and match it to the target (``scoring``): (matched render
    or None, raw peak or nan, and the error text of each failure)."""
    from ..scoring import jobs_for, match_to_target, render_each
    from ..synth import worker_renderer

    matched: list[np.ndarray | None] = []
    peaks: list[float] = []
    errors: list[str] = []
    for a in render_each(worker_renderer(), jobs_for(presets, note, note_seconds, render_seconds)):
        if not isinstance(a, Exception):
            try:
                matched.append(match_to_target(a, target_audio))
                peaks.append(float(np.max(np.abs(a))) if a.size else 0.0)
                continue
            except Exception as e:  # noqa: BLE001 - recorded; the other candidates still count
                a = e
        matched.append(None)
        peaks.append(float("nan"))
        errors.append(error_text(a))
    return matched, peaks, errors


def _selection_losses(matched: Sequence, target_audio: np.ndarray) -> list[float]:
    """MRSTFT (``metrics.mrstft_batch``, batched in torch) of each matched render; inf where it failed."""
    from ..metrics import mrstft_batch

    ok = [i for i, m in enumerate(matched) if m is not None]
    losses = [math.inf] * len(matched)
    for i, v in zip(ok, mrstft_batch([matched[i] for i in ok], target_audio) if ok else []):
        losses[i] = float(v) if math.isfinite(v) else math.inf
    return losses
