# SPDX-License-Identifier: GPL-3.0-or-later
"""The Vital display report: what Vital's UI shows for a preset, module by module.

``build_report(preset)`` loads the preset into a Synth and reads every
setting's name and value text from Vita (``get_control_details`` /
``get_control_text``), so values are Vital's own display text with units.
Modules that are off and settings that cannot change the sound are left
out. The tutorial writers (``offline``, ``llm``) and the app's settings
table (``parameter_table``) all read this one report.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import librosa
import numpy as np

from ..lfo_shapes import SHAPE_NAMES
from ..params import EFFECT_SWITCH, EFFECTS, Param, ParamSpace, default_space
from ..preset import Preset

#: columns of ``parameter_table``'s rows
TABLE_COLUMNS = ("Module", "Setting", "Value", "Note")

_INIT_TABLE = "Init Saw"  # the bank table that is Vital's default saw
_SEMITONE_FREQUENCY_MIN_MAX = 100.0  # "semitones" controls whose range reaches this are note-like frequencies


@dataclass(frozen=True)
class Item:
    """One setting as Vital shows it.

    ``name`` is the ParamSpace parameter (or the Vital control, for settings
    outside the ParamSpace such as LFO sync); ``text_value`` is Vital's own
    display text, exactly as Vita formats it; ``changed`` says whether it
    differs from Vital's Init preset; ``hint`` is a friendly reading
    ("≈ 1.2 kHz"); ``how_to`` says how to do it in Vital when that is not
    just turning a knob.
    """

    name: str
    display_name: str
    text_value: str
    control: str | None
    raw: float | None = None
    changed: bool = True
    hint: str = ""
    how_to: str = ""


@dataclass(frozen=True)
class Section:
    """One module of Vital (an oscillator, a filter, an effect...) that is on."""

    key: str  # ParamSpace group ("osc_1", "filter_2", "reverb") or "modulation"
    title: str  # Vital's name for the module ("Oscillator 1", "Reverb")
    kind: Literal["oscillator", "sample", "filter", "envelope", "lfo", "modulation", "effect"]
    items: list[Item]
    switch: str | None = None  # name of the module's on/off item, if it has one

    @property
    def turned_on(self) -> bool:
        """True when the module is off in Init and has to be switched on."""
        return any(i.name == self.switch and i.changed for i in self.items)


@dataclass(frozen=True)
class Report:
    """What Vital shows for a preset, module by module."""

    sections: list[Section]
    preset_name: str = ""
    switched_off: list[str] = field(default_factory=list)  # modules on in Init that this preset turns off

    def item(self, name: str) -> Item | None:
        for s in self.sections:
            for i in s.items:
                if i.name == name:
                    return i
        return None

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)

    def of_kind(self, kind: str) -> list[Section]:
        return [s for s in self.sections if s.kind == kind]


_SECTION_ORDER = ("osc", "sample", "filter", "env", "lfo", "modulation")  # then effects, in table order
_KINDS = {"osc": "oscillator", "sample": "sample", "filter": "filter", "env": "envelope", "lfo": "lfo"}
_SYNCED = ("lfo_1", "lfo_2", "chorus", "delay", "phaser", "flanger")  # modules with a Sync / Tempo pair


@dataclass(frozen=True)
class _Connection:
    slot: int  # 1-based modulation slot
    source: str
    destination: str
    amount: float


def build_report(preset: Preset, space: ParamSpace | None = None, renderer=None) -> Report:
    """Load ``preset`` into this thread's Synth and read what Vital shows for it."""
    from ..synth import thread_renderer

    space = space or default_space()
    renderer = renderer or thread_renderer()
    renderer.load(preset)
    synth = renderer.synth
    doc = preset.to_vital_dict(space)
    st = doc["settings"]
    values = preset.values
    audible = space.audible(values)

    def is_on(name: str) -> bool:
        return space[name].index_of(values[name]) != 0

    connections = _connections(st)
    used = _used_sources(connections, st)
    groups = space.groups()

    sections: list[Section] = []
    switched_off: list[str] = []
    for key in _ordered_groups(groups):
        if key == "modulation":
            mod = _modulation_section(space, synth, connections, used, st)
            if mod is not None:
                sections.append(mod)
            continue
        params = groups[key]
        title = _title(params)
        switch = _switch_of(key, params)
        if switch is not None and not is_on(switch):
            if space[switch].index_of(space[switch].default) != 0:
                switched_off.append(title)
            continue
        if key.startswith(("env_", "lfo_")) and key not in used:
            continue
        items: list[Item] = []
        for p in params:
            if p.name not in audible and not (key in used and all(is_on(g) for g in p.gates)):
                continue
            if key in _SYNCED and p.name == f"{key}_frequency":  # Vital shows Sync (and Tempo) by the rate knob
                items.extend(_sync_items(key, synth, st))
            items.append(_param_item(p, preset, space, synth, st))
        if key == "sample" and items:
            items.insert(1, _sample_item(st, doc))
        if any(i.name == f"{key}_sync" for i in items):
            items = _mark_unused_frequency(key, items)
        if items:
            kind = _KINDS.get(key.split("_")[0], "effect")
            sections.append(Section(key, title, kind, items, switch))  # type: ignore[arg-type]
    return Report(sections=sections, preset_name=preset.name, switched_off=switched_off)


