# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the edges (issue 16): pitch over the whole MIDI range, chords, drums,
plucks, and how fast bad presets are refused.

    python benchmarks/bench_edges.py [--quick]

Prints Markdown tables:
1. Range: synthetic sine/saw/square at every MIDI 16-111 (20 Hz - 5 kHz) and Vita
   renders of 6 presets (Init and 5 settings) at every MIDI 21-108 (0.6 s held, 0.8 s).
2. Chords (saw and Vita, 12 chords): reported as more than one note, and with the
   exact notes.
3. Plucks (sustain 0, decay 0.1/0.2/0.4 s; 5 presets x 10 notes MIDI 24-108): the
   note right, pitched, not a chord.
4. Drums (10 synthetic hits) flagged pitched; held-pitch percussion (808, plucked bass)
   kept pitched.
5. Seconds to refuse the slow presets of the issue (a million modulation entries, a
   200 MB file, 200,000 nested brackets, 3 million values).
Works on older checkouts too (no `chord` field -> counted as one note), to compare.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vita

from vital_inverse.intake import analyze

SR = 44100
PRESETS = {
    "Init saw": {},
    "unison 7": {"osc_1_unison_voices": 7},
    "unison 16, max detune": {"osc_1_unison_voices": 16, "osc_1_unison_detune": 10.0},
    "low-pass (keytracked)": {"filter_1_on": 1, "filter_1_cutoff": 60, "filter_1_keytrack": 1.0,
                              "filter_1_resonance": 0.2},
    "formant distortion": {"osc_1_distortion_type": 2, "osc_1_distortion_amount": 0.6},
    "hard sync 0.5": {"osc_1_distortion_type": 1, "osc_1_distortion_amount": 0.5},
}
CHORDS = [(60, 64, 67), (48, 52, 55), (72, 76, 79), (36, 40, 43), (60, 63, 67), (57, 60, 64), (64, 67, 72),
          (60, 65, 69), (60, 64, 67, 70), (60, 67), (60, 64), (48, 55, 64)]


def hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def tone(f0: float, kind: str, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    ks = np.arange(1, max(1, int(min(0.45 * SR, 16000.0) / f0)) + 1)
    ks = ks[:1] if kind == "sine" else ks[ks % 2 == 1] if kind == "square" else ks
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in ks)
    env = np.minimum(1.0, t / 0.005) * np.clip((seconds - t) / 0.05, 0.0, 1.0)
    return 0.5 * x * env / np.max(np.abs(x))


def render(synth, note: int, controls: dict, hold: float = 0.6, total: float = 0.8) -> np.ndarray:
    synth.load_init_preset()
    handles = synth.get_controls()
    for name, value in controls.items():
        handles[name].set(value)
    synth.render(60, 0.8, 0.01, 0.03)  # settle Vital's parameter smoothing
    return synth.render(note, 0.8, hold, total)


def chord_of(r) -> tuple[int, ...]:
    return tuple(getattr(r, "chord", ()))


def score(label: str, cases) -> list[str]:
    """cases: (analysis, played note) -> a row: right note, median |cents|, unpitched, taken for a chord."""
    right, errs, unpitched, chords, misses = 0, [], 0, 0, []
    for r, note in cases:
        ok = r.pitched and r.note == note and not chord_of(r)
        right += ok
        unpitched += not r.pitched
        chords += bool(chord_of(r))
        if r.pitched:
            errs.append(abs(1200 * math.log2(r.f0_hz / hz(note))))
        if not ok:
            misses.append(f"{note}->{r.note_name()}")
    n = len(cases)
    row = [label, str(n), f"{100 * right / n:.1f} %", f"{np.median(errs):.1f}" if errs else "-",
           f"{100 * unpitched / n:.1f} %", str(chords)]
    return row, misses


def table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def bench_range(synth, quick: bool):
    rows, misses = [], {}
    step = 5 if quick else 1
    for kind in ("sine", "saw", "square"):
        cases = [(analyze(tone(hz(m), kind), SR), m) for m in range(16, 112, step)]
        row, miss = score(f"synthetic {kind}, MIDI 16-111", cases)
        rows.append(row)
        misses[kind] = miss
    for name, controls in PRESETS.items():
        cases = [(analyze(render(synth, m, controls), SR), m) for m in range(21, 109, step)]
        row, miss = score(f"Vita {name}, MIDI 21-108", cases)
        rows.append(row)
        misses[name] = miss
    return rows, misses


def bench_chords(synth):
    rows = []
    for source in ("saw", "Vita"):
        found = exact = 0
        misses = []
        for notes in CHORDS:
            audio = (sum(tone(hz(n), "saw", 0.8) for n in notes) if source == "saw"
                     else sum(render(synth, n, {}) for n in notes))
            r = analyze(audio, SR)
            found += len(chord_of(r)) > 1
            exact += chord_of(r) == notes and r.note == notes[0]
            if chord_of(r) != notes:
                misses.append(f"{notes}->{r.note_name()}")
        rows.append([f"{source} chords", str(len(CHORDS)), f"{found}", f"{exact}", "; ".join(misses) or "-"])
    return rows


