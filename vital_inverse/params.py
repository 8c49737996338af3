# SPDX-License-Identifier: GPL-3.0-or-later
"""ParamSpace: the one table of Vital controls the system predicts and refines.

Everything else derives from it: dataset sampling, the model's output layer,
CMA-ES bounds, preset export and the tutorial. Rows below say *which*
controls matter and how they gate each other; ranges, scales, discreteness,
option names and display text are read from Vita's ``get_control_details``,
never typed in.

Three kinds of parameter:

- ``continuous``: a real value, normalised linearly over Vital's raw range
  (Vital's raw values are already perceptually skewed: the displayed value
  is a power or exponential of the raw one, as Vital's own knobs move);
- ``ordinal``: an integer-valued control (transpose, unison voices) that is
  ordered, so it is searched and regressed like a continuous one and
  rounded on decode;
- ``categorical``: unordered options (switches, filter model, wavetable,
  LFO shape), one-hot in vectors, softmax in the model.

Values are held *raw* (Vital's units: semitones, seconds^(1/4), option
index) in plain ``dict[str, float]``s keyed by parameter name.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import UserError
from .lfo_shapes import SHAPE_NAMES

Kind = Literal["continuous", "ordinal", "categorical"]

N_OSCILLATORS = 3
N_FILTERS = 2
N_ENVELOPES = 3
N_LFOS = 2


class ParamSpaceError(UserError):
    """A value or vector does not fit the ParamSpace."""


# --------------------------------------------------------------------------
# The declarative table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One row of the table: what to read from Vita and how it is gated."""

    name: str
    kind: Kind
    group: str
    gates: tuple[str, ...] = ()  # categoricals that must be non-zero for this to be audible
    control: str | None = None  # Vital control to read ranges from (default: name)
    choices: tuple[str, ...] | None = None  # subset of Vital's option names, by name
    source: str | None = None  # for modulation routes: the Vital modulation source
    destinations: tuple[str, ...] = ()  # for modulation routes: Vital destinations


@dataclass(frozen=True)
class Route:
    """A fixed modulation route whose amount is a parameter."""

    name: str
    source: str
    destinations: tuple[str, ...]
    label: str


ROUTES: tuple[Route, ...] = (
    Route("mod_env2_filter1_cutoff", "env_2", ("filter_1_cutoff",), "Envelope 2 -> Filter 1 Cutoff"),
    Route("mod_lfo1_osc1_frame", "lfo_1", ("osc_1_wave_frame",), "LFO 1 -> Oscillator 1 Wave Frame"),
    Route("mod_lfo2_filter1_cutoff", "lfo_2", ("filter_1_cutoff",), "LFO 2 -> Filter 1 Cutoff"),
    Route("mod_env2_osc1_level", "env_2", ("osc_1_level",), "Envelope 2 -> Oscillator 1 Level"),
    Route("mod_lfo1_pitch", "lfo_1", ("voice_tune",), "LFO 1 -> Pitch (all oscillators)"),
    Route("mod_velocity_filter1_cutoff", "velocity", ("filter_1_cutoff",), "Velocity -> Filter 1 Cutoff"),
    Route("mod_lfo2_pan", "lfo_2", ("osc_1_pan", "osc_2_pan", "osc_3_pan"), "LFO 2 -> Pan (all oscillators)"),
    Route("mod_env3_osc1_frame", "env_3", ("osc_1_wave_frame",), "Envelope 3 -> Oscillator 1 Wave Frame"),
)

# Controls fixed in every generated preset so that the parameters above mean
# one thing: LFO and effect rates in seconds, not tempo divisions.
FIXED_OPTIONS: dict[str, str] = {
    "lfo_1_sync": "Seconds",
    "lfo_2_sync": "Seconds",
    "delay_sync": "Seconds",
    "chorus_sync": "Seconds",
    "phaser_sync": "Seconds",
    "flanger_sync": "Seconds",
}

DESTINATION_CHOICES = ("FILTER 1", "FILTER 2", "FILTER 1+2", "EFFECTS")