def _ordered_groups(groups: Mapping[str, list[Param]]) -> list[str]:
    keys = list(groups)
    if "modulation" not in keys:
        keys.append("modulation")
    first = [k for prefix in _SECTION_ORDER for k in keys if k.split("_")[0] == prefix or k == prefix]
    return first + [k for k in keys if k not in first]


def _title(params: list[Param]) -> str:
    """Vital's module name: the words every display name of the module starts with."""
    names = [p.display_name.split() for p in params if p.route is None]
    if not names:
        return "Modulation"
    common: list[str] = []
    for words in zip(*names):
        if len(set(words)) != 1:
            break
        common.append(words[0])
    if len(names) == 1 and common and common[-1] == "Switch":
        common = common[:-1]
    return " ".join(common) or names[0][0]


def _switch_of(key: str, params: list[Param]) -> str | None:
    for name in (f"{key}_on", EFFECT_SWITCH.get(key, "")):
        if any(p.name == name for p in params):
            return name
    return None


def _close(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))


def _param_item(p: Param, preset: Preset, space: ParamSpace, synth, st: Mapping) -> Item:
    raw = float(preset.values[p.name])
    if p.name.endswith("_wavetable"):
        return _wavetable_item(p, preset, space, raw)
    if p.name.endswith("_shape"):
        return _shape_item(p, preset, space, raw)
    assert p.control is not None
    text = _control_text(synth, p.control)
    how = ""
    m = re.match(r"^env_(\d+)_(attack|decay|release)_power$", p.name)
    if m:
        how = (f"Vital has no knob for the curve: drag the middle of the {m.group(2)} segment in the "
               f"ENV {m.group(1)} graph up or down until it reads `{text}`.")
    return Item(
        name=p.name,
        display_name=p.display_name,
        text_value=text,
        control=p.control,
        raw=raw,
        changed=not _close(raw, p.default),
        hint=_hint(p, raw, text),
        how_to=how,
    )


def _hint(p: Param, raw: float, text: str) -> str:
    units = p.units.strip()
    if units == "semitones" and p.max >= _SEMITONE_FREQUENCY_MIN_MAX:
        return "≈ " + format_hz(float(librosa.midi_to_hz(raw)))
    if units == "secs" and p.group.startswith("env_"):
        seconds = number_in(text)
        if seconds is not None and seconds < 1.0:
            return f"≈ {format_ms(seconds)}"
    return ""


