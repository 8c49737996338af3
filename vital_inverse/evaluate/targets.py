# SPDX-License-Identifier: GPL-3.0-or-later
"""A target: one item at one note, rendered (or read) and analysed by intake exactly as a user's clip.

For items with a true preset (synthetic and preset sets) two reference rows
come with it: ``floor`` (the true preset rendered twice: the render noise)
and ``oracle`` (the true preset through the same analysis and scoring as a
method). Runs in a render worker (or in this process when there are none).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..constants import SAMPLE_RATE
from .score import OneThread, Scored, error_text, score_metrics, score_presets, silence_note
from .sets import PRESET_NOTE_SECONDS, PRESET_RENDER_SECONDS, VELOCITY, Item

__all__ = ["Target", "prepare_target", "truth_preset"]


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


_samplers: dict[int, Any] = {}  # one PresetSampler per dataset seed, per process


def truth_preset(kind: str, item: Item, seed: int):
    """The item's true preset: regenerated from (seed, index) for a synthetic set, read for a preset set."""
    if kind == "synthetic":
        from ..data.sampling import PresetSampler
        from ..params import default_space

        sampler = _samplers.get(seed)
        if sampler is None:
            sampler = _samplers[seed] = PresetSampler(default_space(), seed)
        return sampler.preset(int(item.index))
    from ..preset import load_vital

    return load_vital(item.path)


def prepare_target(kind: str, item: Item, note: int | None, velocity: float = VELOCITY,
                   note_seconds: float = PRESET_NOTE_SECONDS, render_seconds: float = PRESET_RENDER_SECONDS,
                   seed: int = 0, floor: bool = True, keep_raw: bool = False) -> Target:
    """Render (or read) one target, analyse it like a user's clip; with ``floor``, the floor and oracle rows.

    Any failure is recorded in ``Target.error`` (that target's rows), never raised: the run goes on.
    """
    from ..intake import analyze, analyze_file
    from ..synth import worker_renderer

    t = Target(item, note)
    try:
        if kind == "clips":
            t0 = time.perf_counter()
            t.analysis = analyze_file(item.path)
            t.analysis_s = time.perf_counter() - t0
            return t
        t.truth = truth_preset(kind, item, seed)
        raw = worker_renderer().render(t.truth, int(note), velocity, note_seconds, render_seconds)
        t0 = time.perf_counter()
        t.analysis = analyze(raw, SAMPLE_RATE, f"{item.id}@{note}")
        t.analysis_s = time.perf_counter() - t0
        if keep_raw:
            t.raw = raw
    except Exception as e:  # noqa: BLE001 - any failure is this target's row, the run goes on
        t.error = error_text(e)
        return t
    if floor:
        _add_reference_rows(t, raw, velocity, note_seconds, render_seconds)
    return t


def _add_reference_rows(t: Target, raw: np.ndarray, velocity: float, note_seconds: float,
                        render_seconds: float) -> None:
    """``floor``: a second render of the truth against the first, both at the analysis gain; ``oracle``: the truth
    scored against the analysed clip as a method's preset is."""
    from ..synth import worker_renderer

    try:
        again = worker_renderer().render(t.truth, int(t.note), velocity, note_seconds, render_seconds)
        g = np.float32(t.analysis.gain)
        with OneThread():
            t.floor = score_metrics(again * g, raw * g)
        t.floor_note = "; ".join(x for x in (silence_note(float(np.max(np.abs(raw))), "first render"),
                                             silence_note(float(np.max(np.abs(again))), "second render")) if x)
    except Exception as e:  # noqa: BLE001 - recorded on the floor row
        t.floor = {"error": error_text(e)}  # type: ignore[dict-item]
    a = t.analysis
    t.oracle = score_presets(a.audio, a.note, a.note_seconds, a.render_seconds, [t.truth])
