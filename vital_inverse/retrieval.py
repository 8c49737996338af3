# SPDX-License-Identifier: GPL-3.0-or-later
"""Retrieval candidates: the training presets whose log-mels are nearest to a clip.

Regression heads trained with MSE drift towards average settings; a
training preset that *sounds* like the clip is often a better start (on
the human presets it beats the network alone: BENCHMARKS.md, "Predictor
and baselines"), so the predictor offers both and the renderer picks.

The index is small enough to ship inside a checkpoint: log-mels are
projected on their top principal components (PCA keeps L2 distances in
the leading components), stored as float16 codes per (training preset,
note); presets are not stored at all, since the dataset's seed and an
item index regenerate any training preset exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.sampling import PresetSampler
from .params import ParamSpace
from .preset import Preset

INDEX_FILE = "retrieval.safetensors"


@dataclass
class RetrievalIndex:
    mean: np.ndarray  # (D,) float32, D = n_mels * n_frames
    components: np.ndarray  # (C, D) float32
    codes: np.ndarray  # (P, N, C) float16
    items: np.ndarray  # (P,) int64 dataset item indices
    notes: np.ndarray  # (N,) int64
    seed: int

    @classmethod
    def build(cls, mel: np.ndarray, items: np.ndarray, notes, seed: int, n_components: int = 64,
              fit_rows: int = 2000, rng_seed: int = 0) -> RetrievalIndex:
        """PCA over a sample of the (P, N, M, T) log-mels, then every clip's code."""
        from threadpoolctl import threadpool_limits

        P, N = mel.shape[:2]
        flat = mel.reshape(P * N, -1)
        with threadpool_limits(1):  # multi-threaded BLAS spins badly when the cores are shared
            return cls._build(flat, P, N, items, notes, seed, n_components, fit_rows, rng_seed)

    @classmethod
    def _build(cls, flat, P, N, items, notes, seed, n_components, fit_rows, rng_seed) -> RetrievalIndex:
        rng = np.random.default_rng(rng_seed)
        rows = rng.choice(P * N, size=min(fit_rows, P * N), replace=False)
        sample = flat[rows].astype(np.float32)
        mean = sample.mean(0)
        _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
        comps = vt[:n_components].astype(np.float32)
        codes = np.empty((P * N, comps.shape[0]), np.float16)
        for start in range(0, P * N, 4096):
            codes[start:start + 4096] = ((flat[start:start + 4096].astype(np.float32) - mean) @ comps.T).astype(np.float16)
        return cls(mean, comps, codes.reshape(P, N, -1), np.asarray(items, np.int64), np.asarray(notes, np.int64), int(seed))

    def query(self, mel: np.ndarray, note: int, r: int = 2) -> list[tuple[int, float]]:
        """(dataset item, distance) of the r nearest training presets at the stored note nearest ``note``."""
        k = int(np.argmin(np.abs(self.notes - int(note))))
        code = (mel.reshape(-1).astype(np.float32) - self.mean) @ self.components.T
        d = np.linalg.norm(self.codes[:, k].astype(np.float32) - code, axis=1)
        best = np.argsort(d)[:r]
        return [(int(self.items[i]), float(d[i])) for i in best]

    def presets(self, space: ParamSpace, mel: np.ndarray, note: int, r: int = 2) -> list[tuple[Preset, float]]:
        sampler = PresetSampler(space, self.seed)
        return [(sampler.preset(i), d) for i, d in self.query(mel, note, r)]

    def save(self, folder: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(folder) / INDEX_FILE
        save_file({"mean": self.mean, "components": self.components.astype(np.float16), "codes": self.codes,
                   "items": self.items, "notes": self.notes, "seed": np.array([self.seed], np.int64)}, str(path))
        return path

    @classmethod
    def load(cls, folder: str | Path) -> RetrievalIndex | None:
        from safetensors.numpy import load_file

        path = Path(folder) / INDEX_FILE
        if not path.exists():
            return None
        t = load_file(str(path))
        return cls(t["mean"], t["components"].astype(np.float32), t["codes"], t["items"], t["notes"], int(t["seed"][0]))


def build_for_checkpoint(data_dir: str | Path, folder: str | Path, space_hash: str, n_components: int = 64) -> Path:
    """Index the training split of a dataset into a checkpoint folder."""
    from .data import dataset as ds

    data = ds.load(data_dir, ("train",), space_hash=space_hash)
    index = RetrievalIndex.build(data.mel, data.index, data.meta.notes, data.meta.seed, n_components)
    return index.save(folder)