def _wavetable_item(p: Param, preset: Preset, space: ParamSpace, raw: float) -> Item:
    k = int(p.name[4])
    name = preset.wavetable_name(k, space)
    where = f"Oscillator {k}'s wavetable display"
    custom = preset.custom_wavetables.get(k)
    if custom is not None:
        sweep = "" if k != 1 or abs(float(preset.values.get("mod_lfo1_osc1_frame", 0.0))) < 1e-6 else (
            "Its frames follow the clip from start to end, and LFO 1 (Sync Type `Envelope`: it runs once "
            "per note) moves Wave Frame through them, so each moment of the note plays the cycle taken at "
            "that moment of the clip. ")
        is_init, how = False, (
            f"`{name}` was taken from your clip, one single cycle per frame; it is not one of Vital's tables. "
            f"{sweep}The downloaded preset carries the table itself: open that preset in Vital and the table "
            f"is there (the pencil button under {where} opens Vital's wavetable editor, which shows its "
            f"frames); right-click {where} and choose Save to Wavetables to keep it "
            f"(or Copy, then Paste it onto an oscillator of another patch). To build a similar table yourself, "
            f"drag a short, steady recording of the note onto {where} and drop it on PITCH SPLICE: Vital "
            f"finds the pitch and cuts single cycles out of the audio (drop it on VOCODE instead for breathy "
            f"or noisy sounds); the pencil button under the display opens the wavetable editor to tidy the frames."
        )
    elif not preset.has_bank_wavetable(k):
        base = preset.base["settings"]["wavetables"][k - 1] if preset.base is not None else None
        is_init = base is not None and _is_init_table(base)
        renamed = " (it is still named `Init`, but it was redrawn)" if name == "Init" and not is_init else ""
        how = "" if is_init else (
            f"This is the preset's own table{renamed}: open the original preset in Vital, right-click "
            f"{where} and choose Copy (or Save to Wavetables), then Paste it onto your oscillator; the pencil "
            f"button under the display opens the wavetable editor, where you can see how it is built."
        )
    else:
        is_init = name == _INIT_TABLE
        how = "" if is_init else (
            f"`{name}` comes from Vital Inverse's own wavetable bank, not from Vital's factory tables. It is "
            f"stored in the downloaded preset: open that preset in Vital, right-click {where} and choose Save "
            f"to Wavetables (or Copy, then Paste it onto your oscillator)."
        )
    hint = "Vital's default saw, already loaded in Init" if is_init else ""
    return Item(p.name, p.display_name, name, None, raw, changed=not is_init, hint=hint, how_to=how)


def _is_init_table(table: dict) -> bool:
    from ..wavetables import Wavetable, WavetableError, bank_wavetable

    try:
        frames = Wavetable.from_vital(table).frames
    except (WavetableError, KeyError, TypeError, ValueError):
        return False
    init = bank_wavetable(_INIT_TABLE).frames
    return frames.shape == init.shape and bool(np.allclose(frames, init, atol=1e-3))


def _shape_item(p: Param, preset: Preset, space: ParamSpace, raw: float) -> Item:
    k = int(p.name[4])
    name = preset.option(p.name, space)
    base_values = preset.base_values
    if preset.base is not None and base_values is not None and base_values.get(p.name) == raw:
        lfos = preset.base["settings"].get("lfos") or []
        if k <= len(lfos) and isinstance(lfos[k - 1], dict) and lfos[k - 1].get("name"):
            name = str(lfos[k - 1]["name"])
    changed = name != SHAPE_NAMES[0]
    how = (
        f"Shape LFO {k} as `{name}` in its graph: drag the points, double-click to add one."
        if changed else ""
    )
    return Item(p.name, p.display_name, name, None, raw, changed=changed, how_to=how)


def _sync_items(key: str, synth, st: Mapping) -> list[Item]:
    """The Sync mode of an LFO or timed effect, and its Tempo when it is tempo-synced."""
    out = []
    sync = f"{key}_sync"
    d = synth.get_control_details(sync)
    text = synth.get_control_text(sync)
    raw = float(st.get(sync, d.default_value))
    out.append(Item(sync, d.display_name, text, sync, raw, changed=not _close(raw, d.default_value)))
    mode = f"{key}_sync_type"
    if key.startswith("lfo_") and mode in st:  # Trigger / Envelope (one-shot) / ...: shown when not the default
        dm = synth.get_control_details(mode)
        mraw = float(st[mode])
        if not _close(mraw, dm.default_value):
            out.append(Item(mode, dm.display_name, synth.get_control_text(mode), mode, mraw, changed=True))
    if text.startswith("Tempo"):
        tempo = f"{key}_tempo"
        dt = synth.get_control_details(tempo)
        traw = float(st.get(tempo, dt.default_value))
        out.append(Item(tempo, dt.display_name, _control_text(synth, tempo), tempo, traw,
                        changed=not _close(traw, dt.default_value)))
    return out


def _mark_unused_frequency(key: str, items: list[Item]) -> list[Item]:
    sync = next(i for i in items if i.name == f"{key}_sync")
    if sync.text_value == "Seconds":
        return items
    out = []
    for i in items:
        if i.name == f"{key}_frequency":
            i = Item(i.name, i.display_name, i.text_value, i.control, i.raw, i.changed,
                     hint=f"used only when {sync.display_name} is Seconds")
        out.append(i)
    return out


