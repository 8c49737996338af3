# SPDX-License-Identifier: GPL-3.0-or-later
"""Tutorial writer: from a Preset to step-by-step instructions for Vital.

Three layers:

- ``build_report(preset)``: what Vital's UI shows for this preset, module by
  module, in the order a sound designer works (oscillators, sample,
  filters, envelopes, LFOs, modulation, effects). Names, values and units
  are read from Vita (``get_control_details`` / ``get_control_text``) after
  loading the preset into this thread's Synth, so every value is Vital's own
  display text. Switched-off modules and parameters that cannot change the
  sound are left out.
- ``offline_tutorial(preset, note, pitched)``: Markdown written from the
  report alone, deterministically: the sound's character, numbered steps
  from Vital's Init preset (only what differs from Init), variations, and
  the full settings list.
- ``stream_tutorial(...)``: the same tutorial written by Claude through the
  Anthropic API, streamed; any API failure falls back to the offline
  tutorial with a one-line notice. The prompt holds only the readable
  report and the detected note.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import UserError
from .lfo_shapes import SHAPE_NAMES
from .params import EFFECT_SWITCH, EFFECTS, Param, ParamSpace, default_space
from .preset import Preset

log = logging.getLogger(__name__)

MODEL_ENV = "VITAL_INVERSE_LLM_MODEL"
API_KEY_ENV = "ANTHROPIC_API_KEY"
# The newest Sonnet-class model named in the installed SDK's ``Model`` literal
# (anthropic 2.12), and the one the SDK's own examples use.
DEFAULT_MODEL = "claude-sonnet-5-5"
MAX_TOKENS = 4096

_INIT_TABLE = "Init Saw"  # the bank table that is Vital's default saw
_SEMITONE_FREQUENCY_MIN_MAX = 100.0  # "semitones" controls whose range reaches this are note-like frequencies


class TutorialError(UserError):
    """A tutorial cannot be written for these inputs; the message says why."""


# --------------------------------------------------------------------------
# The readable report
# --------------------------------------------------------------------------


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
    from .synth import thread_renderer

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
        return "≈ " + _format_hz(_note_hz(raw))
    if units == "secs" and p.group.startswith("env_"):
        seconds = _number(text)
        if seconds is not None and seconds < 1.0:
            return f"≈ {_ms(seconds)}"
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
    from .wavetables import Wavetable, WavetableError, bank_wavetable

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
    from .preset import _init_json  # Vital's Init document, built once per process by preset.py

    name = str((st.get("sample") or {}).get("name") or "Sample")
    init_name = str((json.loads(_init_json())["settings"].get("sample") or {}).get("name") or "")
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


def _note_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((float(note) - 69.0) / 12.0)


def _format_hz(hz: float) -> str:
    if hz >= 1000.0:
        return f"{hz / 1000.0:.1f} kHz"
    return f"{hz:.0f} Hz" if hz >= 10.0 else f"{hz:.1f} Hz"


_NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _note_name(note: int) -> str:
    return f"{_NOTE_NAMES[note % 12]}{note // 12 - 1}"


def _describe_note(note: int) -> str:
    return f"{_note_name(note)} (MIDI note {note}, {_format_hz(_note_hz(note))})"


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


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    m = re.search(r"-?\d+(?:\.\d+)?", text)
    return float(m.group(0)) if m else None


def _ms(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    ms = seconds * 1000.0
    return f"{ms:.0f} ms" if ms >= 10.0 or ms == 0.0 else f"{ms:.1f} ms"


def _check_note(note: int | None) -> int | None:
    if note is None:
        return None
    if isinstance(note, bool) or not isinstance(note, (int, np.integer)) or not 0 <= int(note) <= 127:
        raise TutorialError(f"the detected note must be a MIDI note number 0-127 or None, got {note!r}")
    return int(note)


def _value(report: Report, name: str) -> float | None:
    item = report.item(name)
    return None if item is None else _number(item.text_value)


def character(report: Report, note: int | None = None, pitched: bool = True) -> str:
    """One line on what kind of sound this is, inferred from the report and the note."""
    attack = _value(report, "env_1_attack") or 0.0
    decay = _value(report, "env_1_decay") or 0.0
    sustain = _value(report, "env_1_sustain")
    sustain = 1.0 if sustain is None else sustain
    release = _value(report, "env_1_release") or 0.0
    oscs = report.of_kind("oscillator")
    noise_only = not oscs and report.section("sample") is not None

    if not pitched or noise_only:
        kind = "noise / FX sound"
    elif sustain < 0.2:
        if note is not None and note < 48:
            kind = "plucked bass"
        elif decay < 0.6:
            kind = "pluck"
        else:
            kind = "keys-like tone that dies away"
    elif attack >= 0.2 or release >= 1.0:
        kind = "pad"
    elif note is not None and note < 48:
        kind = "bass"
    elif note is not None and note >= 60:
        kind = "lead"
    else:
        kind = "sustained synth tone"

    parts = []
    env = f"attack {_ms(attack)}"
    env += f", decay {_ms(decay)} to silence" if sustain < 0.01 else f", decay {_ms(decay)} to sustain {sustain:.2f}"
    env += f", release {_ms(release)}"
    parts.append(env)
    voices = [v for s in oscs if (v := _value(report, f"{s.key}_unison_voices")) is not None]
    if oscs:
        wide = max(voices, default=1.0)
        layers = f"{len(oscs)} oscillator{'s' if len(oscs) > 1 else ''}"
        parts.append(layers + (f", up to {wide:.0f}-voice unison" if wide > 1 else ""))
    if report.section("sample") is not None:
        parts.append("a sample layer" if oscs else "the sample alone")
    for f in report.of_kind("filter"):
        cutoff = report.item(f"{f.key}_cutoff")
        model = report.item(f"{f.key}_model")
        style = report.item(f"{f.key}_style")
        if cutoff is None or cutoff.raw is None:
            continue
        hz = _note_hz(cutoff.raw)
        kind_of = _pass_type(model, style, report.item(f"{f.key}_blend"))
        desc = f"{f.title} (`{' '.join(i.text_value for i in (model, style) if i)}`"
        desc += f" {kind_of})" if kind_of else ")"
        desc += f" at ≈ {_format_hz(hz)}"
        ref = _note_hz(note) if note is not None else 200.0
        if kind_of == "low-pass" and hz < 3.0 * ref:
            desc += ", dark"
        elif kind_of == "low-pass" and hz > 24.0 * ref:
            desc += ", open"
        parts.append(desc)
    effects = [s.title for s in report.of_kind("effect")]
    if effects:
        parts.append("with " + ", ".join(effects))
    if report.section("modulation") is not None:
        parts.append(f"{len(report.section('modulation').items)} modulation route(s)")  # type: ignore[union-attr]

    where = ""
    if not pitched:
        where = " (unpitched)"
    elif note is not None:
        where = f" around {_describe_note(note)}"
    article = "an" if kind[0] in "aeiou" else "a"
    return f"**Character:** {article} {kind}{where}: {'; '.join(parts)}."


_BLENDED_MODELS = ("Analog", "Dirty", "Ladder", "Digital", "Diode")


def _pass_type(model: Item | None, style: Item | None, blend: Item | None) -> str:
    """Low-, band- or high-pass for the models whose Blend knob morphs between them (0, 1, 2)."""
    if model is None or style is None or blend is None:
        return ""
    if model.text_value not in _BLENDED_MODELS or style.text_value not in ("12dB", "24dB"):
        return ""
    b = _number(blend.text_value)
    if b is None:
        return ""
    return "low-pass" if b < 0.5 else "band-pass" if b < 1.5 else "high-pass"


def _section_step(s: Section) -> str | None:
    changes = [i for i in s.items if i.changed and i.name != s.switch]
    if not changes and not s.turned_on:
        return None
    where = {
        "oscillator": "VOICE tab",
        "sample": "VOICE tab",
        "filter": "VOICE tab",
        "envelope": f"the {s.title.replace('Envelope', 'ENV')} tab of the envelope panel",
        "lfo": f"the {s.title} tab of the LFO panel",
        "effect": "EFFECTS tab",
        "modulation": "",
    }[s.kind]
    if s.kind == "modulation":
        head = "**Modulation:** connect the sources to their targets:"
        lines = [f"   - **{i.display_name}**, amount `{i.text_value}` ({i.hint}). {i.how_to}" for i in changes]
        return "\n".join([head] + lines)
    if s.turned_on:
        head = f"**{s.title}** ({where}): switch it on with the power button next to its name"
        head += ", then:" if changes else "."
    else:
        head = f"**{s.title}** ({where}):"
    lines = []
    for i in changes:
        line = f"   - Set **{i.display_name}** to `{i.text_value}`"
        if i.hint:
            line += f" ({i.hint})"
        line += "."
        if i.how_to:
            line += f" {i.how_to}"
        lines.append(line)
    return "\n".join([head] + lines)


def _variations(report: Report) -> list[str]:
    out: list[str] = []
    filters = report.of_kind("filter")
    if filters:
        f = filters[0]
        cutoff = report.item(f"{f.key}_cutoff")
        kind_of = _pass_type(report.item(f"{f.key}_model"), report.item(f"{f.key}_style"), report.item(f"{f.key}_blend"))
        if cutoff is not None and kind_of == "high-pass":
            out.append(
                f"**Let the body in:** lower **{cutoff.display_name}** from `{cutoff.text_value}` by about "
                f"12 semitones (an octave) so more of the low end passes, or raise it for a thinner sound."
            )
        elif cutoff is not None:
            out.append(
                f"**Open the filter:** raise **{cutoff.display_name}** from `{cutoff.text_value}` by about "
                f"12 semitones (an octave) for a brighter, more present tone, or lower it for a darker one."
            )
    oscs = report.of_kind("oscillator")
    for s in oscs:
        voices, detune = report.item(f"{s.key}_unison_voices"), report.item(f"{s.key}_unison_detune")
        if voices is None or detune is None:
            continue
        if (_number(voices.text_value) or 1.0) <= 1.0:
            out.append(
                f"**Add unison:** set **{voices.display_name}** to 4-7 voices and raise **{detune.display_name}** "
                f"a little for a wider, thicker sound."
            )
        else:
            out.append(
                f"**Tighten the unison:** fewer **{voices.display_name}** (now `{voices.text_value}`) or less "
                f"**{detune.display_name}** (now `{detune.text_value}`) gives a narrower, more focused tone."
            )
        break
    sustain, release = report.item("env_1_sustain"), report.item("env_1_release")
    if sustain is not None and (_number(sustain.text_value) or 0.0) < 0.2:
        out.append(
            f"**Let it sustain:** raise **{sustain.display_name}** (now `{sustain.text_value}`) to hold the "
            f"note instead of letting it die away."
        )
    elif release is not None and (_number(release.text_value) or 0.0) < 0.3:
        out.append(
            f"**Let it ring:** lengthen **{release.display_name}** (now `{release.text_value}`) so notes "
            f"fade out after you let go."
        )
    elif release is not None:
        out.append(
            f"**Tighten the tail:** shorten **{release.display_name}** (now `{release.text_value}`) for "
            f"cleaner, more rhythmic phrasing."
        )
    for s in oscs:
        frame = report.item(f"{s.key}_wave_frame")
        if frame is not None:
            out.append(
                f"**Move through the wavetable:** sweep **{frame.display_name}** (now `{frame.text_value}`) "
                f"while a note plays, and keep the frame you like."
            )
            break
    for f in filters:
        res = report.item(f"{f.key}_resonance")
        if res is not None:
            out.append(
                f"**Add bite:** turn up **{res.display_name}** (now `{res.text_value}`) for a sharper peak "
                f"at the cutoff."
            )
            break
    return out[:3]


def tutorial_from_report(report: Report, note: int | None = None, pitched: bool = True) -> str:
    """The offline tutorial (Markdown) for a report; deterministic."""
    note = _check_note(note)
    title = f"# Making “{report.preset_name}” in Vital" if report.preset_name else "# Making this sound in Vital"
    out = [title, "", character(report, note, pitched), "", "## Steps, starting from Vital's Init preset", ""]
    steps = [
        (
            "Start from Vital's Init preset: click the menu button (☰) to the right of the preset name and "
            "choose **Initialize Preset**."
        )
    ]
    steps += [f"Switch **{t}** off (the power button next to its name)." for t in report.switched_off]
    for s in report.sections:
        step = _section_step(s)
        if step is not None:
            steps.append(step)
    if len(steps) == 1:
        steps.append("Nothing else to change: this sound is Vital's Init preset as it is.")
    if pitched and note is not None:
        steps.append(f"Play it around {_describe_note(note)}, the note the clip was detected at.")
    out += [f"{n}. {s}" for n, s in enumerate(steps, 1)]
    variations = _variations(report)
    if variations:
        out += ["", "## Variations to try", ""]
        out += [f"- {v}" for v in variations]
    out += ["", "## All settings, as Vital shows them", ""]
    out.append(report_text(report).replace("### ", "#### ").rstrip())
    return "\n".join(out) + "\n"


def offline_tutorial(preset: Preset, note: int | None = None, pitched: bool = True) -> str:
    """Markdown tutorial for ``preset``, written without any network access."""
    note = _check_note(note)
    return tutorial_from_report(build_report(preset), note, pitched)


# --------------------------------------------------------------------------
# LLM writer
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TutorialChunk:
    """A piece of the streamed tutorial; the first chunk's notice says which writer is used."""

    text: str
    source: Literal["llm", "offline"]
    notice: str | None = None