def bench_plucks(synth, quick: bool):
    cases = []
    for decay in (0.1, 0.2, 0.4):
        for controls in list(PRESETS.values())[:5]:
            for m in (24, 28, 33, 40, 48, 60, 72, 84, 96, 108)[:: 3 if quick else 1]:
                c = dict(controls, env_1_sustain=0.0, env_1_decay=decay**0.25)
                cases.append((analyze(render(synth, m, c, 0.8, 1.0), SR), m))
    return score("Vita plucks (3 decays x 5 presets x 10 notes)", cases)


def _sweep(f_end, f_start, glide, decay, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return np.sin(2 * np.pi * np.cumsum(f_end + (f_start - f_end) * np.exp(-t / glide)) / SR) * np.exp(-t / decay)


def bench_drums():
    rng = np.random.default_rng(1)
    t = np.arange(SR) / SR
    noise = rng.standard_normal(SR)
    drums = {
        "kick 150->50 Hz, 0.15 s": _sweep(50, 150, 0.03, 0.15),
        "kick + click": _sweep(50, 150, 0.03, 0.15) + 0.5 * noise * np.exp(-t / 0.005),
        "kick 180->48 Hz, 0.08 s": _sweep(48, 180, 0.06, 0.08),
        "kick 200->60 Hz, 0.2 s": _sweep(60, 200, 0.02, 0.2),
        "tom 160->110 Hz": _sweep(110, 160, 0.05, 0.2),
        "tom 250->180 Hz": _sweep(180, 250, 0.03, 0.25),
        "snare": (0.6 * noise + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 15),
        "snare with a body": 0.5 * noise * np.exp(-t / 0.08) + _sweep(180, 240, 0.01, 0.1),
        "closed hat": np.diff(rng.standard_normal(SR + 1)) * np.exp(-t * 40),
        "clap": noise * (np.exp(-t / 0.01) + (t > 0.02) * np.exp(-np.maximum(t - 0.02, 0) / 0.1)),
    }
    flagged = [name for name, x in drums.items() if analyze(x, SR).pitched]
    held = {"808, 45 Hz tail held 1.5 s": _sweep(45, 120, 0.02, 1.5),
            "plucked bass 55 Hz": sum(np.sin(2 * np.pi * k * 55 * t) / k * np.exp(-t * k / 0.3) for k in range(1, 20))}
    kept = [name for name, x in held.items() if analyze(x, SR).pitched]
    return [[f"drum hits ({len(drums)})", f"{len(flagged)} pitched", ", ".join(flagged) or "-"],
            [f"held-pitch percussion ({len(held)})", f"{len(kept)} pitched", ", ".join(kept) or "-"]]


def bench_refusals():
    from vital_inverse.preset import PresetError, init_json, load_vital

    init = json.loads(init_json())
    rows = []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)

        def doc(**settings):
            x = json.loads(json.dumps(init))
            x["settings"].update(settings)
            return json.dumps(x)

        cases = {
            "a million modulation entries (31 MB)": doc(modulations=[{"source": "", "destination": ""}] * 1_000_000),
            "a million modulation entries, compact (4 MB)": doc(modulations=[{}] * 1_000_000),
            "3 million values (6 MB)": json.dumps(dict(init, comments=[0] * 3_000_000)),
            "200,000 nested brackets": "[" * 200_000 + "]" * 200_000,
        }
        for name, text in cases.items():
            (folder / "x.vital").write_text(text)
            rows.append(_refuse(name, folder / "x.vital", load_vital, PresetError))
        with open(folder / "big.vital", "w") as fh:
            fh.write(init_json())
            fh.truncate(200 * 1024 * 1024)
        rows.append(_refuse("a 200 MB file", folder / "big.vital", load_vital, PresetError))
    return rows


def _refuse(name, path, fn, error) -> list[str]:
    t = time.perf_counter()
    try:
        fn(path)
        said = "accepted"
    except error as e:
        said = str(e).split(": ", 1)[-1][:90]
    except Exception as e:  # noqa: BLE001 - an older checkout, compared: what escaped
        said = f"{type(e).__name__} escaped"
    return [name, f"{time.perf_counter() - t:.2f} s", said]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="every 5th note, fewer plucks (a smoke run)")
    args = ap.parse_args(argv)
    synth = vita.Synth()
    t0 = time.perf_counter()
    head = ["set", "clips", "note right (pitched, one note)", "median abs error (cents)", "unpitched", "taken for a chord"]
    range_rows, range_misses = bench_range(synth, args.quick)
    pluck_row, pluck_misses = bench_plucks(synth, args.quick)
    print("### Pitch over the MIDI range\n")
    print(table(head, range_rows + [pluck_row]))
    print()
    for name, miss in range_misses.items():
        if miss:
            print(f"- {name} misses: {', '.join(miss)}")
    print(f"- pluck misses: {', '.join(pluck_misses) or 'none'}\n")
    print("### Chords\n")
    print(table(["set", "chords", "more than one note", "exact notes, lowest reported", "misses"], bench_chords(synth)))
    print("\n### Drums\n")
    print(table(["set", "result", "which"], bench_drums()))
    print("\n### Refusing slow presets (load_vital)\n")
    print(table(["preset", "time to refuse", "message"], bench_refusals()))
    print(f"\n(benchmark wall time {time.perf_counter() - t0:.0f} s; 2 shared CPU cores, other jobs running)")


if __name__ == "__main__":
    main()