EFFECTS: dict[str, tuple[str, ...]] = {
    "chorus": ("chorus_dry_wet", "chorus_mod_depth", "chorus_frequency"),
    "delay": ("delay_dry_wet", "delay_feedback", "delay_frequency"),
    "reverb": ("reverb_dry_wet", "reverb_decay_time", "reverb_size"),
    "distortion": ("distortion_mix", "distortion_drive"),
    "phaser": ("phaser_dry_wet", "phaser_feedback", "phaser_frequency", "phaser_center"),
    "flanger": ("flanger_dry_wet", "flanger_feedback", "flanger_frequency", "flanger_center"),
    "compressor": ("compressor_mix", "compressor_attack", "compressor_release"),
    "eq": ("eq_low_gain", "eq_band_cutoff", "eq_band_gain", "eq_high_gain"),
}
EFFECT_SWITCH = {fx: ("eq_on" if fx == "eq" else f"{fx}_on") for fx in EFFECTS}


def _rows() -> list[Row]:
    """The table, in the order a sound designer reads a synth."""
    rows: list[Row] = []
    for k in range(1, N_OSCILLATORS + 1):
        g, on = f"osc_{k}", (f"osc_{k}_on",)
        rows += [
            Row(f"osc_{k}_on", "categorical", g),
            Row(f"osc_{k}_wavetable", "categorical", g, on, control=None),
            Row(f"osc_{k}_level", "continuous", g, on),
            Row(f"osc_{k}_pan", "continuous", g, on),
            Row(f"osc_{k}_transpose", "ordinal", g, on),
            Row(f"osc_{k}_tune", "continuous", g, on),
            Row(f"osc_{k}_wave_frame", "continuous", g, on),
            Row(f"osc_{k}_unison_voices", "ordinal", g, on),
            Row(f"osc_{k}_unison_detune", "continuous", g, on),
            Row(f"osc_{k}_spectral_morph_type", "categorical", g, on),
            Row(f"osc_{k}_spectral_morph_amount", "continuous", g, on + (f"osc_{k}_spectral_morph_type",)),
            Row(f"osc_{k}_distortion_type", "categorical", g, on),
            Row(f"osc_{k}_distortion_amount", "continuous", g, on + (f"osc_{k}_distortion_type",)),
            Row(f"osc_{k}_destination", "categorical", g, on, choices=DESTINATION_CHOICES),
        ]
    rows += [
        Row("sample_on", "categorical", "sample"),
        Row("sample_level", "continuous", "sample", ("sample_on",)),
        Row("sample_destination", "categorical", "sample", ("sample_on",), choices=DESTINATION_CHOICES),
    ]
    for k in range(1, N_FILTERS + 1):
        g, on = f"filter_{k}", (f"filter_{k}_on",)
        rows += [Row(f"filter_{k}_on", "categorical", g)]
        rows += [Row(f"filter_{k}_{p}", "categorical", g, on) for p in ("model", "style")]
        rows += [
            Row(f"filter_{k}_{p}", "continuous", g, on)
            for p in ("cutoff", "resonance", "drive", "blend", "keytrack")
        ]
    for k in range(1, N_ENVELOPES + 1):
        rows += [
            Row(f"env_{k}_{p}", "continuous", f"env_{k}")
            for p in ("attack", "decay", "sustain", "release", "attack_power", "decay_power", "release_power")
        ]
    for k in range(1, N_LFOS + 1):
        rows += [
            Row(f"lfo_{k}_frequency", "continuous", f"lfo_{k}"),
            Row(f"lfo_{k}_shape", "categorical", f"lfo_{k}"),
        ]
    for fx, controls in EFFECTS.items():
        switch = EFFECT_SWITCH[fx]
        rows.append(Row(switch, "categorical", fx))
        if fx == "distortion":
            rows.append(Row("distortion_type", "categorical", fx, (switch,)))
        rows += [Row(c, "continuous", fx, (switch,)) for c in controls]
    rows += [
        Row(r.name, "continuous", "modulation", control="modulation_1_amount", source=r.source, destinations=r.destinations)
        for r in ROUTES
    ]
    return rows


