# SPDX-License-Identifier: GPL-3.0-or-later
"""Preset: ParamSpace values + wavetables + modulation routes + metadata, and
its round trip to Vital's ``.vital`` JSON.

A preset made by the system starts from Vital's Init JSON (read from Vita),
so everything outside the ParamSpace is Vital's default. A preset imported
from a ``.vital`` file keeps that file as its base and remembers the values
it read: on export only the parameters that changed since import are
written, so an untouched import exports to the same sound, with its custom
wavetables, hand-drawn LFOs and extra modulations intact.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import UserError
from .lfo_shapes import shape_index, shape_json
from .params import N_OSCILLATORS, ParamSpace, ParamSpaceError, default_space


class PresetError(UserError):
    """A .vital file or Preset cannot be read, written or loaded; the message says why."""


#: Largest .vital file read (checked before reading). Three full 257-frame custom
#: wavetables take ~8 MB, leaving room for ~30 s of sample; Vital's own presets are < 1 MB.
MAX_PRESET_BYTES = 16 * 1024 * 1024
#: Deepest nesting of JSON arrays/objects accepted (presets Vital saves nest 10-12).
MAX_DEPTH = 32
#: Most JSON values (object members and array items) accepted; a preset has ~5,000.
MAX_VALUES = 200_000
#: Longest sample (in samples) a preset's sample oscillator may hold: 10 min at 44.1 kHz.
MAX_SAMPLE_LENGTH = 600 * 44100
#: The component types Vital's wavetable editor makes (another type crashes Vita's loader).
WAVETABLE_COMPONENTS = frozenset({
    "Wave Source", "Line Source", "Audio File Source", "Shepard Tone Source", "Phase Shift",
    "Wave Window", "Frequency Filter", "Slew Limiter", "Wave Folder", "Wave Warp",
})


@dataclass(frozen=True)
class Preset:
    """A point in the ParamSpace that Vital can load.

    ``values`` are raw Vital values keyed by ParamSpace name (categoricals as
    the raw Vital value of their option; wavetables and LFO shapes as an
    index into the bank / shape list). ``custom_wavetables`` maps an
    oscillator (1-3) to a Vital wavetable dict (an extracted table) that
    plays instead of the bank table. An imported preset's own tables stay in
    ``base`` and play as long as the wavetable value is not changed.
    """

    values: Mapping[str, float]
    name: str = "Vital Inverse"
    author: str = "Vital Inverse"
    comments: str = ""
    custom_wavetables: Mapping[int, dict] = field(default_factory=dict)
    space_hash: str = ""
    base: dict | None = field(default=None, repr=False, compare=False)
    base_values: Mapping[str, float] | None = field(default=None, repr=False, compare=False)

    # -- construction -----------------------------------------------------
    @classmethod
    def init(cls, space: ParamSpace | None = None, **meta: Any) -> Preset:
        """Vital's Init preset expressed in the ParamSpace."""
        space = space or default_space()
        return cls(values=space.defaults(), space_hash=space.hash, **meta)

    @classmethod
    def from_values(cls, values: Mapping[str, float | str], space: ParamSpace | None = None, **meta: Any) -> Preset:
        """Build from raw values; categoricals may be given by option name ("Ladder").

        Unspecified parameters take Vital's Init value. Unknown names, unknown
        option names (a wavetable not in the bank, say) and out-of-range
        values raise PresetError.
        """
        space = space or default_space()
        vals = space.defaults()
        for name, v in values.items():
            try:
                p = space[name]
                if isinstance(v, str):
                    if v not in p.options:
                        raise ParamSpaceError(
                            f"{name}: unknown option {v!r}; choose one of: {', '.join(p.options[:12])}"
                            + (" ..." if len(p.options) > 12 else "")
                        )
                    v = p.option_values[p.options.index(v)]
                p.check(float(v))
            except ParamSpaceError as e:
                raise PresetError(str(e)) from None
            vals[name] = float(v)
        return cls(values=vals, space_hash=space.hash, **meta)

    def with_values(self, values: Mapping[str, float]) -> Preset:
        """Copy with some values replaced (base and custom tables kept)."""
        merged = dict(self.values)
        merged.update(values)
        return replace(self, values=merged)

    def with_meta(self, **meta: Any) -> Preset:
        return replace(self, **meta)

    def check_space(self, space: ParamSpace | None = None) -> None:
        """Refuse a preset made for another version of the ParamSpace."""
        space = space or default_space()
        if self.space_hash and self.space_hash != space.hash:
            raise PresetError(
                f"this preset was made for ParamSpace {self.space_hash}, but this code uses {space.hash}; "
                "re-create it with this version (import its .vital file again)"
            )
        try:
            space.validate(self.values)
        except ParamSpaceError as e:
            raise PresetError(f"preset {self.name!r}: {e}") from None

    def option(self, name: str, space: ParamSpace | None = None) -> str:
        """Label of a categorical value ("Ladder", "On", a wavetable name)."""
        p = (space or default_space())[name]
        return p.options[p.index_of(self.values[name])]

    def wavetable_name(self, osc: int, space: ParamSpace | None = None) -> str:
        """Name of the table oscillator ``osc`` plays (custom and imported tables by their own name)."""
        custom = self.custom_wavetables.get(osc)
        if custom is not None:
            return str(custom.get("name") or "Custom")
        if self.base is not None and self._unchanged(f"osc_{osc}_wavetable"):
            return str(self.base["settings"]["wavetables"][osc - 1].get("name") or "Custom")
        return self.option(f"osc_{osc}_wavetable", space)

    def has_bank_wavetable(self, osc: int) -> bool:
        """False when oscillator ``osc`` plays a custom (extracted or imported) table."""
        if osc in self.custom_wavetables:
            return False
        return not (self.base is not None and self._unchanged(f"osc_{osc}_wavetable"))

    # -- export -----------------------------------------------------------
    def to_vital_dict(self, space: ParamSpace | None = None) -> dict:
        """The .vital JSON object for this preset."""
        space = space or default_space()
        self.check_space(space)
        doc = copy.deepcopy(self.base) if self.base is not None else init_doc(space)
        st = doc["settings"]
        for p in space.params:
            if self._unchanged(p.name):
                continue
            raw = float(self.values[p.name])
            if p.control is not None:
                st[p.control] = raw
            elif p.name.endswith("_wavetable"):
                st["wavetables"][int(p.name[4]) - 1] = _bank_json(p.options[p.index_of(raw)])
            elif p.name.endswith("_shape"):
                st["lfos"][int(p.name[4]) - 1] = shape_json(p.options[p.index_of(raw)])
        for osc, table in self.custom_wavetables.items():
            st["wavetables"][osc - 1] = copy.deepcopy(table)
        for p in space.routes:
            if not self._unchanged(p.name):
                _write_route(st, p.route.source, p.route.destinations, float(self.values[p.name]))
        doc["preset_name"] = self.name
        doc["author"] = self.author
        doc["comments"] = self.comments
        return doc

    def to_vital_json(self, space: ParamSpace | None = None) -> str:
        return json.dumps(self.to_vital_dict(space))

    def save(self, path: str | Path, space: ParamSpace | None = None) -> Path:
        """Write a .vital file (atomically, so a crash never leaves half a preset)."""
        path = Path(path)
        if path.suffix != ".vital":
            path = path.with_suffix(".vital")
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_text(self.to_vital_json(space))
            tmp.replace(path)
        except OSError as e:
            raise PresetError(f"cannot write {path}: {e.strerror or e}") from None
        return path

    # -- helpers ----------------------------------------------------------
    def _unchanged(self, name: str) -> bool:
        """True if an imported preset still has the value it was read with."""
        if self.base_values is None:
            return False
        return name in self.base_values and self.values.get(name) == self.base_values[name]


