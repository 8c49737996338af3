# SPDX-License-Identifier: GPL-3.0-or-later
"""Keep a match on the clip's pitch: measure what a preset sounds at, shift its oscillators onto the clip's f0.

A musician hears 10 cents. Candidates from the predictor and presets moved
by refinement can sound off the clip's pitch (a transpose, a tune, an
octave), so:

- ``retune`` renders a preset at the clip's note, measures the sounding
  f0 with intake's own pitch detector (the octave and semitone); where a
  second tracker (librosa.yin) disagrees with the detector about the
  clip's f0, the cents come from a second measure, ``partial_offset``: the
  shift that lines the render's partials up with the clip's (log-frequency
  spectra correlated within +-``FINE_SPAN_CENTS`` of the detector's
  answer). An f0 detector can sit ~20 cents off on a layered or beating
  sound (and then agrees with itself on clip and render alike); the
  partials are what a listener hears. Where the trackers agree the
  detector's cents stand: on noisy or inharmonic sounds the partials'
  alignment can be ~20 cents off where both trackers are right. Every oscillator's transpose + tune then moves by the
  same number of cents (the intervals between oscillators, octave or fifth
  layers, stay);
- ``pitch_locked`` names the parameters refinement must not move for a
  pitched clip: every transpose and tune, and routes into a tune.

Unpitched clips are left alone. Measurements: ``benchmarks/bench_match.py`` (BENCHMARKS.md section 7).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from .intake import Analysis, IntakeError, analyze
from .params import ParamSpace, default_space
from .preset import Preset
from .synth import SAMPLE_RATE

__all__ = ["N_OSC", "cents_off", "partial_offset", "pitch_locked", "retune", "shift_cents", "sounding_f0", "yin_f0"]

N_OSC = 3
#: Offsets below this (cents) are left alone: one render's f0 moves by up to ~7 cents for
#: unison/chorus patches (random phases), and shifting on that noise would add error, not remove it.
TOLERANCE_CENTS = 8.0
#: ``partial_offset`` searches this far (cents) either side of the f0 detector's answer: beyond a
#: quarter tone away the detector's octave/semitone decision stands.
FINE_SPAN_CENTS = 50.0
#: Log-frequency spectra span these frequencies (Hz) at 1-cent steps; partials below 60 dB of the
#: strongest are left out (noise and leakage would dominate the correlation).
_SPECTRUM_HZ = (40.0, 10000.0)
_SPECTRUM_FLOOR_DB = 60.0
#: The aligned correlation must beat the detector's shift by this much (relative) to move it: on a
#: noisy or inharmonic sound the correlation is flat and the detector's answer stays.
_MIN_GAIN = 0.02


def sounding_f0(audio: np.ndarray) -> float | None:
    """The f0 in Hz a render sounds at, as intake would report it for a clip (None if unpitched)."""
    try:
        a = analyze(np.asarray(audio, dtype=np.float32), SAMPLE_RATE)
    except (IntakeError, ValueError):
        return None
    return a.f0_hz if a.pitched else None


def _log_spectrum(audio: np.ndarray) -> np.ndarray:
    """Magnitude spectrum of the louder part of ``audio`` on a 1-cent log-frequency grid over
    ``_SPECTRUM_HZ``, in dB above a floor ``_SPECTRUM_FLOOR_DB`` below its maximum (>= 0), mean removed."""
    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    hop = 2048
    n = len(x) // hop
    if n < 2:
        seg = x
    else:  # the frames within 20 dB of the loudest (the note, not its tail)
        e = np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))
        loud = np.flatnonzero(e >= e.max() * 0.1)
        seg = x[loud[0] * hop : (loud[-1] + 1) * hop]
    n_fft = max(1 << 16, 1 << int(np.ceil(np.log2(max(len(seg), 2)))))
    mag = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    lo, hi = _SPECTRUM_HZ[0], min(_SPECTRUM_HZ[1], SAMPLE_RATE / 2.0)
    grid = lo * 2.0 ** (np.arange(int(1200 * math.log2(hi / lo))) / 1200.0)
    db = 20.0 * np.log10(np.interp(grid, freqs, mag) + 1e-12)
    v = np.maximum(db - db.max() + _SPECTRUM_FLOOR_DB, 0.0)
    return v - v.mean()


def partial_offset(audio: np.ndarray, clip: np.ndarray, around: float = 0.0,
                   span: float = FINE_SPAN_CENTS) -> float:
    """Cents to move ``audio`` by so that its partials line up with ``clip``'s, searched within
    ``around`` +- ``span`` cents (1-cent steps): the lag maximising the correlation of the two
    log-frequency spectra. Returns ``around`` when the best lag is not clearly better (flat
    correlation: noise, inharmonic sounds), lies on the edge of the span (the alignment is
    further away: e.g. sidebands, where the detector picked one) or either signal is silent."""
    return _aligned_offset(_log_spectrum(audio), _log_spectrum(clip), around, span)


def _aligned_offset(a: np.ndarray, c: np.ndarray, around: float, span: float) -> float:
    """``partial_offset`` on the two signals' ``_log_spectrum``s (so a clip's is computed once per retune)."""
    na, nc = float(np.linalg.norm(a)), float(np.linalg.norm(c))
    if na == 0.0 or nc == 0.0:
        return float(around)
    lags = np.arange(int(round(around - span)), int(round(around + span)) + 1)
    n = len(a)

    def corr(lag: int) -> float:  # audio moved up by ``lag`` cents against the clip
        if lag >= 0:
            return float(np.dot(a[: n - lag], c[lag:]))
        return float(np.dot(a[-lag:], c[: n + lag]))

    scores = np.array([corr(int(k)) for k in lags]) / (na * nc)
    best = int(np.argmax(scores))
    at_around = corr(int(round(around))) / (na * nc)
    if best in (0, len(lags) - 1) or scores[best] <= at_around + _MIN_GAIN * abs(at_around):
        return float(around)  # flat, or the best alignment lies beyond the span: the detector's answer stands
    return float(lags[best])


def yin_f0(audio: np.ndarray, fmax: float = 2000.0) -> float | None:
    """Median f0 (Hz) by ``librosa.yin`` (30 Hz-``fmax``, 4096-sample frames, hop 512) over the frames
    within 20 dB of the loudest: a time-domain tracker independent of intake's detector. None when the
    audio is shorter than a frame or silent."""
    import librosa

    x = np.asarray(audio, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if len(x) < 4096 or not np.any(x):
        return None
    f0 = librosa.yin(x, fmin=30.0, fmax=fmax, sr=SAMPLE_RATE, frame_length=4096, hop_length=512)
    rms = librosa.feature.rms(y=x, frame_length=4096, hop_length=512)[0][: len(f0)]
    loud = rms >= rms.max() * 10 ** (-20 / 20)
    return float(np.median(f0[loud])) if np.any(loud) else None


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
    clip_spectrum = _log_spectrum(target.audio) if _detector_doubtful(target) else None
    out = []
    for p, audio in zip(presets, render(presets)):
        off = None if isinstance(audio, Exception) else cents_off(sounding_f0(audio), target)
        if off is not None and clip_spectrum is not None:  # the detector's octave/semitone, the partials' cents
            off = -_aligned_offset(_log_spectrum(audio), clip_spectrum, -off, FINE_SPAN_CENTS)
        out.append(p if off is None or abs(off) < TOLERANCE_CENTS else shift_cents(p, -off))
    return out


def _detector_doubtful(target: Analysis) -> bool:
    """True when a second tracker (librosa.yin, time domain, frames within 20 dB of the loudest) puts the
    clip's f0 ``TOLERANCE_CENTS`` or more (modulo octaves) away from intake's: then the cents come from
    the partials (``partial_offset``). Where the two trackers agree the detector's cents stand: on sounds
    with noise or inharmonic partials the spectral alignment can be 20 cents off where both trackers are right."""
    f0 = yin_f0(target.audio) if target.f0_hz else None
    if f0 is None:
        return False
    c = 1200.0 * math.log2(f0 / float(target.f0_hz))
    return abs(c - 1200.0 * round(c / 1200.0)) >= TOLERANCE_CENTS
