# SPDX-License-Identifier: GPL-3.0-or-later
"""Render-and-score: the one place that renders presets at a target's note and compares them with it.

Refinement, the app's candidate ranking and the benchmarks all score a
render the same way, so it lives here once:

* ``match_to_target``: a render padded/cropped to the target's length and
  scaled to the target's RMS (the target is loudness-normalised and a
  preset's output level is not what is matched).
* ``loss``: auraloss ``MultiResolutionSTFTLoss()`` (defaults) re-implemented
  in NumPy/SciPy (equal to ``metrics.mrstft`` to ~1e-5) so render workers
  need not import torch, plus an optional log-mel term. A render below
  -60 dBFS RMS is inaudible and scores ``FAILED_LOSS``, as does a failed render.
* ``Evaluator`` / ``score_presets``: render a batch of presets at the
  target's note, velocity 0.8 and lengths and score it, inside a
  ParallelRenderer's worker processes (one chunk per worker; only the
  losses and each chunk's best matched render travel back).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
from collections.abc import Sequence

import numpy as np

from .errors import UserError
from .intake import Analysis
from .preset import Preset
from .synth import DEFAULT_VELOCITY, ParallelRenderer, RenderJob, worker_renderer

__all__ = [
    "FAILED_LOSS",
    "MRSTFT_RESOLUTIONS",
    "Evaluator",
    "ScoringError",
    "jobs_for",
    "loss",
    "match_to_target",
    "min_samples",
    "render_each",
    "score_presets",
]

#: Loss given to a candidate whose render failed or is inaudible (far above any real MRSTFT, ~1-10).
FAILED_LOSS = 1e3
#: Renders are scaled to the target's RMS unless they are this quiet (then left as they are).
_QUIET_RMS = 1e-9
#: A render whose own RMS is below this (-60 dBFS) is inaudible: scored as failed.
_INAUDIBLE_RMS = 1e-3


class ScoringError(UserError):
    """Audio handed to the scorer is not shaped like audio; the message says what was given."""


# --------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------


def as_stereo(audio: np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] not in (1, 2) or a.dtype.kind not in "fiu":
        raise ScoringError(f"{what}: expected audio shaped (2, n), (1, n) or (n,), got {a.dtype} {a.shape}")
    if a.shape[0] == 1:
        a = np.repeat(a, 2, axis=0)
    return np.ascontiguousarray(a, dtype=np.float32)


def _fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def _match(audio: np.ndarray, n: int, target_rms: float) -> np.ndarray:
    a = _fit_length(as_stereo(audio, "audio"), n)
    r = _rms(a)
    if r > _QUIET_RMS:
        a = (a * np.float32(target_rms / r)).astype(np.float32, copy=False)
    return np.ascontiguousarray(a)


def match_to_target(audio: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``audio`` as stereo float32 at the target's length, scaled to the target's RMS: the pair the loss compares.

    The target is loudness-normalised and a preset's output level is not
    what is matched, so every comparison with the target (the loss, the
    app's A/B player, evaluation) goes through this.
    """
    t = as_stereo(target, "target")
    return _match(audio, t.shape[1], _rms(t))


#: auraloss ``MultiResolutionSTFTLoss()`` defaults: (fft size, hop, window length); weights sc 1, log-mag 1.
MRSTFT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
_MRSTFT_EPS = 1e-8
#: Mel bands of the optional log-mel term, per FFT size (as metrics.MSS_SCALES: 32/64/128).
_MEL_BANDS = {512: 32, 1024: 64, 2048: 128}


def min_samples() -> int:
    """Shortest target the loss can analyse: the MRSTFT's largest FFT."""
    return max(n_fft for n_fft, _, _ in MRSTFT_RESOLUTIONS)


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (torch.hann_window's default)."""
    w = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)
    w.setflags(write=False)
    return w


