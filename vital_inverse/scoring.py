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
* ``mss_against``: ``metrics.mss`` (the judge's multi-scale log-mel distance)
  in NumPy/SciPy against a target's cached ``mss_reference``, so the
  workers can score it too (refinement's ``mss_weight`` and its MSS gate).
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
    "MSS_FRAMES",
    "mss_against",
    "mss_reference",
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


#: metrics.mss's scales: (window = FFT samples, hop samples, mel bands) at 44.1 kHz (10/5, 25/10, 100/50 ms);
#: mirrored here because metrics imports torch, which the render workers never load (equality is tested).
MSS_FRAMES: tuple[tuple[int, int, int], ...] = ((441, 220, 32), (1102, 441, 64), (4410, 2205, 128))
_MSS_TOP_DB = 80.0
_MSS_AMIN = 1e-10
_MSS_SILENT_PEAK = 1e-8


def _mss_db(x: np.ndarray, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """Log-mel in dB re its own maximum, floored 80 dB below it, (C, n_mels, 1 + n // hop) float32: what
    ``metrics.mss`` compares (peak-normalised, centred zero-padded STFT, periodic Hann of ``n_fft``)."""
    from numpy.lib.stride_tricks import sliding_window_view
    from scipy import fft

    from .constants import SAMPLE_RATE
    from .features import mel_filterbank

    peak = float(np.max(np.abs(x)))
    frames = 1 + x.shape[-1] // hop
    if peak <= _MSS_SILENT_PEAK:
        return np.full((x.shape[0], n_mels, frames), -_MSS_TOP_DB, dtype=np.float32)
    xp = np.pad(x.astype(np.float32) / np.float32(peak), ((0, 0), (n_fft // 2, n_fft // 2)))
    fr = sliding_window_view(xp, n_fft, axis=1)[:, : (frames - 1) * hop + 1 : hop] * _hann(n_fft)
    spec = fft.rfft(fr, axis=-1)
    power = np.square(spec.real) + np.square(spec.imag)  # (C, frames, bins)
    mel = power @ mel_filterbank(SAMPLE_RATE, n_fft, n_mels).T  # (C, frames, mels)
    db = 10.0 * np.log10(np.maximum(mel, _MSS_AMIN))
    db -= 10.0 * np.log10(max(_MSS_AMIN, float(mel.max())))
    return np.maximum(db, -_MSS_TOP_DB).transpose(0, 2, 1)


def mss_reference(target: np.ndarray) -> list[np.ndarray]:
    """The target's side of ``mss_against`` (computed once per target)."""
    t = as_stereo(target, "target")
    return [_mss_db(t, n_fft, hop, mels) for n_fft, hop, mels in MSS_FRAMES]


def mss_against(audio: np.ndarray, reference: list[np.ndarray]) -> float:
    """``metrics.mss`` (dB, lower is closer) of a render already matched to the target (``match_to_target``:
    same length) against the target's ``mss_reference``; NumPy only, so the render workers can score it."""
    a = as_stereo(audio, "audio")
    total = 0.0
    for (n_fft, hop, mels), ref in zip(MSS_FRAMES, reference):
        total += float(np.mean(np.abs(_mss_db(a, n_fft, hop, mels) - ref)))
    return total / len(MSS_FRAMES)


class _Scorer:
    """The refinement loss against one target, with the target's spectra computed once.

    NumPy/SciPy re-implementation of auraloss ``MultiResolutionSTFTLoss()``
    (equal to ``metrics.mrstft`` to ~1e-5, checked in the tests) so that the
    render workers need not import torch (seconds per worker, ~300 MB each).
    """

    def __init__(self, target: np.ndarray, logmel_weight: float = 0.0, mss_weight: float = 0.0) -> None:
        self.target = as_stereo(target, "target")
        self.n = self.target.shape[1]
        self.rms = _rms(self.target)
        self.logmel_weight = float(logmel_weight)
        self.mss_weight = float(mss_weight)
        self._mss_ref: list[np.ndarray] | None = None  # the target's side of mss_against, made on first use
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

    def mss_matched(self, audio: np.ndarray) -> float:
        """``metrics.mss`` of an already matched render against the target (dB)."""
        if self._mss_ref is None:
            self._mss_ref = mss_reference(self.target)
        return mss_against(audio, self._mss_ref)

    def score_parts(self, audio: np.ndarray, with_mss: bool = False) -> tuple[float, float, np.ndarray]:
        """(loss, MSS in dB or nan unless ``with_mss`` or an MSS weight, the matched render). An inaudible
        render scores ``FAILED_LOSS`` for both: scaling a near-silent render up to the target's loudness
        scores its noise floor and artefacts, which can look like a match."""
        raw_rms = _rms(_fit_length(as_stereo(audio, "audio"), self.n))
        a = self.match(audio)
        if raw_rms < _INAUDIBLE_RMS:
            return FAILED_LOSS, FAILED_LOSS, a
        m = self.mss_matched(a) if (with_mss or self.mss_weight) else math.nan
        return self.score_matched(a), m, a

    def objective(self, value: float, mss_db: float) -> float:
        """What the search minimises: the loss plus ``mss_weight`` x MSS (dB) when that weight is set."""
        return value + self.mss_weight * mss_db if self.mss_weight and value < FAILED_LOSS else value

    def score(self, audio: np.ndarray) -> tuple[float, np.ndarray]:
        """(the search's objective, the matched render): the loss, plus the weighted MSS if asked for."""
        value, m, a = self.score_parts(audio)
        return self.objective(value, m), a


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


def _worker_scorer(key: bytes, target: np.ndarray, logmel_weight: float, mss_weight: float) -> _Scorer:
    scorer = _worker_scorers.get(key)
    if scorer is None:
        if len(_worker_scorers) >= 2:
            _worker_scorers.clear()
        scorer = _worker_scorers[key] = _Scorer(target, logmel_weight, mss_weight)
    return scorer


def _render_score_chunk(args) -> tuple[list[float], list[str], int, np.ndarray | None, list[float]]:
    """Worker side: render jobs, score them; return objectives, errors, the chunk's best index and audio,
    and the plain losses (equal to the objectives unless an MSS weight is set)."""
    key, target, logmel_weight, mss_weight, jobs = args
    renderer = worker_renderer()
    scorer = _worker_scorer(key, target, logmel_weight, mss_weight)
    losses: list[float] = []
    plain: list[float] = []
    errors: list[str] = []
    best_i, best_audio = -1, None
    for job in jobs:
        try:
            audio = renderer.render_job(job)
        except Exception as e:  # noqa: BLE001 - a failed render is a bad candidate, not a crash
            losses.append(FAILED_LOSS)
            plain.append(FAILED_LOSS)
            errors.append(str(e) or type(e).__name__)
            continue
        value, m, matched = scorer.score_parts(audio)  # an inaudible render (< -60 dBFS) fails here too
        obj = scorer.objective(value, m)
        if not (math.isfinite(value) and math.isfinite(obj)):
            value = obj = FAILED_LOSS
        losses.append(obj)
        plain.append(value)
        errors.append("")
        if best_i < 0 or obj < losses[best_i]:
            best_i, best_audio = len(losses) - 1, matched
    return losses, errors, best_i, best_audio, plain


class Evaluator:
    """Renders and scores batches of presets on a ParallelRenderer's workers; counts renders."""

    def __init__(self, renderer: ParallelRenderer, target: Analysis, logmel_weight: float,
                 mss_weight: float = 0.0) -> None:
        self.renderer = renderer
        self.target = target
        self.audio = as_stereo(target.audio, "target audio")
        self.logmel_weight = float(logmel_weight)
        #: with a weight, ``evaluate`` ranks by loss + mss_weight x MSS (dB), computed in the workers
        self.mss_weight = float(mss_weight)
        self.key = hashlib.blake2b(self.audio.tobytes() + repr((self.logmel_weight, self.mss_weight)).encode(),
                                   digest_size=16).digest()
        self.renders = 0
        self.failures: list[str] = []
        self._scorer: _Scorer | None = None  # main-process scorer for ``rescore``, made on first use
        #: the plain losses of the last ``evaluate`` (its return value is the objective) and the MSS (dB) of
        #: each render of the last ``rescore`` (``FAILED_LOSS`` for a failed one)
        self.last_losses = np.zeros(0)
        self.last_mss = np.zeros(0)

    def job(self, preset: Preset) -> RenderJob:
        t = self.target
        return jobs_for([preset], t.note, t.note_seconds, t.render_seconds)[0]

    def render(self, presets: Sequence[Preset]) -> list[np.ndarray | Exception]:
        """Raw renders at the target's note and lengths (counted like every render)."""
        out = self.renderer.render_jobs([self.job(p) for p in presets], raise_errors=False)
        self.renders += len(out)
        return out

    def rescore(self, presets: Sequence[Preset]) -> tuple[np.ndarray, list[np.ndarray | None], np.ndarray | None]:
        """Fresh renders scored by the (plain) loss, with every matched render kept: (losses, matched renders
        (None for a failed or inaudible one, which scores ``FAILED_LOSS``), the lowest-loss matched render).

        Renders run on the workers, the losses here, and each render's MSS too (``last_mss``: refinement's
        MSS gate judges a challenger on the same fresh renders by both measures).
        """
        scorer = self._main_scorer()
        losses: list[float] = []
        msses: list[float] = []
        kept: list[np.ndarray | None] = []
        best_i = -1
        for audio in self.render(presets):
            value, m, matched = ((FAILED_LOSS, FAILED_LOSS, None) if isinstance(audio, Exception)
                                 else scorer.score_parts(audio, with_mss=True))
            ok = math.isfinite(value) and value < FAILED_LOSS and math.isfinite(m)
            losses.append(value if ok else FAILED_LOSS)
            msses.append(m if ok else FAILED_LOSS)
            kept.append(matched if ok else None)
            if ok and (best_i < 0 or value < losses[best_i]):
                best_i = len(losses) - 1
        self.last_mss = np.asarray(msses, dtype=np.float64)
        return np.asarray(losses, dtype=np.float64), kept, (kept[best_i] if best_i >= 0 else None)

    def mss(self, matched: np.ndarray) -> float:
        """``metrics.mss`` (dB) of a render already matched to the target, in this process."""
        return self._main_scorer().mss_matched(matched)

    def _main_scorer(self) -> _Scorer:
        """The main process's scorer of this target (for ``rescore`` and ``mss``), made on first use."""
        if self._scorer is None:
            self._scorer = _Scorer(self.audio, self.logmel_weight)
        return self._scorer

    def evaluate(self, presets: Sequence[Preset]) -> tuple[np.ndarray, int, np.ndarray | None]:
        """Losses (in order; the objective, see ``mss_weight``), index of the best and its matched render."""
        jobs = [self.job(p) for p in presets]
        if not jobs:
            return np.zeros(0), -1, None
        workers = max(1, int(getattr(self.renderer, "workers", 1)))
        n = min(len(jobs), workers)
        bounds = np.linspace(0, len(jobs), n + 1).round().astype(int)
        chunks = [jobs[a:b] for a, b in itertools.pairwise(bounds)]
        payloads = [(self.key, self.audio, self.logmel_weight, self.mss_weight, c) for c in chunks]
        losses: list[float] = []
        plain: list[float] = []
        best_i, best_audio = -1, None
        for part_losses, part_errors, part_best, part_audio, part_plain in self.renderer.map(_render_score_chunk,
                                                                                            payloads):
            if part_best >= 0 and (best_i < 0 or part_losses[part_best] < losses[best_i]):
                best_i, best_audio = len(losses) + part_best, part_audio
            losses.extend(part_losses)
            plain.extend(part_plain)
            self.failures.extend(e for e in part_errors if e)
        self.renders += len(jobs)
        self.last_losses = np.asarray(plain, dtype=np.float64)
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