_SYSTEM_PROMPT = """\
You teach sound design with the Vital synthesizer. You receive a report of a Vital preset: each \
module that is switched on, with every setting as Vital's own interface shows it, marked "as in Init" \
when Vital's Init preset already has that value, plus how-to notes. Write a tutorial in Markdown that \
teaches a musician to rebuild this sound by hand:

1. One line on the sound's character (bass, pad, pluck, lead, keys, noise/FX...), judged from the \
settings and the detected note.
2. Numbered steps starting from Vital's Init preset (menu button next to the preset name -> \
Initialize Preset), in this order: oscillators and wavetables, sample, filters, envelopes, LFOs, \
modulation, effects. Include only settings that differ from Init, quote each value exactly as written \
in the report, and say briefly why each step matters for the sound. Use the how-to notes for \
wavetables and modulation.
3. Two or three variations to try.

Mention no module or setting that is not in the report and invent no values."""


def build_prompt(report: Report, note: int | None, pitched: bool = True) -> str:
    """The user message: the readable report and the detected note, nothing else."""
    note = _check_note(note)
    if not pitched:
        detected = "Detected note: none (the clip is unpitched)."
    elif note is None:
        detected = "Detected note: unknown."
    else:
        detected = f"Detected note: {_describe_note(note)}."
    return f"{detected}\n\nReport of the preset (Vital's own names and values):\n\n{report_text(report)}"