def _power(x: np.ndarray, n_fft: int, hop: int, win: int, bufs: dict | None = None) -> np.ndarray:
    """|STFT|^2 (clamped at eps) exactly as auraloss/torch.stft frame it, (C, frames, bins) float32.

    torch.stft: centre with reflect padding of n_fft // 2, periodic Hann of
    ``win`` samples zero-padded to n_fft in the middle; only the window's
    non-zero span is framed here (the magnitude does not depend on where in
    the FFT frame the zeros go). ``bufs`` caches the zero-padded frame buffer.
    """
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy import fft

    xp = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    off = (n_fft - win) // 2
    frames = 1 + (xp.shape[1] - n_fft) // hop
    fr = sliding_window_view(xp, win, axis=1)[:, off : off + (frames - 1) * hop + 1 : hop]
    key = (x.shape[0], frames, n_fft, win)
    buf = None if bufs is None else bufs.get(key)
    if buf is None:
        buf = np.zeros(key[:3], dtype=np.float32)
        if bufs is not None:
            bufs[key] = buf
    np.multiply(fr, _hann(win), out=buf[..., :win])
    spec = fft.rfft(buf, axis=-1)
    p = np.square(spec.real)
    p += np.square(spec.imag)
    return np.maximum(p, np.float32(_MRSTFT_EPS), out=p)


class _Scorer:
    """The refinement loss against one target, with the target's spectra computed once.

    NumPy/SciPy re-implementation of auraloss ``MultiResolutionSTFTLoss()``
    (equal to ``metrics.mrstft`` to ~1e-5, checked in the tests) so that the
    render workers need not import torch (seconds per worker, ~300 MB each).
    """

    def __init__(self, target: np.ndarray, logmel_weight: float = 0.0) -> None:
        self.target = as_stereo(target, "target")
        self.n = self.target.shape[1]
        self.rms = _rms(self.target)
        self.logmel_weight = float(logmel_weight)
        self._fb: dict[int, np.ndarray] = {}
        self._bufs: dict = {}  # per scorer: a scorer is used by one thread at a time
        self._ref = []
        for n_fft, hop, win in MRSTFT_RESOLUTIONS:
            p = _power(self.target, n_fft, hop, win)
            mag = np.sqrt(p)
            ydb = self._mel_db(p, n_fft) if self.logmel_weight else None
            # log power (= 2 log magnitude): the render's side then needs one log and no sqrt before it
            self._ref.append((mag, np.log(p), float(np.linalg.norm(mag)), ydb))

    def _mel_db(self, power: np.ndarray, n_fft: int) -> np.ndarray:
        """Log-mel in dB re the signal's own maximum, floored at -80 dB (MSS-like, level-free)."""
        fb = self._fb.get(n_fft)
        if fb is None:
            from .constants import SAMPLE_RATE
            from .features import mel_filterbank  # librosa: imported only where a log-mel term is asked for

            fb = self._fb[n_fft] = np.asarray(mel_filterbank(SAMPLE_RATE, n_fft, _MEL_BANDS[n_fft]), dtype=np.float32).T
        db = 10.0 * np.log10(np.maximum(power @ fb, 1e-10))
        return np.maximum(db - db.max(), -80.0)

    def match(self, audio: np.ndarray) -> np.ndarray:
        """Stereo float32 at the target's length, scaled to the target's RMS."""
        return _match(audio, self.n, self.rms)

    def score_matched(self, audio: np.ndarray) -> float:
        """Loss of an already matched render (see ``match``)."""
        total = 0.0
        for (n_fft, hop, win), (ym, ylogp, ynorm, ydb) in zip(MRSTFT_RESOLUTIONS, self._ref):
            p = _power(audio, n_fft, hop, win, self._bufs)
            if self.logmel_weight:
                total += self.logmel_weight * float(np.mean(np.abs(self._mel_db(p, n_fft) - ydb))) / 10.0
            # In place and in float32 (a third of the loss's time went to temporaries and float64
            # means): spectral convergence ||x - y|| / ||y|| on magnitudes, then mean |log x - log y|.
            d = np.sqrt(p)
            d -= ym
            flat = d.reshape(-1)
            sc = math.sqrt(float(np.dot(flat, flat))) / ynorm
            np.log(p, out=p)
            p -= ylogp
            np.abs(p, out=p)
            logmag = 0.5 * float(p.sum(dtype=np.float32)) / p.size
            total += sc + logmag
        return total / len(MRSTFT_RESOLUTIONS)

    def score(self, audio: np.ndarray) -> tuple[float, np.ndarray]:
        raw_rms = _rms(_fit_length(as_stereo(audio, "audio"), self.n))
        a = self.match(audio)
        if raw_rms < _INAUDIBLE_RMS:
            # Scaling a near-silent render up to the target's loudness scores its noise floor and
            # artefacts, which can look like a match; a preset nobody can hear is a failed candidate.
            return FAILED_LOSS, a
        return self.score_matched(a), a


