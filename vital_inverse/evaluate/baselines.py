# SPDX-License-Identifier: GPL-3.0-or-later
"""Baselines that any predictor must beat: Vital's Init preset, the mean preset,
and nearest-neighbour retrieval from the training set.

Each baseline maps an intake ``Analysis`` to one ``Preset``::

    init = InitBaseline()
    mean = MeanBaseline.from_dataset("data/synth-v2")     # or MeanBaseline.from_prior()
    nn = NearestNeighbour("data/synth-v2")
    preset = nn(analysis)                                 # also nn.query(mel, note)

Definitions
-----------
* ``init``: ``Preset.init()`` whatever the clip.
* ``mean``: ``sampling.mean_values`` semantics (mean of the normalised
  continuous/ordinal values, mode of every categorical) over *all*
  accepted training items of a dataset, computed from the vectors the
  dataset stores (equal to regenerating every item and calling
  ``mean_values``; checked in the tests), or over ``n`` presets drawn
  from the sampling prior when no dataset is given.
* ``nearest``: the training item whose stored log-mel at the stored note
  nearest to the clip's analysed note is closest in **L2 (Euclidean)
  distance over dB values** to the clip's log-mel, computed with the
  dataset's own ``FeatureConfig`` on ``analysis.audio`` (the trimmed,
  normalised note; ``log_mel`` is level-free). The item's preset is
  regenerated exactly from ``(seed, index)``. L2 rather than L1 so the
  search is one matrix product per query (float16 storage, float32 maths,
  in chunks): about P x 64 x T multiply-adds for P training items.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..params import ParamSpace, default_space
from ..preset import Preset

__all__ = ["InitBaseline", "MeanBaseline", "NearestNeighbour", "Neighbour", "mean_from_vectors"]

#: Rows per float32 block in the nearest-neighbour search (bounds the temporary memory).
_CHUNK = 4096


class InitBaseline:
    """Vital's Init preset for every clip."""

    name = "init"

    def __init__(self, space: ParamSpace | None = None) -> None:
        self.space = space or default_space()
        self.preset = Preset.init(self.space, name="Init")
        self.description = "Vital's Init preset (ParamSpace defaults)"

    def __call__(self, analysis=None) -> Preset:
        return self.preset


def mean_from_vectors(space: ParamSpace, continuous: np.ndarray, categorical: np.ndarray) -> dict[str, float]:
    """``sampling.mean_values`` from stored vectors: (P, n_continuous) normalised and (P, n_categorical) indices."""
    continuous = np.asarray(continuous, dtype=np.float64)
    categorical = np.asarray(categorical, dtype=np.int64)
    if continuous.ndim != 2 or continuous.shape[1] != len(space.continuous) or len(continuous) == 0:
        raise ValueError(f"expected (P>0, {len(space.continuous)}) continuous vectors, got {continuous.shape}")
    if categorical.shape != (len(continuous), len(space.categorical)):
        raise ValueError(f"expected ({len(continuous)}, {len(space.categorical)}) categorical indices, got {categorical.shape}")
    values = space.with_continuous({}, continuous.mean(axis=0))
    for j, p in enumerate(space.categorical):
        values[p.name] = p.option_values[int(np.bincount(categorical[:, j], minlength=len(p.options)).argmax())]
    return {n: values[n] for n in space.names}


class MeanBaseline:
    """The mean preset (mean continuous values, most common option of each categorical)."""

    name = "mean"

    def __init__(self, values: dict[str, float], description: str, space: ParamSpace | None = None) -> None:
        self.space = space or default_space()
        self.preset = Preset(values=values, name="Mean preset", space_hash=self.space.hash)
        self.description = description

    @classmethod
    def from_dataset(cls, root: str | Path, space: ParamSpace | None = None, split: str = "train") -> MeanBaseline:
        """Over every accepted item of ``split`` (from the stored vectors, not re-rendered)."""
        from ..data import dataset as ds

        space = space or default_space()
        return cls.from_loaded(ds.load(root, (split,), space_hash=space.hash), root, split, space)

    @classmethod
    def from_loaded(cls, data, root: str | Path = "", split: str = "train",
                    space: ParamSpace | None = None) -> MeanBaseline:
        """Over the items of an already loaded ``dataset.LoadedData``."""
        space = space or default_space()
        values = mean_from_vectors(space, data.continuous, data.categorical)
        return cls(values, f"mean over the {data.n_presets} {split} presets of {root}", space)

    @classmethod
    def from_prior(cls, n: int = 1024, seed: int = 0, space: ParamSpace | None = None) -> MeanBaseline:
        """Over ``n`` presets drawn from the sampling prior (no dataset needed)."""
        from ..data.sampling import PresetSampler, mean_values

        if n < 1:
            raise ValueError(f"need at least one prior sample, got {n}")
        space = space or default_space()
        sampler = PresetSampler(space, seed)
        values = mean_values(space, [sampler.values(i) for i in range(n)])
        return cls(values, f"mean over {n} presets sampled from the prior (seed {seed}); no dataset given", space)

    def __call__(self, analysis=None) -> Preset:
        return self.preset


