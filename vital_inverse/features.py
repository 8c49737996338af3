# SPDX-License-Identifier: GPL-3.0-or-later
"""Log-mel features: the one representation the dataset stores and the
compact encoder reads, computed the same way at training and at inference.

The settings travel with every dataset and checkpoint (``FeatureConfig``
as JSON), and a checkpoint refuses features made with other settings.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings. Defaults: 2.0 s at 44.1 kHz -> (64 mels, 173 frames)."""

    sample_rate: int = 44100
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


@functools.lru_cache(maxsize=8)
def _mel_basis(cfg: FeatureConfig) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


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
    is not what the model should predict from. Silence gives -top_db.
    """
    x = np.asarray(audio, dtype=np.float32)
    mono = x.mean(axis=0) if x.ndim == 2 else x
    mono = fit_length(mono, int(round(cfg.seconds * cfg.sample_rate)))
    pad = cfg.n_fft // 2
    padded = np.pad(mono, (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop_length]
    spec = np.abs(np.fft.rfft(frames * _window(cfg.n_fft), axis=1)) ** 2  # (T, F)
    mel = _mel_basis(cfg) @ spec.T.astype(np.float32)  # (M, T)
    ref = max(float(mel.max()), 1e-10)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10) / ref)
    return np.maximum(db, -cfg.top_db).astype(np.float32)


def log_mel_batch(audios: list[np.ndarray], cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Stack of ``log_mel`` for several clips: float32 (B, n_mels, n_frames)."""
    return np.stack([log_mel(a, cfg) for a in audios])