def loss(target_audio: np.ndarray, audio: np.ndarray, *, logmel_weight: float = 0.0) -> float:
    """The refinement loss of ``audio`` against ``target_audio`` (lower is better).

    ``audio`` is padded/cropped to the target's length and scaled to the
    target's RMS, then scored with auraloss ``MultiResolutionSTFTLoss()``
    (defaults; equal to ``metrics.mrstft(matched, target)`` to ~1e-5). With ``logmel_weight``
    a log-mel dB distance / 10 is added with that weight (off by default:
    it did not improve MSS, see the module docstring).
    """
    scorer = _Scorer(as_stereo(target_audio, "target_audio"), logmel_weight)
    return scorer.score(audio)[0]


# --------------------------------------------------------------------------
# Rendering and scoring in the workers
# --------------------------------------------------------------------------

_worker_scorers: dict[bytes, _Scorer] = {}


def _worker_scorer(key: bytes, target: np.ndarray, logmel_weight: float) -> _Scorer:
    scorer = _worker_scorers.get(key)
    if scorer is None:
        if len(_worker_scorers) >= 2:
            _worker_scorers.clear()
        scorer = _worker_scorers[key] = _Scorer(target, logmel_weight)
    return scorer


def _render_score_chunk(args) -> tuple[list[float], list[str], int, np.ndarray | None]:
    """Worker side: render jobs, score them; return losses, errors, the chunk's best index and audio."""
    key, target, logmel_weight, jobs = args
    renderer = worker_renderer()
    scorer = _worker_scorer(key, target, logmel_weight)
    losses: list[float] = []
    errors: list[str] = []
    best_i, best_audio = -1, None
    for job in jobs:
        try:
            audio = renderer.render_job(job)
        except Exception as e:  # noqa: BLE001 - a failed render is a bad candidate, not a crash
            losses.append(FAILED_LOSS)
            errors.append(str(e) or type(e).__name__)
            continue
        value, matched = scorer.score(audio)  # an inaudible render (< -60 dBFS) is a failed candidate here too
        if not math.isfinite(value):
            value = FAILED_LOSS
        losses.append(value)
        errors.append("")
        if best_i < 0 or value < losses[best_i]:
            best_i, best_audio = len(losses) - 1, matched
    return losses, errors, best_i, best_audio


