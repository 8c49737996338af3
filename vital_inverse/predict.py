# SPDX-License-Identifier: GPL-3.0-or-later
"""Prediction: an analysed clip -> the K most probable candidate presets.

The network gives continuous values and one distribution per categorical.
Candidate 1 takes every arg-max; the others swap the most uncertain
audible categoricals to their runner-up options, ranked by the joint
probability of the choices (the categorical heads are independent, so the
K best combinations come from products of per-head probabilities).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .constants import SAMPLE_RATE
from . import checkpoint as ckpt
from .features import FeatureConfig, log_mel
from .model import ModelConfig, Predictor
from .params import ParamSpace, default_space
from .preset import Preset

MAX_FLIPS = 8  # uncertain categoricals considered for alternatives
_CLIP_LABELS = {
    "resynthesis": "the clip's own wavetable, swept in time, fitted envelope (resynthesis)",
    "resynthesis+noise": "the clip's own wavetable and its noise, fitted envelope (resynthesis)",
    "mixed": "best guess with the clip's own wavetable in oscillator 1",
    "resynthesis+width": "the clip's own wavetable in 2-voice unison, detune fitted to its width (resynthesis)",
    "noise": "noise through a filter, fitted envelope (unpitched clip)",
    "drum": "a sine whose pitch falls with envelope 3, fitted to the clip (pitched drum)",
}
#: Generative-head samples ``predict`` adds per clip by default: none, since the same renders spent on retrieved
#: presets match better (BENCHMARKS.md, "Generative head"); pass ``generative=K`` to add them. Refinement's
#: categorical moves use the head's beliefs either way.
GENERATIVE_K = 0
#: Nearest training presets the generative samples ``predict`` adds start from (``flow_samples``' ``anchors``):
#: anchored samples matched better than samples from noise on both benchmark sets.
GENERATIVE_ANCHORS = 8
#: Where anchored samples start on the flow's path (see ``PresetPredictor.flow_samples``), cycled per round.
ANCHOR_T0 = (0.6, 0.8)


@dataclass
class Candidate:
    """One predicted preset, with the probability of its categorical choices."""

    preset: Preset
    probability: float
    changes: dict[str, str] = field(default_factory=dict)  # categoricals swapped from the arg-max: name -> option

    #: "network", "retrieval" (a training preset that sounds alike), "generative" (a sample of the
    #: generative head), or a start made of the clip (``resynthesis`` module): "resynthesis", "mixed"
    #: (network modules + the clip's table), "resynthesis+noise", "resynthesis+width", "noise", "drum"
    source: str = "network"

    @property
    def label(self) -> str:
        if self.source in _CLIP_LABELS:
            return _CLIP_LABELS[self.source]
        if self.source == "retrieval":
            return f"nearest training preset (log-mel distance {self.probability:.0f})"
        if self.source == "generative":
            return f"generative sample {int(self.probability)}"
        if not self.changes:
            return f"best guess (p={self.probability:.2f})"
        return ", ".join(f"{k}={v}" for k, v in self.changes.items()) + f" (p={self.probability:.2f})"


def split_continuous(space: ParamSpace) -> tuple[list, list]:
    """(non-route continuous params, route params) in the order the heads output them."""
    return [p for p in space.continuous if p.route is None], [p for p in space.continuous if p.route is not None]


def values_from_outputs(space: ParamSpace, plain: np.ndarray, routes: np.ndarray, choice: Sequence[int]) -> dict[str, float]:
    """Raw values from the heads' outputs (normalised continuous, route amounts, option indices)."""
    plain_params, route_params = split_continuous(space)
    values: dict[str, float] = {}
    for p, x in zip(plain_params, plain):
        values[p.name] = p.denormalize(float(x))
    for p, x in zip(route_params, routes):
        values[p.name] = p.denormalize(float(x))
    for p, c in zip(space.categorical, choice):
        values[p.name] = p.option_values[int(c)]
    return space.canonical(snap_to_prior_support(space, {n: values[n] for n in space.names}))


def snap_to_prior_support(space: ParamSpace, values: dict[str, float]) -> dict[str, float]:
    """Ordinals the training prior draws from a few values (transposes: 0, +-12, ...) take the nearest of them.

    A regression head lands between those values (2 semitones off is a
    wrong note); the training data never held anything else, so the
    nearest supported value is the most probable one.
    """
    from .data.sampling import prior_supports

    out = dict(values)
    for name, support in prior_supports(space).items():
        out[name] = float(support[np.argmin(np.abs(support - out[name]))])
    return out


def model_config_for(space: ParamSpace, **overrides) -> ModelConfig:
    plain, routes = split_continuous(space)
    return ModelConfig(n_continuous=len(plain), n_routes=len(routes),
                       categorical_sizes=[p.size for p in space.categorical], **overrides)