def _sample_item(st: Mapping, doc: Mapping) -> Item:
    from ..preset import init_json  # Vital's Init document, built once per process by preset.py

    name = str((st.get("sample") or {}).get("name") or "Sample")
    init_name = str((json.loads(init_json())["settings"].get("sample") or {}).get("name") or "")
    changed = name != init_name
    how = (
        "This is the preset's own sample: drag an audio file onto the SAMPLE section to load a similar one."
        if changed else ""
    )
    return Item("sample_name", "Sample", name, None, None, changed=changed, how_to=how)


# -- modulation ---------------------------------------------------------


def _connections(st: Mapping) -> list[_Connection]:
    out = []
    for i, m in enumerate(st.get("modulations") or []):
        if not isinstance(m, dict) or not m.get("source") or not m.get("destination"):
            continue
        amount = st.get(f"modulation_{i + 1}_amount", 0.0)
        if not isinstance(amount, (int, float)) or amount == 0.0:
            continue
        out.append(_Connection(i + 1, str(m["source"]), str(m["destination"]), float(amount)))
    return out


def _module_of(control: str) -> str:
    m = re.match(r"^(osc_\d+|filter_\d+|env_\d+|lfo_\d+|random_\d+|filter_fx|sample)_", control)
    if m:
        return m.group(1)
    head = control.split("_")[0]
    return head if head in EFFECTS else ""


def _destination_on(destination: str, used: set[str], st: Mapping) -> bool:
    module = _module_of(destination)
    if module.startswith(("env_", "lfo_", "random_")):
        return module in used
    switch = EFFECT_SWITCH.get(module, f"{module}_on") if module else ""
    if switch and switch in st:
        return float(st[switch]) != 0.0
    return True


def _used_sources(connections: list[_Connection], st: Mapping) -> set[str]:
    """Modulation sources that reach the sound (Envelope 1 always does: it is the amplitude)."""
    used = {"env_1"}
    while True:
        more = {c.source for c in connections if _destination_on(c.destination, used, st)} - used
        if not more:
            return used
        used |= more


def _source_names(source: str) -> tuple[str, str]:
    """(readable name, label of its modulation button in Vital) for a modulation source."""
    m = re.match(r"^(env|lfo|random|macro_control)_(\d+)$", source)
    if m:
        kind, n = m.groups()
        name = {"env": "Envelope", "lfo": "LFO", "random": "Random", "macro_control": "Macro"}[kind]
        button = {"env": "ENV", "lfo": "LFO", "random": "RANDOM", "macro_control": "MACRO"}[kind]
        return f"{name} {n}", f"{button} {n}"
    words = source.replace("_", " ")
    return words.title(), words.upper()


def _modulation_section(space: ParamSpace, synth, connections: list[_Connection], used: set[str],
                        st: Mapping) -> Section | None:
    items: list[Item] = []
    done: set[int] = set()
    for p in space.routes:
        route = p.route
        assert route is not None
        hits = [c for c in connections if c.source == route.source and c.destination in route.destinations]
        done.update(c.slot for c in hits)
        live = [c for c in hits if _destination_on(c.destination, used, st)]
        if route.source not in used or not live:
            continue
        c = live[0]
        control = f"modulation_{c.slot}_amount"
        text = _control_text(synth, control)
        _, button = _source_names(route.source)
        if len(route.destinations) > 1:
            knob = "the " + _details_name(synth, c.destination).split()[-1] + " knob of each oscillator that is on"
        else:
            knob = f"the {_details_name(synth, c.destination)} knob"
        items.append(Item(p.name, route.label, text, control, c.amount, changed=True,
                          hint=f"{c.amount * 100:.0f}%", how_to=_drag_how_to(button, knob, text, c.destination)))
    for c in connections:  # connections outside the ParamSpace's routes (imported presets)
        if c.slot in done or not _destination_on(c.destination, used, st):
            continue
        control = f"modulation_{c.slot}_amount"
        text = _control_text(synth, control)
        name, button = _source_names(c.source)
        dest = _details_name(synth, c.destination)
        how = _drag_how_to(button, f"the {dest} knob", text, c.destination)
        if not any(p.group == c.source for p in space.params) and c.source.startswith(("env_", "lfo_", "random_")):
            how += f" {name}'s own settings are not covered by this report: see them in the original preset."
        items.append(Item(f"{c.source}->{c.destination}", f"{name} -> {dest}", text, control, c.amount,
                          changed=True, hint=f"{c.amount * 100:.0f}%", how_to=how))
    if not items:
        return None
    return Section("modulation", "Modulation", "modulation", items)


def _details_name(synth, control: str) -> str:
    try:
        return synth.get_control_details(control).display_name
    except RuntimeError:
        return control.replace("_", " ").title()


