# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep a match on the clip's pitch: measure what a preset sounds at, shift its oscillators onto the clip's f0.

A musician hears 10 cents. Candidates from the predictor and presets moved
by refinement can sound off the clip's pitch (a transpose, a tune, an
octave), so:

- ``retune`` renders a preset at the clip's note, measures the sounding f0
  with intake's own pitch detector, and shifts every oscillator's
  transpose + tune by the same number of cents so the f0 lands on the
  clip's (the intervals between oscillators, octave or fifth layers, stay);
- ``pitch_locked`` names the parameters refinement must not move for a
  pitched clip: every transpose and tune, and routes into a tune.

Unpitched clips are left alone. Measurements: ``benchmarks/bench_pitch.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .intake import Analysis, IntakeError, analyze
from .params import ParamSpace, default_space
from .preset import Preset
from .synth import SAMPLE_RATE

__all__ = ["N_OSC", "cents_off", "pitch_locked", "retune", "shift_cents", "sounding_f0"]

N_OSC = 3
#: Offsets below this (cents) are left alone: one render's f0 moves by up to ~7 cents for
#: unison/chorus patches (random phases), and shifting on that noise would add error, not remove it.
TOLERANCE_CENTS = 8.0


def sounding_f0(audio: np.ndarray) -> float | None:
    """The f0 in Hz a render sounds at, as intake would report it for a clip (None if unpitched)."""
    try:
        a = analyze(np.asarray(audio, dtype=np.float32), SAMPLE_RATE)
    except (IntakeError, ValueError):
        return None
    return a.f0_hz if a.pitched else None


def cents_off(f0: float | None, target: Analysis) -> float | None:
    """How far ``f0`` is above the clip's f0, in cents (None if either is unknown)."""
    if f0 is None or not target.pitched or not target.f0_hz:
        return None
    return 1200.0 * math.log2(f0 / float(target.f0_hz))


def shift_cents(preset: Preset, cents: float, space: ParamSpace | None = None) -> Preset:
    """``preset`` with every oscillator moved by ``cents`` (transpose in semitones + tune in cents).

    Each oscillator's transpose*100 + tune*100 moves by the same amount, so
    layers keep their intervals; the result is clipped to Vital's ranges.
    """
    space = space or default_space()
    changes: dict[str, float] = {}
    for k in range(1, N_OSC + 1):
        tr, tu = space[f"osc_{k}_transpose"], space[f"osc_{k}_tune"]
        total = 100.0 * float(preset.values[tr.name]) + 100.0 * float(preset.values[tu.name]) + float(cents)
        semis = float(np.clip(round(total / 100.0), tr.min, tr.max))
        tune = float(np.clip((total - 100.0 * semis) / 100.0, tu.min, tu.max))
        changes[tr.name], changes[tu.name] = semis, tune
    return preset.with_values(changes)


def pitch_locked(preset: Preset, target: Analysis, space: ParamSpace | None = None) -> set[str]:
    """Parameters refinement keeps fixed for this target: everything that moves the pitch.

    Every oscillator's transpose and tune, and modulation routes into a tune
    (an LFO -> voice tune route shifts the mean pitch by half its amount).
    Layers stay as the start has them (an octave or fifth layer stays one).
    Empty for an unpitched target (nothing to keep).
    """
    if not target.pitched:
        return set()
    space = space or default_space()
    locked = {f"osc_{k}_{what}" for k in range(1, N_OSC + 1) for what in ("transpose", "tune")}
    locked |= {p.name for p in space.routes if any(d.endswith(("_tune", "_transpose")) for d in p.route.destinations)}
    return locked


def retune(presets: Sequence[Preset], target: Analysis, render: Callable[[Sequence[Preset]], list]) -> list[Preset]:
    """Each preset shifted so that it sounds at the clip's f0 (unpitched clips: unchanged).

    ``render(presets)`` returns one render (or an Exception) per preset at
    the clip's note and lengths (e.g. ``ParallelRenderer.render_jobs``). A
    preset whose render is unpitched or failed stays as it is. Octave
    errors are corrected too (the clip's pitch is what a listener hears).
    Costs one render per preset.
    """
    presets = list(presets)
    if not target.pitched or not target.f0_hz or not presets:
        return presets
    out = []
    for p, audio in zip(presets, render(presets)):
        off = None if isinstance(audio, Exception) else cents_off(sounding_f0(audio), target)
        out.append(p if off is None or abs(off) < TOLERANCE_CENTS else shift_cents(p, -off))
    return out
