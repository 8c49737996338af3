# SPDX-License-Identifier: GPL-3.0-or-later
"""Log-mel features: the one representation the dataset stores and the
compact encoder reads, computed the same way at training and at inference.

The settings travel with every dataset and checkpoint (``FeatureConfig``
as JSON), and a checkpoint refuses features made with other settings.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass

import librosa
import numpy as np

from .constants import SAMPLE_RATE


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings. Defaults: 2.0 s at 44.1 kHz -> (64 mels, 173 frames)."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 64
    fmin: float = 20.0
    fmax: float = 16000.0
    seconds: float = 2.0  # features are computed on exactly this much audio (padded or cut)
    top_db: float = 80.0

    @property
    def n_frames(self) -> int:
        return 1 + int(round(self.seconds * self.sample_rate)) // self.hop_length

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FeatureConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """librosa's Slaney mel filterbank, float32 (n_mels, n_fft // 2 + 1), cached and read-only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an empty filter at a small n_fft is librosa's warning, not an error here
        fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)
    fb.setflags(write=False)
    return fb


def stft_magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| of (..., n): centred (zero-padded by n_fft // 2), periodic Hann of n_fft samples;
    shape (..., n_fft // 2 + 1, 1 + n // hop). The one STFT of features, metrics and plots."""
    return np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, window="hann", center=True, pad_mode="constant"))


def mel_power(x: np.ndarray, n_fft: int, hop: int, n_mels: int, sample_rate: int = SAMPLE_RATE,
              fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Mel power spectrogram of (n,) or (channels, n): (n_mels, frames) or (channels, n_mels, frames),
    `stft_magnitude` squared through `mel_filterbank`, one matrix product for all channels."""
    p = stft_magnitude(x, n_fft, hop) ** 2
    fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax)
    if p.ndim == 2:
        return fb @ p
    c, f, t = p.shape
    m = fb @ p.transpose(1, 0, 2).reshape(f, c * t)
    return m.reshape(n_mels, c, t).transpose(1, 0, 2)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the last axis to n samples."""
    if audio.shape[-1] >= n:
        return audio[..., :n]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, n - audio.shape[-1])]
    return np.pad(audio, pad)


def log_mel(audio: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """float32 (n_mels, n_frames) log-mel in dB of the mono mix, 0 dB = the clip's peak bin.

    ``audio`` is (channels, n) or (n,) at ``cfg.sample_rate``. Level is
    normalised away (the referenced dB scale), as the synth's output level
    is not what the model should predict from. Silence gives 0 dB everywhere
    (nothing to refer to).
    """
    x = np.asarray(audio, dtype=np.float32)
    mono = x.mean(axis=0) if x.ndim == 2 else x
    mono = fit_length(mono, int(round(cfg.seconds * cfg.sample_rate)))
    mel = mel_power(mono, cfg.n_fft, cfg.hop_length, cfg.n_mels, cfg.sample_rate, cfg.fmin, cfg.fmax)  # (M, T)
    return librosa.power_to_db(mel, ref=np.max, amin=1e-10, top_db=cfg.top_db).astype(np.float32)


def log_mel_batch(audios: list[np.ndarray], cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Stack of ``log_mel`` for several clips: float32 (B, n_mels, n_frames)."""
    return np.stack([log_mel(a, cfg) for a in audios])