class PresetPredictor:
    """A loaded checkpoint ready to predict; read-only after loading, so one can serve many users."""

    def __init__(self, model: Predictor, info: ckpt.CheckpointInfo, space: ParamSpace, source: str = "") -> None:
        self.model = model.eval()
        self.info = info
        self.space = space
        self.features = FeatureConfig.from_dict(info.features)
        self.source = source
        self.index = None
        self.flow = None  # flow.VelocityNet: the generative head, when the checkpoint has one

    @classmethod
    def load(cls, source: str | Path | None = None, space: ParamSpace | None = None,
             ast_source: str | None = None, device: str = "auto") -> PresetPredictor:
        """Load from a checkpoint folder or Hub repo id (default: the shipped checkpoint); ``device`` places
        the generative head (auto: a GPU when present)."""
        space = space or default_space()
        folder = ckpt.resolve(source)
        info = ckpt.read_info(folder, space.hash)
        cfg = ModelConfig.from_dict(info.model)
        model = Predictor(cfg, ast_source=ast_source)
        weights = ckpt.load_weights(folder)
        try:
            missing, unexpected = model.load_state_dict(weights, strict=False)
        except RuntimeError as e:  # same names, other shapes: made by another version of the model code
            raise ckpt.CheckpointError(
                f"{folder} was saved by a different version of the model code ({str(e).splitlines()[1].strip()}); "
                "retrain it with `vital-inverse train` or use the checkpoint shipped with this version"
            ) from None
        missing = [k for k in missing if not k.startswith("encoder.ast.")]
        if missing or unexpected:
            raise ckpt.CheckpointError(f"{folder} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]})")
        predictor = cls(model, info, space, str(folder))
        from .retrieval import RetrievalIndex

        predictor.index = RetrievalIndex.load(folder)
        if cfg.encoder == "compact":
            from .flow import encoder_fingerprint, load_flow

            predictor.flow = load_flow(folder, space.hash, encoder_fingerprint(model), device)
        return predictor

    # -- inputs -------------------------------------------------------------
    def model_input(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE):
        """Network input for one clip: a log-mel (compact) or 16 kHz mono audio (ast)."""
        if self.model.cfg.encoder == "ast":
            import soxr

            from .model import AST_SAMPLE_RATE

            mono = audio.mean(axis=0) if audio.ndim == 2 else audio
            return [soxr.resample(mono.astype(np.float32), sample_rate, AST_SAMPLE_RATE)]
        return torch.from_numpy(log_mel(audio, self.features)).unsqueeze(0)

    @torch.no_grad()
    def distributions(self, audio: np.ndarray, note: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(continuous [0,1], route amounts [0,1], per-categorical probabilities) for one clip."""
        cont, routes, logits = self.model(self.model_input(audio), torch.tensor([int(note)]))
        return cont[0].numpy(), routes[0].numpy(), [torch.softmax(l[0], 0).numpy() for l in logits]

    # -- candidates -----------------------------------------------------------
    def predict(self, analysis, k: int = 4, retrieval: int = 2, resynthesis: bool = True,
                generative: int = GENERATIVE_K) -> list[Candidate]:
        """The K most probable network candidates for an intake ``Analysis`` (best first), then up to
        ``retrieval`` nearest training presets when the checkpoint ships a retrieval index, then
        ``generative`` samples of the generative head when it has one, then (with ``resynthesis``) the
        starts made of the clip itself (``clip_candidates``)."""
        if k < 1:
            raise ValueError("k must be at least 1")
        cont, routes, probs = self.distributions(analysis.audio, analysis.note)
        best = [int(np.argmax(pr)) for pr in probs]
        base = values_from_outputs(self.space, cont, routes, best)
        values = {n: base[n] for n in base if n not in {p.name for p in self.space.categorical}}
        audible = self.space.audible(base)
        flips = self._uncertain(probs, best, audible)
        name = getattr(analysis, "source_name", "clip")
        out = []
        for logp, choice in _k_best(probs, best, flips, k):
            vals = self._with_categoricals(values, choice)
            changes = {self.space.categorical[i].name: self.space.categorical[i].options[c]
                       for i, c in enumerate(choice) if c != best[i]}
            preset = Preset(values=self.space.canonical(vals), name=f"{name} (Vital Inverse)",
                            comments="Predicted by Vital Inverse", space_hash=self.space.hash)
            out.append(Candidate(preset, math.exp(logp), changes))
        if self.index is not None and retrieval > 0 and self.model.cfg.encoder == "compact":
            mel = log_mel(analysis.audio, self.features)
            for preset, dist in self.index.presets(self.space, mel, analysis.note, retrieval):
                preset = preset.with_meta(name=f"{name} (Vital Inverse)", comments="Nearest training preset (Vital Inverse)")
                out.append(Candidate(preset, dist, {}, source="retrieval"))
        if self.flow is not None and generative > 0:
            out += self.generative(analysis, generative, anchors=GENERATIVE_ANCHORS)
        if resynthesis:
            out += clip_candidates(analysis, [out[0].preset])
        return out

    # -- the generative head ----------------------------------------------------
    @torch.no_grad()
    def flow_condition(self, audio: np.ndarray, note: int) -> torch.Tensor:
        """The generative head's condition for one clip (``flow.condition``): (C,)."""
        from .flow import condition

        return condition(self.model, self.model_input(audio), torch.tensor([int(note)]))[0]

    def flow_samples(self, analysis, k: int, seed: int = 0, temperature: float | None = None,
                     anchors: int = 0, t0: Sequence[float] = ANCHOR_T0) -> np.ndarray:
        """K samples of the generative head for a clip: (K, V) flow vectors (``flow.FlowCodec`` layout).

        ``anchors`` > 0: the samples start from the clip's ``anchors`` nearest training presets (the
        retrieval index) part-way along the flow, sample i from anchor i mod ``anchors`` at time
        ``t0[(i // anchors) mod len(t0)]`` (``flow.sample``'s ``start``): variations of presets that sound
        alike, pulled towards the clip by the flow. Without a retrieval index they start from noise.
        """
        from .flow import FlowCodec, sample

        if self.flow is None:
            raise ValueError("this checkpoint has no generative head (flow.safetensors)")
        cond = self.flow_condition(analysis.audio, analysis.note)
        start, times = None, 0.0
        if anchors > 0 and self.index is not None and t0:
            mel = log_mel(analysis.audio, self.features)
            near = [p.values for p, _ in self.index.presets(self.space, mel, analysis.note, min(anchors, k))]
            vecs = FlowCodec.for_net(self.flow, self.space).encode_values(near)
            rows = np.arange(k)
            start = torch.from_numpy(vecs[rows % len(near)])
            times = torch.tensor([t0[(i // len(near)) % len(t0)] for i in rows], dtype=torch.float32)
        return sample(self.flow, cond, int(analysis.note), int(k), seed=seed, temperature=temperature,
                      start=start, t0=times).numpy()

    def generative(self, analysis, k: int = 32, seed: int = 0, temperature: float | None = None,
                   anchors: int = 0, t0: Sequence[float] = ANCHOR_T0) -> list[Candidate]:
        """K presets sampled from p(preset | clip, note), in sampling order (not ranked: render them to choose);
        ``anchors``/``t0`` as in ``flow_samples``."""
        from .flow import FlowCodec

        name = getattr(analysis, "source_name", "clip")
        out = []
        x = self.flow_samples(analysis, k, seed, temperature, anchors, t0)
        for i, values in enumerate(FlowCodec.for_net(self.flow, self.space).decode(x)):
            preset = Preset(values=values, name=f"{name} (Vital Inverse)",
                            comments="Sampled by Vital Inverse's generative head", space_hash=self.space.hash)
            out.append(Candidate(preset, float(i + 1), {}, source="generative"))
        return out

    def _with_categoricals(self, values: dict[str, float], choice: Sequence[int]) -> dict[str, float]:
        vals = dict(values)
        for p, c in zip(self.space.categorical, choice):
            vals[p.name] = p.option_values[c]
        return vals

    def _uncertain(self, probs: list[np.ndarray], best: list[int], audible: set[str]) -> list[int]:
        """Indices of the audible categoricals whose arg-max is least certain."""
        margin = []
        for i, (p, pr) in enumerate(zip(self.space.categorical, probs)):
            if p.name in audible and len(pr) > 1:
                second = np.partition(pr, -2)[-2]
                margin.append((pr[best[i]] - second, i))
        return [i for _, i in sorted(margin)[:MAX_FLIPS]]


def clip_candidates(analysis, others: Sequence[Preset] = ()) -> list[Candidate]:
    """Starts made of the clip (``resynthesis.starts``): its own swept table under a fitted envelope (alone,
    with its noise, in a unison as wide as the clip), the same table with the modules of each of ``others``;
    for an unpitched clip a drum start (falling pitch), a table at a chord's common f0, or a noise start.

    Empty when the clip cannot be resynthesised (nothing at its harmonics):
    the other candidates still stand.
    """
    from .errors import UserError
    from .resynthesis import starts

    try:
        made = starts(analysis, list(others))
    except (ValueError, UserError):
        return []
    return [Candidate(preset, 1.0, {}, source=kind) for kind, preset in made]


def _k_best(probs: list[np.ndarray], best: list[int], flips: list[int], k: int):
    """K most probable choice vectors, varying only ``flips`` over their top options."""
    options = {i: list(np.argsort(-probs[i])[:3]) for i in flips}
    base_logp = sum(math.log(max(float(probs[i][c]), 1e-12)) for i, c in enumerate(best))
    scored = []
    for combo in itertools.product(*[options[i] for i in flips]):
        choice = list(best)
        logp = base_logp
        for i, c in zip(flips, combo):
            logp += math.log(max(float(probs[i][c]), 1e-12)) - math.log(max(float(probs[i][best[i]]), 1e-12))
            choice[i] = int(c)
        scored.append((logp, choice))
    return heapq.nlargest(k, scored, key=lambda t: t[0])