@dataclass(frozen=True)
class Neighbour:
    """Result of a nearest-neighbour query."""

    row: int  # row in the loaded training data
    index: int  # dataset item index (regenerates the preset)
    note: int  # the stored note compared
    distance: float  # RMS difference in dB over the log-mel (L2 / sqrt(n_mels * frames))


class NearestNeighbour:
    """Retrieval from a generated dataset by log-mel L2 distance (see the module docstring)."""

    name = "nearest"

    def __init__(self, root: str | Path, split: str = "train", limit: int | None = None,
                 space: ParamSpace | None = None) -> None:
        from ..data import dataset as ds

        self.space = space or default_space()
        self.root = Path(root)
        data = ds.load(self.root, (split,), space_hash=self.space.hash, limit=limit)
        self.meta = data.meta
        self.features = data.meta.feature_config
        self.data = data
        self.index = data.index
        self.notes = tuple(int(n) for n in data.meta.notes)
        p, n_notes, m, t = data.mel.shape
        self._mel = data.mel.reshape(p, n_notes, m * t)  # float16 view, no copy
        self._sq: dict[int, np.ndarray] = {}
        self._sampler = None
        self.description = f"nearest of {p} {split} presets of {self.root} (L2 on log-mel dB, nearest stored note)"

    def __len__(self) -> int:
        return len(self.index)

    def nearest_note(self, note: int) -> int:
        """Column of the stored note closest to ``note`` (ties: the lower note)."""
        return int(np.argmin([abs(n - int(note)) for n in self.notes]))

    def _norms(self, j: int) -> np.ndarray:
        sq = self._sq.get(j)
        if sq is None:
            sq = np.empty(len(self.index), dtype=np.float64)
            for a in range(0, len(sq), _CHUNK):
                block = self._mel[a : a + _CHUNK, j].astype(np.float32)
                sq[a : a + _CHUNK] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
            self._sq[j] = sq
        return sq

    def distances(self, mel: np.ndarray, note: int) -> tuple[np.ndarray, int]:
        """Squared L2 distance of ``mel`` (n_mels, T) to every item at the nearest stored note, and that column."""
        j = self.nearest_note(note)
        q = np.asarray(mel, dtype=np.float32).reshape(-1)
        if q.shape[0] != self._mel.shape[2]:
            raise ValueError(f"log-mel has {q.shape[0]} values, the dataset stores {self._mel.shape[2]} per note")
        dots = np.empty(len(self.index), dtype=np.float64)
        for a in range(0, len(dots), _CHUNK):
            dots[a : a + _CHUNK] = self._mel[a : a + _CHUNK, j].astype(np.float32) @ q
        d2 = self._norms(j) - 2.0 * dots + float(np.dot(q.astype(np.float64), q.astype(np.float64)))
        return np.maximum(d2, 0.0), j

    def query(self, mel: np.ndarray, note: int) -> Neighbour:
        """The closest training item to a log-mel made with ``self.features`` at MIDI ``note``."""
        d2, j = self.distances(mel, note)
        row = int(np.argmin(d2))
        return Neighbour(row, int(self.index[row]), self.notes[j], float(np.sqrt(d2[row] / self._mel.shape[2])))

    def preset_of(self, row: int) -> Preset:
        """The preset of a loaded row, regenerated from (seed, index)."""
        from ..data.sampling import PresetSampler

        if self._sampler is None:
            self._sampler = PresetSampler(self.space, self.meta.seed)
        return self._sampler.preset(int(self.index[row]))

    def lookup(self, analysis) -> tuple[Preset, Neighbour]:
        """Preset and match for an intake ``Analysis``."""
        from ..features import log_mel

        hit = self.query(log_mel(analysis.audio, self.features), analysis.note)
        return self.preset_of(hit.row), hit

    def __call__(self, analysis) -> Preset:
        return self.lookup(analysis)[0]