def _offline_chunks(report: Report, note: int | None, pitched: bool, notice: str | None) -> Iterator[TutorialChunk]:
    text = tutorial_from_report(report, note, pitched)
    blocks = re.split(r"(?<=\n\n)", text)
    for i, block in enumerate(b for b in blocks if b):
        yield TutorialChunk(block, "offline", notice if i == 0 else None)


_ERROR_STATUS = {  # Anthropic error types, by the HTTP status they stand for
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def _failure_reason(exc: BaseException, model: str) -> str:
    """A fixed, key-free phrase for an API failure (never the exception's own message)."""
    import anthropic

    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    if kind in _ERROR_STATUS and (status is None or status < 400):  # an error event inside a 200 stream
        status = _ERROR_STATUS[kind]
    if isinstance(exc, anthropic.APITimeoutError):
        return "timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return "could not connect"
    if status == 401:
        return "the API key was rejected (401)"
    if status == 403:
        return "permission denied (403)"
    if status == 404:
        return f"model {model} not found (404)"
    if status == 429:
        return "rate limited (429)"
    if status == 529:
        return "the service is overloaded (529)"
    if isinstance(status, int) and status >= 500:
        return f"server error ({status})"
    if isinstance(status, int):
        return f"HTTP error {status}"
    return "unexpected response"


def stream_tutorial(
    preset: Preset,
    note: int | None = None,
    pitched: bool = True,
    *,
    api_key: str | None = None,
    model: str | None = None,
    http_client=None,
    timeout: float = 30.0,
    max_retries: int = 2,
) -> Iterator[TutorialChunk]:
    """Stream a tutorial written by Claude; fall back to the offline tutorial on any API failure.

    ``api_key`` defaults to ``$ANTHROPIC_API_KEY``, ``model`` to
    ``$VITAL_INVERSE_LLM_MODEL`` or ``DEFAULT_MODEL``. ``http_client`` is an
    ``httpx2.Client`` (the HTTP library of the anthropic 2.x SDK). The first
    chunk carries a notice naming the writer; if the stream breaks off after
    some text, the offline tutorial follows with a notice of its own. The
    key never appears in yielded text, notices or logs.
    """
    note = _check_note(note)
    report = build_report(preset)
    model = model or os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    key = (key or "").strip()
    if not key:
        yield from _offline_chunks(report, note, pitched, f"Offline tutorial: no {API_KEY_ENV} configured")
        return

    import anthropic
    import httpx2

    yielded = False
    client = None
    try:
        client = anthropic.Anthropic(api_key=key, http_client=http_client, timeout=timeout, max_retries=max_retries)
        with client.messages.stream(
            model=model,
            max_tokens=MAX_TOKENS,
            system=_SYSTEM_PROMPT,
            messages=[{"role": "user", "content": build_prompt(report, note, pitched)}],
        ) as stream:
            for text in stream.text_stream:
                if not text:
                    continue
                yield TutorialChunk(text, "llm", None if yielded else f"Written by Claude (model {model})")
                yielded = True
    except (anthropic.AnthropicError, httpx2.HTTPError) as e:
        reason = _failure_reason(e, model)
        log.info("tutorial: LLM request failed (%s); using the offline tutorial", reason)
        if yielded:
            yield TutorialChunk("\n\n", "offline",
                                f"The LLM stream broke off ({reason}); the offline tutorial follows")
            yield from _offline_chunks(report, note, pitched, None)
        else:
            yield from _offline_chunks(report, note, pitched, f"Offline tutorial: the LLM request failed ({reason})")
        return
    except Exception as e:
        if key in str(e) or any(key in str(a) for a in getattr(e, "args", ())):
            raise TutorialError("the LLM request failed unexpectedly (details withheld: they held the API key)") from None
        raise
    finally:
        if client is not None and http_client is None:  # a caller's http_client stays open for the caller
            client.close()
    if not yielded:
        yield from _offline_chunks(report, note, pitched, "Offline tutorial: the LLM returned no text")
