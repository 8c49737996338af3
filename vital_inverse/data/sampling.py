# SPDX-License-Identifier: GPL-3.0-or-later
"""Sampling presets that look like presets people make.

Continuous parameters: a Latin Hypercube per block of items, pushed through
a prior's inverse CDF (so the hypercube's even coverage survives the
prior). Categoricals: weighted draws. Every item depends only on
``(seed, index)``: item i's stratum comes from its block's permutation
(seeded by ``(seed, block)``) and its jitter and categoricals from
``(seed, i)``, so any item can be regenerated alone.

Priors are design choices (most effects off, musical envelopes, filters
often on, unison often 1, routes mostly zero), stated in normalised units
or in Vital's raw units, converted through the ParamSpace's ranges.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ..params import ParamSpace
from ..preset import Preset

BLOCK = 64  # items per Latin Hypercube block


@dataclass(frozen=True)
class Prior:
    """Inverse-CDF prior on a normalised value in [0, 1].

    With probability ``p_spike`` the value is ``spike`` (normalised, or the
    parameter's default when ``spike`` is None and p_spike > 0); otherwise
    a Beta(a, b) stretched over [lo, hi]. ``raw=True`` means lo/hi are in
    Vital's raw units. ``discrete`` replaces all that with raw values and
    their probabilities (ordinals).
    """

    a: float = 1.0
    b: float = 1.0
    lo: float = 0.0
    hi: float = 1.0
    raw: bool = False
    p_spike: float = 0.0
    spike: float | None = None
    discrete: tuple[tuple[float, float], ...] = ()


# First matching pattern wins.
CONTINUOUS_PRIORS: tuple[tuple[str, Prior], ...] = (
    ("osc_*_level", Prior(4, 2, 0.35, 1.0)),
    ("osc_*_pan", Prior(2, 2, 0.2, 0.8, p_spike=0.75)),
    ("osc_1_transpose", Prior(discrete=((0, 0.8), (-12, 0.1), (12, 0.06), (-24, 0.04)))),
    ("osc_*_transpose", Prior(discrete=((0, 0.55), (-12, 0.15), (12, 0.15), (7, 0.05), (-24, 0.04), (24, 0.03), (-5, 0.03)))),
    ("osc_*_tune", Prior(6, 6, 0.35, 0.65, p_spike=0.55)),
    ("osc_*_unison_voices", Prior(discrete=((1, 0.55), (2, 0.06), (3, 0.08), (4, 0.08), (5, 0.05), (6, 0.05), (7, 0.07), (8, 0.03), (16, 0.03)))),
    ("osc_*_unison_detune", Prior(1.5, 3)),
    ("sample_level", Prior(2, 2, 0.2, 0.9)),
    ("filter_*_cutoff", Prior(2, 1.5, 0.15, 1.0)),
    ("filter_*_resonance", Prior(1.5, 3)),
    ("filter_*_drive", Prior(1, 3, p_spike=0.6)),
    ("filter_*_blend", Prior(1, 1, p_spike=0.6)),
    ("filter_*_keytrack", Prior(2, 2, 0.3, 0.8, p_spike=0.6)),
    ("env_*_attack", Prior(1, 4, 0.0, 0.6)),
    ("env_*_decay", Prior(2, 2, 0.1, 0.7)),
    ("env_*_sustain", Prior(1, 1, p_spike=0.25, spike=1.0)),
    ("env_*_release", Prior(2, 3, 0.05, 0.65)),
    ("env_*_power", Prior(3, 3, 0.3, 0.7, p_spike=0.6)),
    ("lfo_*_frequency", Prior(1, 1, -2.0, 4.0, raw=True)),
    ("reverb_decay_time", Prior(1, 1, -3.0, 3.0, raw=True)),
    ("delay_frequency", Prior(1, 1, -1.0, 3.0, raw=True)),
    ("chorus_frequency", Prior(1, 1, -4.0, 1.0, raw=True)),
    ("phaser_frequency", Prior(1, 1, -4.0, 1.0, raw=True)),
    ("flanger_frequency", Prior(1, 1, -4.0, 1.0, raw=True)),
    ("*_dry_wet", Prior(2, 2, 0.1, 0.7)),
    ("delay_feedback", Prior(2, 2, 0.5, 0.9)),
    ("flanger_feedback", Prior(2, 2, 0.3, 0.9)),
    ("distortion_drive", Prior(2, 2, 0.5, 1.0)),
    ("eq_*_gain", Prior(2, 2, 0.2, 0.8)),
    ("mod_*", Prior(2, 2, 0.0, 1.0, p_spike=0.75)),
)

# Probability of option labels; unlisted options share what is left.
CATEGORICAL_PRIORS: dict[str, dict[str, float]] = {
    "osc_1_on": {"On": 0.95},
    "osc_2_on": {"On": 0.5},
    "osc_3_on": {"On": 0.25},
    "sample_on": {"On": 0.15},
    "osc_*_spectral_morph_type": {"None": 0.7},
    "osc_*_distortion_type": {"None": 0.75},
    "osc_*_destination": {"FILTER 1": 0.65, "FILTER 2": 0.12, "FILTER 1+2": 0.08, "EFFECTS": 0.15},
    "sample_destination": {"FILTER 1": 0.5, "EFFECTS": 0.4},
    "filter_1_on": {"On": 0.7},
    "filter_2_on": {"On": 0.25},
    "filter_*_model": {"Analog": 0.3, "Dirty": 0.15, "Ladder": 0.2, "Digital": 0.15, "Diode": 0.08},
    "filter_*_style": {"12dB": 0.45, "24dB": 0.35},
    "chorus_on": {"On": 0.2},
    "delay_on": {"On": 0.15},
    "reverb_on": {"On": 0.35},
    "distortion_on": {"On": 0.15},
    "phaser_on": {"On": 0.1},
    "flanger_on": {"On": 0.1},
    "compressor_on": {"On": 0.15},
    "eq_on": {"On": 0.1},
    "osc_*_wavetable": {"Init Saw": 0.12},
}


def prior_for(name: str, table) -> object | None:
    """The entry of a prior table (``CONTINUOUS_PRIORS``, ``CATEGORICAL_PRIORS``) whose glob matches ``name``, or None."""
    items = table.items() if isinstance(table, dict) else table
    for pattern, value in items:
        if fnmatch.fnmatchcase(name, pattern):
            return value
    return None


def prior_supports(space: ParamSpace) -> dict[str, np.ndarray]:
    """Raw values of each continuous (ordinal) parameter the prior draws from a few values only (transposes...)."""
    out = {}
    for p in space.continuous:
        prior = prior_for(p.name, CONTINUOUS_PRIORS)
        if prior is not None and prior.discrete:
            out[p.name] = np.array([v for v, _ in prior.discrete], dtype=np.float64)
    return out


class PresetSampler:
    """Draws presets from the priors over a ParamSpace."""

    def __init__(self, space: ParamSpace, seed: int) -> None:
        self.space = space
        self.seed = int(seed)
        self._priors = [(prior_for(p.name, CONTINUOUS_PRIORS) or Prior()) for p in space.continuous]
        self._weights = [self._categorical_weights(p) for p in space.categorical]

    def _categorical_weights(self, p) -> np.ndarray:
        table = prior_for(p.name, CATEGORICAL_PRIORS) or {}
        w = np.array([table.get(o, np.nan) for o in p.options], dtype=np.float64)
        free = np.isnan(w)
        left = max(0.0, 1.0 - np.nansum(w))
        w[free] = left / free.sum() if free.any() else 0.0
        return w / w.sum()

    # -- continuous ---------------------------------------------------------
    @functools.lru_cache(maxsize=4)
    def block_strata(self, block: int) -> np.ndarray:
        """(n_continuous, BLOCK) stratum of each row, one permutation per parameter."""
        rng = np.random.default_rng([self.seed, 1, block])
        return np.stack([rng.permutation(BLOCK) for _ in self.space.continuous])

    def _uniforms(self, index: int, rng: np.random.Generator) -> np.ndarray:
        strata = self.block_strata(index // BLOCK)[:, index % BLOCK]
        return (strata + rng.random(len(strata))) / BLOCK

    def _ppf(self, p, prior: Prior, u: float) -> float:
        if prior.discrete:
            raws, probs = zip(*prior.discrete)
            k = int(np.searchsorted(np.cumsum(probs) / sum(probs), u, side="right"))
            return p.normalize(float(raws[min(k, len(raws) - 1)]))
        if u < prior.p_spike:
            return prior.spike if prior.spike is not None else p.normalize(p.default)
        v = (u - prior.p_spike) / (1.0 - prior.p_spike)
        lo, hi = (p.normalize(prior.lo), p.normalize(prior.hi)) if prior.raw else (prior.lo, prior.hi)
        return lo + float(stats.beta.ppf(min(max(v, 1e-9), 1 - 1e-9), prior.a, prior.b)) * (hi - lo)

    # -- items ----------------------------------------------------------------
    def values(self, index: int) -> dict[str, float]:
        """Raw values of item ``index`` (depends only on seed and index)."""
        rng = np.random.default_rng([self.seed, 2, index])
        u = self._uniforms(index, rng)
        x = np.array([self._ppf(p, pr, ui) for p, pr, ui in zip(self.space.continuous, self._priors, u)])
        values = self.space.with_continuous({}, x)
        for p, w in zip(self.space.categorical, self._weights):
            values[p.name] = p.option_values[int(rng.choice(len(w), p=w))]
        self._ensure_audible(values)
        values = self.space.canonical(values)
        return {n: values[n] for n in self.space.names}

    def _ensure_audible(self, values: dict[str, float]) -> None:
        """At least one sound source on."""
        sources = [f"osc_{k}_on" for k in (1, 2, 3)] + ["sample_on"]
        if not any(self.space[s].index_of(values[s]) for s in sources):
            values["osc_1_on"] = self.space["osc_1_on"].option_values[1]

    def preset(self, index: int) -> Preset:
        return Preset(values=self.values(index), name=f"synthetic-{self.seed}-{index}", space_hash=self.space.hash)


def sample_preset(space: ParamSpace, seed: int, index: int) -> Preset:
    """Item ``index`` of run ``seed``, regenerated alone."""
    return PresetSampler(space, seed).preset(index)


def mean_values(space: ParamSpace, samples: list[Mapping[str, float]]) -> dict[str, float]:
    """The 'mean preset' baseline: mean of continuous values, mode of categoricals."""
    out: dict[str, float] = {}
    for p in space.params:
        col = np.array([s[p.name] for s in samples])
        if p.kind == "categorical":
            idx = [p.index_of(v) for v in col]
            out[p.name] = p.option_values[int(np.bincount(idx, minlength=len(p.options)).argmax())]
        else:
            out[p.name] = p.denormalize(float(np.mean([p.normalize(v) for v in col])))
    return out
