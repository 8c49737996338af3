# SPDX-License-Identifier: GPL-3.0-or-later
"""Audio similarity metrics for sound matching (after Hayes et al. 2025).

All functions take numpy arrays at 44.1 kHz shaped ``(2, n)`` (stereo),
``(1, n)`` or ``(n,)`` (mono), and return Python floats.

Conventions shared by every metric:

* If the two signals have different lengths, the shorter one is padded with
  zeros at the end to the length of the longer one.
* Stereo metrics (MSS, wMFCC, MRSTFT) duplicate a mono signal to two channels
  when the other signal is stereo; mono metrics (SOT, RMS, f0) average the
  channels.
* Framed analyses are centred (``center=True``): the signal is padded with
  ``n_fft // 2`` zeros on both sides, so there are ``1 + n // hop`` frames.
  Windows are periodic Hann; ``n_fft`` equals the window length in samples,
  ``round(seconds * 44100)`` (so 25 ms -> 1102 and 5 ms -> 220 samples).
  Exceptions: f0 (YIN, 4096-sample frames) and MRSTFT (auraloss defaults).
* Spectra come from ``features.stft_magnitude``/``features.mel_power`` and the f0
  from intake's YIN (``intake.pitch.yin_cmndf``): one STFT and one YIN in the package.
* Scalar metrics use float64; MRSTFT runs in float32 torch. Nothing is global
  except lru_cache'd mel filterbanks and the reused auraloss module.
* Symmetric metrics do not care about argument order; for MRSTFT ``a`` is the
  estimate and ``b`` the reference (spectral convergence is normalised by
  ``b``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import librosa
import numpy as np
import torch
from dtw import dtw

from .constants import SAMPLE_RATE
from .features import mel_power, stft_magnitude
from .intake.pitch import refine_dip, yin_cmndf

__all__ = [
    "SR",
    "MetricError",
    "all_metrics",
    "f0_error_cents",
    "mrstft",
    "mrstft_batch",
    "mss",
    "rms_similarity",
    "sot",
    "wmfcc",
]

SR = SAMPLE_RATE

#: (window s, hop s, n_mels) for the multi-scale log-mel distance.
MSS_SCALES: tuple[tuple[float, float, int], ...] = (
    (0.010, 0.005, 32),
    (0.025, 0.010, 64),
    (0.100, 0.050, 128),
)
_MSS_TOP_DB = 80.0
#: wMFCC dB floor (power units of an unnormalised STFT): ~-100 dB re a full-scale sine.
_MFCC_AMIN = 1e-6
_AMIN = 1e-10
#: A signal whose absolute peak is at or below this is treated as silence.
_SILENT_PEAK = 1e-8
#: SOT: uniform floor per frame, as a fraction (-80 dB) of the magnitude sum
#: of the loudest frame of the same signal.
_SOT_FLOOR_REL = 1e-4
#: f0: YIN search range, analysis frame, hop and voicing rule.
F0_FMIN = 30.0
F0_FMAX = 3000.0
_F0_FRAME = 4096
_F0_HOP = 441
_F0_TROUGH = 0.1
_F0_MAX_APERIODICITY = 0.1
_F0_REL_DB = -50.0
_F0_ABS_RMS = 1e-5
_F0_MEDIAN = 5
#: MRSTFT: shorter signals are zero-padded to this many samples so that the
#: largest auraloss FFT (2048, reflect-padded) is valid.
_MRSTFT_MIN_LEN = 2048
#: mrstft_batch: predictions per batched STFT call (small is fastest: memory bound; BENCHMARKS.md section 3).
_MRSTFT_CHUNK = 1


class MetricError(ValueError):
    """Invalid metric input (empty, non-finite or wrongly shaped)."""


# ----------------------------------------------------------------------------
# input handling


def _samples(seconds: float) -> int:
    return round(seconds * SR)


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    """Validate one signal; return float64 ``(channels, n)``."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu":
        raise MetricError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim != 2 or arr.shape[0] not in (1, 2):
        raise MetricError(f"{name}: expected shape (n,), (1, n) or (2, n) (channels first), got {arr.shape}")
    if arr.shape[1] == 0:
        raise MetricError(f"{name}: empty signal")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise MetricError(f"{name}: contains NaN or infinite samples")
    return arr


def _pad_to(x: np.ndarray, n: int) -> np.ndarray:
    return x if x.shape[-1] == n else np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, n - x.shape[-1])])