class Evaluator:
    """Renders and scores batches of presets on a ParallelRenderer's workers; counts renders."""

    def __init__(self, renderer: ParallelRenderer, target: Analysis, logmel_weight: float) -> None:
        self.renderer = renderer
        self.target = target
        self.audio = as_stereo(target.audio, "target audio")
        self.logmel_weight = float(logmel_weight)
        self.key = hashlib.blake2b(self.audio.tobytes() + repr(self.logmel_weight).encode(), digest_size=16).digest()
        self.renders = 0
        self.failures: list[str] = []
        self._scorer: _Scorer | None = None  # main-process scorer for ``rescore``, made on first use

    def job(self, preset: Preset) -> RenderJob:
        t = self.target
        return jobs_for([preset], t.note, t.note_seconds, t.render_seconds)[0]

    def render(self, presets: Sequence[Preset]) -> list[np.ndarray | Exception]:
        """Raw renders at the target's note and lengths (counted like every render)."""
        out = self.renderer.render_jobs([self.job(p) for p in presets], raise_errors=False)
        self.renders += len(out)
        return out

    def rescore(self, presets: Sequence[Preset]) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray | None]:
        """Fresh renders scored by the loss, with every matched render kept: (losses, matched renders (None
        for a failed or inaudible one, which scores ``FAILED_LOSS``), the lowest-loss matched render).

        Renders run on the workers, the losses here, so that the caller can score the same renders by a
        second measure (refinement's MSS gate: ``metrics`` imports torch, which the workers never load).
        """
        if self._scorer is None:
            self._scorer = _Scorer(self.audio, self.logmel_weight)
        losses: list[float] = []
        kept: list[np.ndarray | None] = []
        best_i = -1
        for audio in self.render(presets):
            value, matched = (FAILED_LOSS, None) if isinstance(audio, Exception) else self._scorer.score(audio)
            ok = math.isfinite(value) and value < FAILED_LOSS
            losses.append(value if ok else FAILED_LOSS)
            kept.append(matched if ok else None)
            if ok and (best_i < 0 or value < losses[best_i]):
                best_i = len(losses) - 1
        return np.asarray(losses, dtype=np.float64), kept, (kept[best_i] if best_i >= 0 else None)

    def evaluate(self, presets: Sequence[Preset]) -> tuple[np.ndarray, int, np.ndarray | None]:
        """Losses (in order), index of the best and its matched render."""
        jobs = [self.job(p) for p in presets]
        if not jobs:
            return np.zeros(0), -1, None
        workers = max(1, int(getattr(self.renderer, "workers", 1)))
        n = min(len(jobs), workers)
        bounds = np.linspace(0, len(jobs), n + 1).round().astype(int)
        chunks = [jobs[a:b] for a, b in itertools.pairwise(bounds)]
        payloads = [(self.key, self.audio, self.logmel_weight, c) for c in chunks]
        losses: list[float] = []
        best_i, best_audio = -1, None
        for part_losses, part_errors, part_best, part_audio in self.renderer.map(_render_score_chunk, payloads):
            if part_best >= 0 and (best_i < 0 or part_losses[part_best] < losses[best_i]):
                best_i, best_audio = len(losses) + part_best, part_audio
            losses.extend(part_losses)
            self.failures.extend(e for e in part_errors if e)
        self.renders += len(jobs)
        return np.asarray(losses, dtype=np.float64), best_i, best_audio


def jobs_for(presets: Sequence[Preset], note: int, note_seconds: float, render_seconds: float) -> list[RenderJob]:
    """One RenderJob per preset at ``note``, velocity 0.8 and these lengths (seconds): how every candidate is heard."""
    return [RenderJob(p, int(note), DEFAULT_VELOCITY, float(note_seconds), float(render_seconds)) for p in presets]


def render_each(renderer, jobs: Sequence[RenderJob]) -> list[np.ndarray | Exception]:
    """Render ``jobs`` one after another on a plain Renderer, in order: float32 (2, n) each, or the exception
    that stopped it (a render with NaN or infinite samples is a ValueError): one failure does not stop the rest."""
    out: list[np.ndarray | Exception] = []
    for job in jobs:
        try:
            audio = renderer.render_job(job)
            if not np.all(np.isfinite(audio)):
                raise ValueError("the render contains NaN or infinite samples")
            out.append(audio)
        except Exception as e:  # noqa: BLE001 - a failed render is a bad candidate, not a crash
            out.append(e)
    return out


def score_presets(renderer, presets: Sequence[Preset], target: Analysis,
                  logmel_weight: float = 0.0) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Render every preset at the target's note and lengths and score it with ``loss``.

    Returns (losses in order, float64 (n,); index of the best, -1 if none;
    the best's matched render, float32 (2, n) or None). A failed or
    inaudible render scores ``FAILED_LOSS``. With a ParallelRenderer the
    renders and losses run in its workers (``Evaluator``); with a plain
    Renderer (one per thread), one after another here with the same loss.
    """
    if isinstance(renderer, ParallelRenderer):
        return Evaluator(renderer, target, logmel_weight).evaluate(list(presets))
    scorer = _Scorer(as_stereo(target.audio, "target audio"), logmel_weight)
    losses: list[float] = []
    best_i, best_audio = -1, None
    for audio in render_each(renderer, jobs_for(presets, target.note, target.note_seconds, target.render_seconds)):
        if isinstance(audio, Exception):
            losses.append(FAILED_LOSS)
            continue
        value, matched = scorer.score(audio)
        losses.append(value if math.isfinite(value) else FAILED_LOSS)
        if best_i < 0 or losses[-1] < losses[best_i]:
            best_i, best_audio = len(losses) - 1, matched
    return np.asarray(losses, dtype=np.float64), best_i, best_audio