# --------------------------------------------------------------------------
# Resolved parameters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """A table row resolved against Vita: range, scale and options."""

    name: str
    kind: Kind
    group: str
    gates: tuple[str, ...]
    control: str | None  # Vital control this writes, None for wavetable/LFO shape/routes
    min: float
    max: float
    default: float  # raw
    scale: str
    display_name: str
    units: str
    options: tuple[str, ...] = ()  # categorical labels, in order of index
    option_values: tuple[float, ...] = ()  # raw Vital value for each option
    route: Route | None = None

    @property
    def size(self) -> int:
        """Width of this parameter in the vector encoding."""
        return len(self.options) if self.kind == "categorical" else 1

    def normalize(self, raw: float) -> float:
        """Raw Vital value -> [0, 1] (continuous/ordinal) or option index (categorical)."""
        if self.kind == "categorical":
            return float(self.index_of(raw))
        return float(np.clip((raw - self.min) / (self.max - self.min), 0.0, 1.0))

    def denormalize(self, x: float) -> float:
        """[0, 1] -> raw Vital value; ordinals are rounded to Vital's integer steps."""
        if self.kind == "categorical":
            return float(self.option_values[int(x)])
        raw = self.min + float(np.clip(x, 0.0, 1.0)) * (self.max - self.min)
        return float(round(raw)) if self.kind == "ordinal" else raw

    def index_of(self, raw: float) -> int:
        """Option index for a raw categorical value (nearest, for robustness)."""
        vals = np.asarray(self.option_values)
        return int(np.argmin(np.abs(vals - raw)))

    def check(self, raw: float) -> None:
        """Raise ParamSpaceError if a raw value is outside what Vital accepts."""
        if not np.isfinite(raw):
            raise ParamSpaceError(f"{self.name} = {raw} is not a finite number")
        if self.kind == "categorical":
            if not any(abs(raw - v) < 1e-6 for v in self.option_values):
                raise ParamSpaceError(
                    f"{self.name} = {raw:g} is not one of its options "
                    f"({', '.join(f'{v:g}={o}' for v, o in zip(self.option_values, self.options))})"
                )
            return
        tol = 1e-6 * (self.max - self.min)
        if raw < self.min - tol or raw > self.max + tol:
            raise ParamSpaceError(
                f"{self.name} = {raw:g} is outside Vital's range [{self.min:g}, {self.max:g}]"
            )