def with_custom_wavetable(preset: Preset, osc: int, table) -> Preset:
    """Make oscillator ``osc`` play ``table`` (a Wavetable or a Vital wavetable dict)."""
    if osc not in range(1, N_OSCILLATORS + 1):
        raise PresetError(f"oscillator must be 1-{N_OSCILLATORS}, got {osc}")
    data = table.to_vital() if hasattr(table, "to_vital") else dict(table)
    tables = dict(preset.custom_wavetables)
    tables[osc] = data
    return replace(preset, custom_wavetables=tables)


# --------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------


def load_vital(path: str | Path, space: ParamSpace | None = None) -> Preset:
    """Read a .vital file into a Preset; PresetError names what is wrong."""
    path = Path(path)
    if not path.exists():
        raise PresetError(f"{path}: no such file")
    if path.is_dir():
        raise PresetError(f"{path} is a folder, not a .vital file")
    try:
        size = path.stat().st_size
        if size > MAX_PRESET_BYTES:
            raise PresetError(f"{path.name} is {size / 2**20:.0f} MB; a .vital preset is at most "
                              f"{MAX_PRESET_BYTES // 2**20} MB (Vital's own are under 1 MB): is it really a preset?")
        raw = path.read_bytes()
    except OSError as e:
        raise PresetError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PresetError(f"{path.name} is not a .vital preset (it is binary, not JSON text)") from None
    return parse_vital(text, name=path.stem, space=space)