def _pair(a: np.ndarray, b: np.ndarray, *, stereo: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate, zero-pad to a common length, match channels (stereo) or mix to mono."""
    x, y = _as_2d(a, "a"), _as_2d(b, "b")
    n = max(x.shape[1], y.shape[1])
    x, y = _pad_to(x, n), _pad_to(y, n)
    if stereo:
        c = max(x.shape[0], y.shape[0])
        x = np.broadcast_to(x, (c, n)) if x.shape[0] != c else x
        y = np.broadcast_to(y, (c, n)) if y.shape[0] != c else y
        return np.ascontiguousarray(x), np.ascontiguousarray(y)
    return x.mean(axis=0), y.mean(axis=0)


# ----------------------------------------------------------------------------
# cached pure helpers




@functools.lru_cache(maxsize=1)
def _mrstft_module() -> torch.nn.Module:
    import auraloss

    return auraloss.freq.MultiResolutionSTFTLoss()


# ----------------------------------------------------------------------------
# metrics


def _mss_db(x: np.ndarray, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    peak = np.max(np.abs(x))
    n_frames = 1 + x.shape[-1] // hop
    if peak <= _SILENT_PEAK:
        return np.full((x.shape[0], n_mels, n_frames), -_MSS_TOP_DB)
    s = mel_power(x / peak, n_fft, hop, n_mels, SR)
    return librosa.power_to_db(s, ref=np.max, amin=_AMIN, top_db=_MSS_TOP_DB)


def mss(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale log-mel distance in dB (lower is better).

    Each signal is scaled by its own peak, mel power is converted to dB
    relative to its own maximum (floor -80 dB); mean |difference| per scale,
    averaged over the three scales. A silent signal (peak <= 1e-8) is -80 dB
    everywhere.
    """
    x, y = _pair(a, b, stereo=True)
    total = 0.0
    for win_s, hop_s, n_mels in MSS_SCALES:
        n_fft, hop = _samples(win_s), _samples(hop_s)
        total += float(np.mean(np.abs(_mss_db(x, n_fft, hop, n_mels) - _mss_db(y, n_fft, hop, n_mels))))
    return total / len(MSS_SCALES)


def _mfcc_features(x: np.ndarray) -> np.ndarray:
    """(frames, 20 * channels) MFCCs: 50 ms window, 10 ms hop, 128 mels, fixed dB floor."""
    s = mel_power(x, _samples(0.050), _samples(0.010), 128, SR)
    db = librosa.power_to_db(s, ref=1.0, amin=_MFCC_AMIN, top_db=None)
    m = librosa.feature.mfcc(S=db, n_mfcc=20)  # (C, 20, T), DCT-II ortho
    return m.reshape(-1, m.shape[-1]).T


def wmfcc(a: np.ndarray, b: np.ndarray) -> float:
    """DTW-aligned MFCC distance (lower is better).

    Mel power in dB with an absolute floor (amin 1e-6, about -100 dB below a
    full-scale sine; no top_db, whose max-relative floor made renders of the
    same dark sound jump by up to 100), then librosa MFCCs of the stacked
    channels (40-dim for stereo, 20 for mono pairs). dtw-python, symmetric2
    steps, cityblock (L1) local cost; returns the normalized distance
    (weighted path cost / (n + m)). Not gain invariant.
    """
    x, y = _pair(a, b, stereo=True)
    al = dtw(
        _mfcc_features(x),
        _mfcc_features(y),
        dist_method="cityblock",
        step_pattern="symmetric2",
        distance_only=True,
    )
    return float(al.normalizedDistance)


def _sot_dists(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame spectral distributions (bins, frames) and a silent-frame mask.

    A uniform floor holding 1e-4 (-80 dB) of the loudest frame's magnitude sum
    is added to every frame before normalising, so quiet frames fade
    continuously towards the uniform distribution; a frame is silent when
    the floor outweighs its content.
    """
    mag = stft_magnitude(x, _samples(0.050), _samples(0.020))
    tot = mag.sum(axis=0)
    floor = max(_SOT_FLOOR_REL * float(tot.max()), 1e-12)
    dist = (mag + floor / mag.shape[0]) / (tot + floor)
    return dist, tot < floor


def sot(a: np.ndarray, b: np.ndarray) -> float:
    """Spectral optimal transport distance (lower is better).

    Mono STFT magnitude (50 ms / 20 ms), each frame normalised to sum 1,
    Wasserstein-1 between corresponding frames on a 0..1 frequency axis
    (bin k at k / (n_bins - 1)), mean over frames. Silence: each signal gets
    a uniform floor at -80 dB below its own loudest frame (so a silent frame
    is the uniform distribution and quiet ones blend into it continuously);
    frames where the floor outweighs the content in both signals are
    skipped. Returns 0.0 if every frame is silent in both. Gain invariant.
    """
    x, y = _pair(a, b, stereo=False)
    px, sx = _sot_dists(x)
    py, sy = _sot_dists(y)
    keep = ~(sx & sy)
    if not np.any(keep):
        return 0.0
    cdf_diff = np.cumsum(px[:, keep] - py[:, keep], axis=0)
    w1 = np.abs(cdf_diff).sum(axis=0) / (px.shape[0] - 1)
    return float(w1.mean())


def _frame_rms(x: np.ndarray, frame: int, hop: int) -> np.ndarray:
    """Centred (zero-padded) frame RMS of (n,) float64: (1 + n // hop,)."""
    return librosa.feature.rms(y=x, frame_length=frame, hop_length=hop, center=True, pad_mode="constant", dtype=np.float64)[0]


def rms_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of mono frame-RMS envelopes, 50 ms / 25 ms (higher is better).

    1.0 if both envelopes are zero, 0.0 if only one is.
    """
    x, y = _pair(a, b, stereo=False)
    ex = _frame_rms(x, _samples(0.050), _samples(0.025))
    ey = _frame_rms(y, _samples(0.050), _samples(0.025))
    nx, ny = float(np.linalg.norm(ex)), float(np.linalg.norm(ey))
    if nx == 0.0 or ny == 0.0:
        return 1.0 if nx == ny else 0.0
    return float(min(1.0, np.dot(ex, ey) / (nx * ny)))


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    x = _pad_to(x, max(x.shape[-1], _MRSTFT_MIN_LEN))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def mrstft(a: np.ndarray, b: np.ndarray) -> float:
    """auraloss ``MultiResolutionSTFTLoss()`` (defaults) of estimate ``a`` vs reference ``b``.

    One sound per call, tensors shaped (1, channels, n); signals shorter than
    2048 samples are zero-padded to 2048.
    """
    x, y = _pair(a, b, stereo=True)
    with torch.no_grad():
        return float(_mrstft_module()(_to_tensor(x)[None], _to_tensor(y)[None]))


def _mag_logmag(x: torch.Tensor, f: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """|STFT| and log|STFT| exactly as auraloss ``STFTLoss.stft`` (same memory layout,
    so float32 reductions round the same way), without the unused phase."""
    s = torch.stft(x, f.fft_size, f.hop_size, f.win_length, f.window, return_complex=True)
    p = (s.real.square() + s.imag.square()).clamp_(min=f.eps)
    mag = p.sqrt()
    return mag, mag.log()


def _mrstft_batched(preds: torch.Tensor, target: torch.Tensor, chunk: int = _MRSTFT_CHUNK) -> np.ndarray:
    """Per-item auraloss MRSTFT for preds (B, C, n) vs target (C, n).

    The target STFTs are computed once and the unused phase (torch.angle) is
    skipped; predictions go through in chunks of ``chunk`` items.
    """
    b, c, n = preds.shape
    total = torch.zeros(b, dtype=torch.float64)
    losses = _mrstft_module().stft_losses
    for f in losses:
        ym, ylog = _mag_logmag(target, f)
        ynorm = torch.linalg.vector_norm(ym)
        for i in range(0, b, chunk):
            xm, xlog = _mag_logmag(preds[i : i + chunk].reshape(-1, n), f)
            k = xm.shape[0] // c
            xm, xlog = xm.view(k, c, *xm.shape[1:]), xlog.view(k, c, *xlog.shape[1:])
            sc = torch.linalg.vector_norm(xm - ym, dim=(1, 2, 3)) / ynorm
            logmag = (xlog - ylog).abs_().mean(dim=(1, 2, 3))
            total[i : i + k] += (f.w_sc * sc + f.w_log_mag * logmag).double()
    return (total / len(losses)).numpy()


def mrstft_batch(preds: Sequence[np.ndarray] | np.ndarray, target: np.ndarray) -> np.ndarray:
    """MRSTFT of every prediction against one target, each scored on its own.

    ``preds`` is a sequence of signals or a (B, channels, n) array. Returns a
    float64 array (B,) equal (to ~1e-6) to ``[mrstft(p, target) for p in preds]``.
    Computed batched, with the target STFT done once, when all predictions
    have the same length; otherwise one reused loss module per item.
    """
    if isinstance(preds, np.ndarray) and preds.ndim != 3:
        raise MetricError(f"preds: expected a sequence of signals or a (B, channels, n) array, got shape {preds.shape}")
    items = [_as_2d(p, f"preds[{i}]") for i, p in enumerate(preds)]
    if not items:
        raise MetricError("preds: empty batch")
    y = _as_2d(target, "target")
    if len({p.shape[1] for p in items}) > 1:
        return np.array([mrstft(p, y) for p in items])
    # Same length: pad like _pair, and use the common channel count (duplicating a
    # mono signal leaves both loss terms unchanged).
    n = max(items[0].shape[1], y.shape[1], _MRSTFT_MIN_LEN)
    c = max(y.shape[0], max(p.shape[0] for p in items))
    batch = np.empty((len(items), c, n), dtype=np.float32)
    for i, p in enumerate(items):
        batch[i] = _pad_to(p, n)
    yt = np.broadcast_to(_pad_to(y, n), (c, n)).astype(np.float32)
    with torch.no_grad():
        return _mrstft_batched(torch.from_numpy(batch), torch.from_numpy(yt))


def _yin(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame-wise YIN (fixed integration window, trough threshold 0.1, parabolic refinement) on
    intake's YIN difference function (`intake.pitch.yin_cmndf`). x: (n,) float64 at 44.1 kHz.
    Returns f0 (Hz), aperiodicity (d' at the chosen integer lag) and RMS, each (1 + n // 441,)."""
    frames = librosa.util.frame(np.pad(x, _F0_FRAME // 2), frame_length=_F0_FRAME, hop_length=_F0_HOP)  # (frame, T)
    min_p = int(np.floor(SR / F0_FMAX))
    max_p = int(np.ceil(SR / F0_FMIN))
    w = _F0_FRAME - max_p  # fixed integration window (original YIN, no lag bias)
    cm = yin_cmndf(frames.T, w, max_p)  # (T, max_p + 1): d' at lags 0..max_p
    cmnd = cm[:, min_p:].T  # (lags min_p..max_p, T)
    # troughs: local minima below threshold; else global minimum
    trough = np.zeros(cmnd.shape, dtype=bool)
    trough[1:-1] = (cmnd[1:-1] < cmnd[:-2]) & (cmnd[1:-1] <= cmnd[2:])
    trough[0] = cmnd[0] < cmnd[1]
    below = trough & (cmnd < _F0_TROUGH)
    idx = np.where(below.any(axis=0), np.argmax(below, axis=0), np.argmin(cmnd, axis=0))
    aper = cmnd[idx, np.arange(cmnd.shape[1])]
    # parabolic refinement (intake's), only inside the searched lags
    inner = (idx > 0) & (idx < cmnd.shape[0] - 1)
    lag, _ = refine_dip(cm, min_p + idx)
    f0 = SR / np.where(inner, lag, min_p + idx)
    rms = np.sqrt(np.mean(frames**2, axis=0))
    return f0, aper, rms


def _voiced_f0(x: np.ndarray) -> np.ndarray:
    """f0 per 10 ms frame, NaN where unvoiced, 5-frame median-smoothed (in log f)."""
    f0, aper, rms = _yin(x)
    loud = (rms >= _F0_ABS_RMS) & (rms >= rms.max() * 10.0 ** (_F0_REL_DB / 20.0))
    voiced = loud & (aper < _F0_MAX_APERIODICITY)
    logf = np.pad(np.where(voiced, np.log2(f0), np.nan), _F0_MEDIAN // 2, constant_values=np.nan)
    win = np.lib.stride_tricks.sliding_window_view(logf, _F0_MEDIAN)[voiced]
    out = np.full(f0.shape, np.nan)
    out[voiced] = 2.0 ** np.nanmedian(win, axis=1)  # centre is finite: never all-NaN
    return out


def f0_error_cents(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |f0 difference| in cents over frames voiced in both signals; NaN if none.

    Mono YIN (30-3000 Hz, centred 4096-sample frames, 10 ms hop). A frame is
    voiced if its YIN aperiodicity (CMND at the chosen lag) is < 0.1 and its
    RMS is >= 1e-5 and within 50 dB of the signal's loudest frame. Voiced f0
    is median-filtered over 5 frames (ignoring unvoiced ones) to remove
    isolated octave/subharmonic jumps (e.g. filter ringing at note onsets).
    """
    x, y = _pair(a, b, stereo=False)
    fx, fy = _voiced_f0(x), _voiced_f0(y)
    both = np.isfinite(fx) & np.isfinite(fy)
    if not np.any(both):
        return float("nan")
    return float(np.mean(np.abs(1200.0 * np.log2(fx[both] / fy[both]))))


def all_metrics(a: np.ndarray, b: np.ndarray, *, batched_mrstft: bool = False) -> dict[str, float]:
    """All metrics of estimate ``a`` against reference ``b``.

    ``batched_mrstft``: MRSTFT through ``mrstft_batch`` (equal to ``mrstft`` to
    ~1e-6 and faster: it skips the phase auraloss computes and never uses);
    what evaluation uses for its many rows.
    """
    _as_2d(a, "a"), _as_2d(b, "b")
    return {
        "mss": mss(a, b),
        "wmfcc": wmfcc(a, b),
        "sot": sot(a, b),
        "rms": rms_similarity(a, b),
        "mrstft": float(mrstft_batch([a], b)[0]) if batched_mrstft else mrstft(a, b),
        "f0_cents": f0_error_cents(a, b),
    }