@dataclass(frozen=True)
class ParamSpace:
    """The resolved table plus the vector layout and a version hash."""

    params: tuple[Param, ...]
    fixed: Mapping[str, float] = field(default_factory=dict)  # control -> raw value fixed in generated presets

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {p.name: p for p in self.params})

    # -- lookup ---------------------------------------------------------
    def __getitem__(self, name: str) -> Param:
        try:
            return self._by_name[name]  # type: ignore[attr-defined]
        except KeyError:
            raise ParamSpaceError(f"unknown parameter {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @functools.cached_property
    def continuous(self) -> tuple[Param, ...]:
        """Continuous and ordinal parameters: the CMA-ES search space and the regression head."""
        return tuple(p for p in self.params if p.kind != "categorical")

    @functools.cached_property
    def categorical(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.kind == "categorical")

    @functools.cached_property
    def routes(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.route is not None)

    def groups(self) -> dict[str, list[Param]]:
        """Parameters by module, in table order."""
        out: dict[str, list[Param]] = {}
        for p in self.params:
            out.setdefault(p.group, []).append(p)
        return out

    # -- values ---------------------------------------------------------
    def defaults(self) -> dict[str, float]:
        """Raw values of Vital's Init preset for every parameter."""
        return {p.name: p.default for p in self.params}

    def validate(self, values: Mapping[str, float]) -> None:
        """Raise ParamSpaceError naming the first unknown, missing or out-of-range value."""
        unknown = set(values) - set(self.names)
        if unknown:
            raise ParamSpaceError(f"unknown parameters: {', '.join(sorted(unknown))}")
        missing = [n for n in self.names if n not in values]
        if missing:
            raise ParamSpaceError(f"missing parameters: {', '.join(missing[:8])}")
        for p in self.params:
            p.check(float(values[p.name]))

    def continuous_vector(self, values: Mapping[str, float]) -> np.ndarray:
        """Normalised [0, 1] values of the continuous/ordinal parameters, float64 (n_continuous,)."""
        return np.array([p.normalize(values[p.name]) for p in self.continuous], dtype=np.float64)

    def with_continuous(self, values: Mapping[str, float], x: np.ndarray) -> dict[str, float]:
        """Copy of ``values`` with the continuous parameters set from a normalised vector."""
        if len(x) != len(self.continuous):
            raise ParamSpaceError(f"expected {len(self.continuous)} continuous values, got {len(x)}")
        out = dict(values)
        for p, xi in zip(self.continuous, x):
            out[p.name] = p.denormalize(float(xi))
        return out

    def categorical_indices(self, values: Mapping[str, float]) -> np.ndarray:
        """Option index of each categorical parameter, int64 (n_categorical,)."""
        return np.array([p.index_of(values[p.name]) for p in self.categorical], dtype=np.int64)

    # -- vector encoding ------------------------------------------------
    @functools.cached_property
    def vector_size(self) -> int:
        return len(self.continuous) + sum(p.size for p in self.categorical)

    @functools.cached_property
    def categorical_slices(self) -> dict[str, slice]:
        """Where each categorical's one-hot block sits in the vector."""
        out, start = {}, len(self.continuous)
        for p in self.categorical:
            out[p.name] = slice(start, start + p.size)
            start += p.size
        return out

    def encode(self, values: Mapping[str, float]) -> np.ndarray:
        """Raw values -> float32 vector: continuous in [0, 1] first, then one-hot blocks."""
        self.validate(values)
        vec = np.zeros(self.vector_size, dtype=np.float32)
        vec[: len(self.continuous)] = self.continuous_vector(values)
        for p in self.categorical:
            vec[self.categorical_slices[p.name].start + p.index_of(values[p.name])] = 1.0
        return vec

    def decode(self, vec: np.ndarray) -> dict[str, float]:
        """Vector -> raw values (arg-max per one-hot block); inverse of ``encode``."""
        vec = np.asarray(vec, dtype=np.float64)
        if vec.shape != (self.vector_size,):
            raise ParamSpaceError(f"expected a vector of shape ({self.vector_size},), got {vec.shape}")
        if not np.all(np.isfinite(vec)):
            raise ParamSpaceError("vector contains NaN or inf")
        out = self.with_continuous({}, vec[: len(self.continuous)])
        for p in self.categorical:
            out[p.name] = p.denormalize(int(np.argmax(vec[self.categorical_slices[p.name]])))
        return {n: out[n] for n in self.names}

    def canonical(self, values: Mapping[str, float]) -> dict[str, float]:
        """Copy where switched-off oscillators play the Init table: silent either way,
        and every multi-frame table costs Vital time to build when a preset loads."""
        out = dict(values)
        for k in range(1, N_OSCILLATORS + 1):
            if self[f"osc_{k}_on"].index_of(out[f"osc_{k}_on"]) == 0:
                out[f"osc_{k}_wavetable"] = self[f"osc_{k}_wavetable"].default
        return out

    # -- audibility -----------------------------------------------------
    def audible(self, values: Mapping[str, float]) -> set[str]:
        """Names of parameters whose change would change the sound for these values.

        A parameter is silent when one of its gates (a switch or a type
        whose option 0 is "off"/"None") is at option 0, or when it belongs to
        an envelope or LFO that drives nothing (every route from it is zero
        or goes into a switched-off module). A route's amount counts, zero
        included, when one of its destinations is on: raising it would be
        heard. Envelope 1 always shapes the amplitude.
        """
        def on(name: str) -> bool:
            return self[name].index_of(values[name]) != 0

        used_sources = {"env_1"}
        for p in self.routes:
            if abs(values[p.name]) > 1e-6 and any(self._destination_audible(d, values, on) for d in p.route.destinations):
                used_sources.add(p.route.source)
        out = set()
        for p in self.params:
            if not all(on(g) for g in p.gates):
                continue
            if p.group.startswith(("env_", "lfo_")) and p.group not in used_sources:
                continue
            if p.route is not None and not any(self._destination_audible(d, values, on) for d in p.route.destinations):
                continue
            out.add(p.name)
        return out

    def _destination_audible(self, dest: str, values: Mapping[str, float], on) -> bool:
        if dest.startswith("osc_"):
            return on(dest[:5] + "_on")
        if dest.startswith("filter_"):
            return on(dest[:8] + "_on")
        return True

    # -- identity -------------------------------------------------------
    @functools.cached_property
    def hash(self) -> str:
        """Version hash: changes whenever names, kinds, ranges, options or the wavetable bank change."""
        blob = json.dumps(
            {
                "params": [
                    [p.name, p.kind, p.control, round(p.min, 6), round(p.max, 6), list(p.options), list(p.option_values)]
                    for p in self.params
                ],
                "fixed": sorted(self.fixed.items()),
                "routes": [[r.name, r.source, list(r.destinations)] for r in ROUTES],
                "bank": _bank_fingerprint(),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _bank_fingerprint() -> list[str]:
    from .wavetables import bank_names, bank_wavetable

    return [bank_wavetable(n).fingerprint() for n in bank_names()]


# --------------------------------------------------------------------------
# Building the space from Vita
# --------------------------------------------------------------------------


def _resolve(row: Row, details) -> Param:
    """Read a row's range, scale, default and options from Vita."""
    from .wavetables import bank_names

    if row.name.endswith("_wavetable"):
        names = tuple(bank_names())
        return Param(row.name, "categorical", row.group, row.gates, None, 0, len(names) - 1, 0.0,
                     "Indexed", f"Oscillator {row.name[4]} Wavetable", "", names,
                     tuple(float(i) for i in range(len(names))))
    if row.name.endswith("_shape"):
        k = row.name.split("_")[1]
        return Param(row.name, "categorical", row.group, row.gates, None, 0, len(SHAPE_NAMES) - 1, 0.0,
                     "Indexed", f"LFO {k} Shape", "", SHAPE_NAMES,
                     tuple(float(i) for i in range(len(SHAPE_NAMES))))
    control = row.control or row.name
    d = details(control)
    route = next((r for r in ROUTES if r.name == row.name), None)
    options: tuple[str, ...] = ()
    values: tuple[float, ...] = ()
    if row.kind == "categorical":
        all_opts = list(d.options)
        if all_opts:
            # Vital sometimes declares a larger max than it has names for; only named options are usable.
            labelled = [(o, float(d.min) + i) for i, o in enumerate(all_opts) if d.min + i <= d.max]
        else:
            labelled = [(str(int(v)), float(v)) for v in range(int(d.min), int(d.max) + 1)]
        if row.choices:
            lookup = dict(labelled)
            missing = [c for c in row.choices if c not in lookup]
            if missing:
                raise ParamSpaceError(f"{control}: Vita has no option(s) {missing}; it has {list(lookup)}")
            labelled = [(c, lookup[c]) for c in row.choices]
        options = tuple(o for o, _ in labelled)
        values = tuple(v for _, v in labelled)
    display = route.label + " Amount" if route else d.display_name
    return Param(
        name=row.name, kind=row.kind, group=row.group, gates=row.gates,
        control=None if route else control,
        min=float(d.min), max=float(d.max), default=0.0 if route else float(d.default_value),
        scale=str(d.scale).split(".")[-1], display_name=display, units=d.display_units,
        options=options, option_values=values, route=route,
    )


def build_space(synth=None) -> ParamSpace:
    """Resolve the table against a Vita Synth (one is created if not given)."""
    import vita

    synth = synth or vita.Synth()
    params = [_resolve(r, synth.get_control_details) for r in _rows()]
    # Vital's Init has values (e.g. destination "EFFECTS" for the sample) that the choices keep; defaults must be options.
    fixed = {}
    for control, option in FIXED_OPTIONS.items():
        d = synth.get_control_details(control)
        fixed[control] = float(d.min) + list(d.options).index(option)
    return ParamSpace(tuple(params), fixed)


@functools.lru_cache(maxsize=1)
def default_space() -> ParamSpace:
    """The ParamSpace of this code version, resolved once per process."""
    return build_space()


def route_for(name: str) -> Route:
    for r in ROUTES:
        if r.name == name:
            return r
    raise ParamSpaceError(f"unknown modulation route {name!r}")


def describe(space: ParamSpace, names: Iterable[str] | None = None) -> list[str]:
    """One line per parameter (for `vital-inverse params` and debugging)."""
    rows = []
    for p in space.params:
        if names is not None and p.name not in names:
            continue
        rng = f"{len(p.options)} options" if p.kind == "categorical" else f"[{p.min:g}, {p.max:g}] {p.scale}"
        rows.append(f"{p.group:11s} {p.name:32s} {p.kind:11s} {rng}")
    return rows
