# SPDX-License-Identifier: GPL-3.0-or-later
"""Categorical moves for refinement: when the continuous search stalls, try the
incumbent with one categorical (a wavetable, a filter model, an effect switch,
an LFO shape...) changed to the option the predictor believes in most after
the incumbent's own.

CMA-ES only moves continuous values, so a wrong wavetable or filter model
caps the match. The belief per option comes from the generative head (how
often each option wins among K samples for this clip, ``FlowCodec.
option_probabilities``) or, for a checkpoint without one, from the
regression heads' softmax. ``CategoricalMoves.propose`` ranks every
single-categorical change of the incumbent by that probability (only
settings the incumbent can hear, plus switches, and never a locked one) and
returns the next untried ones; refinement renders them against the
incumbent and counts those renders in its budget (``RefineConfig.moves``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .params import ParamSpace
from .preset import Preset


class CategoricalMoves:
    """Proposes single-categorical changes of an incumbent, most probable first, each tried once per incumbent."""

    def __init__(self, space: ParamSpace, probs: Sequence[np.ndarray], locked: frozenset[str] = frozenset()) -> None:
        if len(probs) != len(space.categorical):
            raise ValueError(f"expected {len(space.categorical)} option distributions, got {len(probs)}")
        self.space, self.probs, self.locked = space, [np.asarray(p, np.float64) for p in probs], frozenset(locked)
        self._tried: set[tuple[str, int]] = set()
        self._key: tuple[int, ...] | None = None

    @classmethod
    def for_clip(cls, predictor, analysis, samples: int = 64, locked: frozenset[str] = frozenset()) -> CategoricalMoves:
        """Beliefs for one analysed clip: the generative head's option frequencies over ``samples`` samples
        (the regression heads' softmax when the checkpoint has no generative head)."""
        if predictor.flow is not None:
            from .flow import FlowCodec

            probs = FlowCodec.for_net(predictor.flow, predictor.space).option_probabilities(predictor.flow_samples(analysis, samples))
        else:
            probs = predictor.distributions(analysis.audio, analysis.note)[2]
        return cls(predictor.space, probs, locked)

    def ranked(self, values: dict[str, float]) -> list[tuple[float, str, int]]:
        """Every allowed single change (probability of the new option, parameter name, option index), best first."""
        audible = self.space.audible(values)
        out = []
        for p, pr in zip(self.space.categorical, self.probs):
            if p.name in self.locked or (p.name not in audible and not p.name.endswith("_on")):
                continue
            current = p.index_of(values[p.name])
            out += [(float(pr[o]), p.name, o) for o in range(p.size) if o != current]
        return sorted(out, key=lambda t: -t[0])

    def propose(self, preset: Preset, n: int) -> list[Preset]:
        """Up to ``n`` presets, each the incumbent with one categorical changed; none proposed twice for the
        same incumbent categoricals (a new incumbent makes every move new again)."""
        key = tuple(int(i) for i in self.space.categorical_indices(preset.values))
        if key != self._key:
            self._key, self._tried = key, set()
        out = []
        for _, name, option in self.ranked(dict(preset.values)):
            if len(out) >= n:
                break
            if (name, option) in self._tried:
                continue
            self._tried.add((name, option))
            values = dict(preset.values)
            values[name] = self.space[name].option_values[option]
            out.append(preset.with_values(self.space.canonical(values)))
        return out
