# SPDX-License-Identifier: GPL-3.0-or-later
"""The offline tutorial writer: Markdown from the display report alone, deterministic.

``offline_tutorial(preset, note, pitched)`` writes the sound's character, numbered
steps from Vital's Init preset (only what differs from Init), a few variations,
and the full settings list. No network; the LLM writer falls back to it.
``note`` is a MIDI note number (0-127) or None.
"""

from __future__ import annotations

import librosa
import numpy as np

from ..errors import UserError
from ..preset import Preset
from .report import Item, Report, Section, build_report, format_hz, format_ms, number_in, report_text


class TutorialError(UserError):
    """A tutorial cannot be written for these inputs; the message says why."""


def describe_note(note: int) -> str:
    """The note's name, MIDI number and fundamental, e.g. "A2 (MIDI note 45, 110 Hz)"."""
    name = librosa.midi_to_note(note, unicode=False)
    return f"{name} (MIDI note {note}, {format_hz(float(librosa.midi_to_hz(note)))})"


def check_note(note: int | None) -> int | None:
    """``note`` as an int (a MIDI note 0-127), or None; anything else is a TutorialError."""
    if note is None:
        return None
    if isinstance(note, bool) or not isinstance(note, (int, np.integer)) or not 0 <= int(note) <= 127:
        raise TutorialError(f"the detected note must be a MIDI note number 0-127 or None, got {note!r}")
    return int(note)


def _value(report: Report, name: str) -> float | None:
    item = report.item(name)
    return None if item is None else number_in(item.text_value)


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
    env = f"attack {format_ms(attack)}"
    env += f", decay {format_ms(decay)} to silence" if sustain < 0.01 else f", decay {format_ms(decay)} to sustain {sustain:.2f}"
    env += f", release {format_ms(release)}"
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
        hz = float(librosa.midi_to_hz(cutoff.raw))
        kind_of = _pass_type(model, style, report.item(f"{f.key}_blend"))
        desc = f"{f.title} (`{' '.join(i.text_value for i in (model, style) if i)}`"
        desc += f" {kind_of})" if kind_of else ")"
        desc += f" at ≈ {format_hz(hz)}"
        ref = float(librosa.midi_to_hz(note)) if note is not None else 200.0
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
        where = f" around {describe_note(note)}"
    article = "an" if kind[0] in "aeiou" else "a"
    return f"**Character:** {article} {kind}{where}: {'; '.join(parts)}."


_BLENDED_MODELS = ("Analog", "Dirty", "Ladder", "Digital", "Diode")


def _pass_type(model: Item | None, style: Item | None, blend: Item | None) -> str:
    """Low-, band- or high-pass for the models whose Blend knob morphs between them (0, 1, 2)."""
    if model is None or style is None or blend is None:
        return ""
    if model.text_value not in _BLENDED_MODELS or style.text_value not in ("12dB", "24dB"):
        return ""
    b = number_in(blend.text_value)
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
        if (number_in(voices.text_value) or 1.0) <= 1.0:
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
    if sustain is not None and (number_in(sustain.text_value) or 0.0) < 0.2:
        out.append(
            f"**Let it sustain:** raise **{sustain.display_name}** (now `{sustain.text_value}`) to hold the "
            f"note instead of letting it die away."
        )
    elif release is not None and (number_in(release.text_value) or 0.0) < 0.3:
        out.append(
            f"**Let it ring:** lengthen **{release.display_name}** (now `{release.text_value}`) so notes "
            f"fade out after you let go."
        )
    elif release is not None:
        out.append(
            f"**Tighten the tail:** shorten **{release.display_name}** (now `{release.text_value}`) for "
            f"cleaner, more rhythmic phrasing."
        )
    frame = _first_item(report, oscs, "wave_frame")
    if frame is not None:
        out.append(
            f"**Move through the wavetable:** sweep **{frame.display_name}** (now `{frame.text_value}`) "
            f"while a note plays, and keep the frame you like."
        )
    res = _first_item(report, filters, "resonance")
    if res is not None:
        out.append(
            f"**Add bite:** turn up **{res.display_name}** (now `{res.text_value}`) for a sharper peak "
            f"at the cutoff."
        )
    return out[:3]


def _first_item(report: Report, sections: list[Section], setting: str) -> Item | None:
    """The first of ``sections``' items named ``<section key>_<setting>`` that the report shows."""
    return next((i for s in sections if (i := report.item(f"{s.key}_{setting}")) is not None), None)


def tutorial_from_report(report: Report, note: int | None = None, pitched: bool = True) -> str:
    """The offline tutorial (Markdown) for a report; deterministic."""
    note = check_note(note)
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
        steps.append(f"Play it around {describe_note(note)}, the note the clip was detected at.")
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
    note = check_note(note)
    return tutorial_from_report(build_report(preset), note, pitched)


# --------------------------------------------------------------------------
# LLM writer