def _drag_how_to(button: str, knob: str, text: str, destination: str) -> str:
    if destination == "voice_tune":
        return (f"In the MATRIX tab, pick {button} as the source and Voice Tune (the pitch of every "
                f"oscillator) as the destination in a free row, and set the amount to `{text}`.")
    return (f"Drag the {button} modulation source onto {knob}, then set the amount to `{text}` "
            f"(drag the ring around the knob, or edit the row in the MATRIX tab).")


# -- text ---------------------------------------------------------------


def _item_line(i: Item) -> str:
    extra = [x for x in (i.hint, "as in Init" if not i.changed else "") if x]
    line = f"**{i.display_name}:** `{i.text_value}`"
    if extra:
        line += f" ({'; '.join(extra)})"
    return line


def report_text(report: Report) -> str:
    """The report as plain Markdown: one heading per module, one line per setting."""
    out: list[str] = []
    for s in report.sections:
        out.append(f"### {s.title}")
        for i in s.items:
            out.append(f"- {_item_line(i)}")
            if i.how_to and i.changed:
                out.append(f"  - How: {i.how_to}")
        out.append("")
    if not report.sections:
        out.append("(nothing is switched on)")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------
# Offline writer
# --------------------------------------------------------------------------

def format_hz(hz: float) -> str:
    """A frequency as a knob reads it: "1.2 kHz", "440 Hz", "2.5 Hz"."""
    if hz >= 1000.0:
        return f"{hz / 1000.0:.1f} kHz"
    return f"{hz:.0f} Hz" if hz >= 10.0 else f"{hz:.1f} Hz"


def tidy_value_text(text: str) -> str:
    """Vita's value text with 4 significant digits and no trailing zeros, as a knob reads.

    Vita prints ``%f`` ("0.000500 secs", "-12.000000"); the tutorial and the
    parameter table show "0.0005 secs" and "-12". Text that does not start
    with a number ("Seconds", "Extracted") is returned as it is.
    """
    m = re.match(r"^(-?\d+\.\d+)(.*)$", text, flags=re.DOTALL)
    if not m:
        return text
    v = float(m.group(1))
    if v == 0.0:
        return "0" + m.group(2)
    decimals = max(0, 3 - math.floor(math.log10(abs(v))))
    number = f"{v:.{decimals}f}"
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number + m.group(2)


def _control_text(synth, control: str) -> str:
    return tidy_value_text(synth.get_control_text(control))


def number_in(text: str | None) -> float | None:
    """The first number in a display text ("0.25 secs" -> 0.25), or None."""
    if text is None:
        return None
    m = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(m.group(0)) if m else None


def format_ms(seconds: float) -> str:
    """A duration in seconds as "12 ms", "3.5 ms" or "1.20 s"."""
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    ms = seconds * 1000.0
    return f"{ms:.0f} ms" if ms >= 10.0 or ms == 0.0 else f"{ms:.1f} ms"


# -- the settings table -------------------------------------------------

_KIND_ORDER = ("oscillator", "sample", "filter", "envelope", "lfo", "effect", "modulation")


def table_rows(report: Report, locked: frozenset[str] | set[str] = frozenset()) -> list[list[str]]:
    """The report as rows of ``TABLE_COLUMNS`` (module, setting, value, note), one per setting.

    Order: oscillators (and sample), filters, envelopes, LFOs, effects, then
    modulation. ``locked``: parameter names refinement kept as they were;
    their note says so.
    """
    sections = sorted(report.sections, key=lambda s: _KIND_ORDER.index(s.kind))
    rows: list[list[str]] = []
    for s in sections:
        for i in s.items:
            setting = i.display_name
            if s.kind != "modulation" and setting.startswith(s.title + " ") and len(setting) > len(s.title) + 1:
                setting = setting[len(s.title) + 1:]
            note = "; ".join(x for x in ("locked" if i.name in locked else "", i.hint,
                                         "as in Init" if not i.changed else "") if x)
            rows.append([s.title, setting, i.text_value, note])
    return rows


def parameter_table(preset: Preset, renderer=None, locked: frozenset[str] | set[str] = frozenset()) -> list[list[str]]:
    """The settings table of ``preset``: ``table_rows`` of its report.

    ``renderer``: a ``synth.Renderer`` to load the preset into (default: this
    thread's own; a Synth is not thread-safe, so a shared one needs a lock).
    """
    return table_rows(build_report(preset, renderer=renderer), locked)