def parse_vital(text: str, name: str = "preset", space: ParamSpace | None = None) -> Preset:
    """Parse .vital JSON text into a Preset (see ``load_vital``)."""
    space = space or default_space()
    text = text[1:] if text.startswith("\ufeff") else text  # a byte-order mark some editors add
    if len(text) > MAX_PRESET_BYTES:
        raise PresetError(f"{name}: {len(text) / 2**20:.0f} MB of text; a .vital preset is at most "
                          f"{MAX_PRESET_BYTES // 2**20} MB (Vital's own are under 1 MB)")
    if not text.strip():
        raise PresetError(f"{name}: the file is empty; a .vital preset is a JSON document")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        hint = " (the file looks truncated)" if e.pos >= len(text.rstrip()) - 1 else ""
        raise PresetError(f"{name}: not valid .vital JSON at line {e.lineno}, column {e.colno}: {e.msg}{hint}") from None
    except RecursionError:
        raise PresetError(f"{name}: not a .vital preset: its JSON nests hundreds of levels deep "
                          f"(a preset nests about 10)") from None
    return from_vital_dict(doc, name=name, space=space)


def from_vital_dict(doc: Any, name: str = "preset", space: ParamSpace | None = None) -> Preset:
    """Read the values of the ParamSpace out of a parsed .vital document."""
    space = space or default_space()
    if not isinstance(doc, dict):
        raise PresetError(f"{name}: a .vital preset is a JSON object, this is a {type(doc).__name__}")
    st = doc.get("settings")
    if not isinstance(st, dict):
        raise PresetError(f"{name}: missing the 'settings' object every .vital preset has")
    slots, n_lfos = _vital_counts()
    mods = st.get("modulations", [])
    if isinstance(mods, list) and len(mods) > slots:
        raise PresetError(f"{name}: 'settings.modulations' has {len(mods):,} entries; Vital has {slots} modulation slots")
    lfos = st.get("lfos", [])
    if isinstance(lfos, list) and len(lfos) > n_lfos:
        raise PresetError(f"{name}: 'settings.lfos' has {len(lfos)} shapes; Vital has {n_lfos} LFOs")
    _check_depth(doc, name)
    tables = st.get("wavetables")
    if not isinstance(tables, list) or len(tables) != N_OSCILLATORS or not all(isinstance(t, dict) for t in tables):
        raise PresetError(f"{name}: 'settings.wavetables' must list {N_OSCILLATORS} wavetables, one per oscillator")
    _check_version(doc, name)
    if not isinstance(mods, list) or not all(isinstance(m, dict) for m in mods):
        raise PresetError(f"{name}: 'settings.modulations' must be a list of {{source, destination}} objects")
    if not isinstance(lfos, list) or not all(isinstance(x, dict) for x in lfos):
        raise PresetError(f"{name}: 'settings.lfos' must be a list of LFO shapes")
    _check_sample(st, name)
    for i, table in enumerate(tables, 1):
        _check_wavetable(table, i, name)
    for key, v in st.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise PresetError(f"{name}: {key} is {v}; every control of a .vital preset is a finite number")

    values: dict[str, float] = {}
    for p in space.params:
        if p.control is not None:
            v = st.get(p.control, p.default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise PresetError(f"{name}: {p.control} must be a number, found {v!r}")
            v = float(v)
            if p.kind == "categorical":
                if not (p.min - 1e-6 <= v <= p.max + 1e-6):
                    raise PresetError(f"{name}: {p.control} = {v:g} is outside Vital's range [{p.min:g}, {p.max:g}]")
                v = p.option_values[p.index_of(v)]
            else:
                try:
                    p.check(v)
                except ParamSpaceError as e:
                    raise PresetError(f"{name}: {e}") from None
            values[p.name] = v
        elif p.name.endswith("_wavetable"):
            values[p.name] = float(_bank_index_for(tables[int(p.name[4]) - 1], p.options))
        elif p.name.endswith("_shape"):
            k = int(p.name[4])
            values[p.name] = float(shape_index(lfos[k - 1])) if k <= len(lfos) and isinstance(lfos[k - 1], dict) else 0.0
        elif p.route is not None:
            values[p.name] = _read_route(st, mods, p.route.source, p.route.destinations[0])
    return Preset(
        values=values,
        name=str(doc.get("preset_name") or name),
        author=str(doc.get("author") or ""),
        comments=str(doc.get("comments") or ""),
        space_hash=space.hash,
        base=doc,
        base_values=dict(values),
    )


# --------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------


def _check_depth(doc: Any, name: str) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH (walked without recursion: deep input cannot overflow the stack)."""
    stack, seen = [(doc, 1)], 0
    while stack:
        node, depth = stack.pop()
        seen += len(node)
        if depth > MAX_DEPTH:
            raise PresetError(f"{name}: not a .vital preset: its JSON nests more than {MAX_DEPTH} levels deep "
                              "(a preset nests about 10)")
        if seen > MAX_VALUES:
            raise PresetError(f"{name}: not a .vital preset: it holds more than {MAX_VALUES:,} JSON values "
                              "(a preset holds a few thousand)")
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))


def _check_version(doc: dict, name: str) -> None:
    v = doc.get("synth_version")
    if v is None:
        raise PresetError(f"{name}: missing 'synth_version' (the Vital version that saved it, e.g. \"1.5.3\"); "
                          "every preset Vital saves has it: open and save it in Vital again, or add it")
    if not isinstance(v, str) or not v.split(".")[0].strip().isdigit():
        raise PresetError(f"{name}: 'synth_version' is {v!r}; expected a Vital version such as \"1.5.3\"")


def _check_sample(st: dict, name: str) -> None:
    """The sample oscillator's audio: Vita refuses a preset without it and crashes on a negative length."""
    sample = st.get("sample")
    if sample is None:
        raise PresetError(f"{name}: missing 'settings.sample' (the sample oscillator's audio, which every preset "
                          "Vital saves has, even when unused): open and save it in Vital again")
    if not isinstance(sample, dict) or not isinstance(sample.get("samples"), str):
        raise PresetError(f"{name}: 'settings.sample' must be an object holding the sample's audio ('samples')")
    length = sample.get("length", 0)
    if isinstance(length, bool) or not isinstance(length, (int, float)) or not 0 <= length <= MAX_SAMPLE_LENGTH:
        raise PresetError(f"{name}: 'settings.sample.length' is {length!r}; expected 0 to {MAX_SAMPLE_LENGTH} samples")


def _check_wavetable(table: dict, osc: int, name: str) -> None:
    """Groups, component types and keyframes as Vital's editor makes them (other shapes crash Vita)."""
    from .wavetables import FRAME_SIZE, MAX_FRAMES, MAX_POSITION

    where = f"{name}: wavetable {osc}"
    groups = table.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise PresetError(f"{where}: 'groups' must be a list of objects")
    for g in groups:
        comps = g.get("components", [])
        if not isinstance(comps, list) or not all(isinstance(c, dict) for c in comps):
            raise PresetError(f"{where}: 'components' must be a list of objects")
        for c in comps:
            kind = c.get("type")
            if kind not in WAVETABLE_COMPONENTS:
                raise PresetError(f"{where}: unknown component type {str(kind)[:40]!r}; Vital's are "
                                  + ", ".join(sorted(WAVETABLE_COMPONENTS)))
            frames = c.get("keyframes", [])
            if not isinstance(frames, list) or not all(isinstance(k, dict) for k in frames):
                raise PresetError(f"{where}: 'keyframes' must be a list of objects")
            if len(frames) > MAX_FRAMES:
                raise PresetError(f"{where} has {len(frames)} keyframes; a Vital wavetable holds at most {MAX_FRAMES}")
            for k in frames:
                pos = k.get("position", 0)
                if isinstance(pos, bool) or not isinstance(pos, (int, float)) or not 0 <= pos <= MAX_POSITION:
                    raise PresetError(f"{where}: keyframe position {pos!r} is outside 0-{MAX_POSITION}")
                wave = k.get("wave_data")
                if wave is not None and (not isinstance(wave, str) or len(wave.rstrip("=")) != math.ceil(16 * FRAME_SIZE / 3)):
                    raise PresetError(f"{where}: a keyframe's wave_data is not one {FRAME_SIZE}-sample frame "
                                      "(the file is damaged)")


@functools.lru_cache(maxsize=1)
def _vital_counts() -> tuple[int, int]:
    """(modulation slots, LFOs) of Vital, read from Vita's Init preset (more of either crashes Vita)."""
    st = json.loads(init_json())["settings"]
    return len(st["modulations"]), len(st["lfos"])


@functools.lru_cache(maxsize=1)
def init_json() -> str:
    """Vital's Init preset JSON as Vita writes it (building a Synth is slow: once per process)."""
    import vita

    synth = vita.Synth()
    synth.load_init_preset()
    return synth.to_json()


def init_doc(space: ParamSpace) -> dict:
    """A fresh Init document with the ParamSpace's fixed options applied."""
    doc = json.loads(init_json())
    doc["settings"].update(space.fixed)
    return doc


@functools.lru_cache(maxsize=128)
def _bank_json_text(name: str) -> str:
    from .wavetables import bank_wavetable

    return json.dumps(bank_wavetable(name).to_vital())


def _bank_json(name: str) -> dict:
    return json.loads(_bank_json_text(name))


def _bank_index_for(table: dict, options: tuple[str, ...]) -> int:
    """Bank option that best stands for an imported wavetable."""
    from .wavetables import Wavetable, WavetableError, nearest_bank_name

    if table.get("name") == "Init" and "Init Saw" in options:
        return options.index("Init Saw")
    try:
        return options.index(nearest_bank_name(Wavetable.from_vital(table)))
    except (WavetableError, KeyError, TypeError, ValueError):
        return 0


def _read_route(st: dict, mods: list[dict], source: str, destination: str) -> float:
    for i, m in enumerate(mods):
        if m.get("source") == source and m.get("destination") == destination:
            v = st.get(f"modulation_{i + 1}_amount", 0.0)
            return float(v) if isinstance(v, (int, float)) else 0.0
    return 0.0


def _write_route(st: dict, source: str, destinations: tuple[str, ...], amount: float) -> None:
    """Set a route's amount, connecting it in a free slot if it is not there yet."""
    mods = st["modulations"]
    for dest in destinations:
        slot = next((i for i, m in enumerate(mods) if m.get("source") == source and m.get("destination") == dest), None)
        if slot is None:
            if amount == 0.0:
                continue
            slot = next((i for i, m in enumerate(mods) if not m.get("source") and not m.get("destination")), None)
            if slot is None:
                raise PresetError(f"no free modulation slot for {source} -> {dest}: all {len(mods)} are used")
            mods[slot] = {"source": source, "destination": dest}
            for key, default in (("bipolar", 0.0), ("bypass", 0.0), ("power", 0.0), ("stereo", 0.0)):
                st[f"modulation_{slot + 1}_{key}"] = default
        st[f"modulation_{slot + 1}_amount"] = amount
