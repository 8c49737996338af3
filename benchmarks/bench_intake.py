# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of vital_inverse.intake: pitch accuracy, unpitched detection, note length, speed.

    python benchmarks/bench_intake.py [--quick]

Renders with Vita (one Synth, Init preset + settings, or the 32 human presets of
../shared/data/human-presets at MIDI 48, 60 and 72) and prints Markdown tables:

1. Pitch on a grid: 16 timbres whose pitch is the played note x MIDI 36..84 in steps
   of 2 (400 renders of 0.6 s, 0.5 s held), and 3 pitch-ambiguous timbres reported
   apart (hard sync 0.7, Random Amplitudes 0.8, self-oscillating resonance).
2. Pitch on the human presets (1.5 s held, 2 s rendered): also "octave-agnostic"
   (pitch class), since some presets transpose their oscillators by octaves.
3. Unpitched detection: noise sounds (Vita's sample oscillator through filters,
   synthetic drum hits) flagged pitched = false positives.
4. note_seconds error on Vita renders of known holds.
5. Time to analyse a 4 s clip: warm (median of 10) and the first call in a fresh
   process (from process start, and excluding imports).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"

import soundfile as sf
import vita

from vital_inverse import intake
from vital_inverse.intake import SAMPLE_RATE, analyze

TIMBRES = {
    "saw": {},
    "unison 7": {"osc_1_unison_voices": 7},
    "unison 16, max detune": {"osc_1_unison_voices": 16, "osc_1_unison_detune": 10.0},
    "low-pass dark": {"filter_1_on": 1, "filter_1_cutoff": 40, "filter_1_resonance": 0.0},
    "low-pass resonant": {"filter_1_on": 1, "filter_1_cutoff": 80, "filter_1_resonance": 0.8},
    "high-pass": {"filter_1_on": 1, "filter_1_blend": 2.0, "filter_1_cutoff": 80, "filter_1_resonance": 0.3},
    "band-pass resonant": {"filter_1_on": 1, "filter_1_blend": 1.0, "filter_1_cutoff": 90, "filter_1_resonance": 0.7},
    "sync 0.5": {"osc_1_distortion_type": 1, "osc_1_distortion_amount": 0.5},
    "formant distortion": {"osc_1_distortion_type": 2, "osc_1_distortion_amount": 0.6},
    "squeeze": {"osc_1_distortion_type": 5, "osc_1_distortion_amount": 0.8},
    "pulse": {"osc_1_distortion_type": 6, "osc_1_distortion_amount": 0.75},
    "morph low-pass": {"osc_1_spectral_morph_type": 7, "osc_1_spectral_morph_amount": 0.9},
    "morph formant scale": {"osc_1_spectral_morph_type": 2, "osc_1_spectral_morph_amount": 0.6},
    "morph phase disperse": {"osc_1_spectral_morph_type": 9, "osc_1_spectral_morph_amount": 0.8},
    "FM from osc 2": {"osc_2_on": 1, "osc_1_distortion_type": 7, "osc_1_distortion_amount": 0.5},
    "vibrato + unison 3": {
        "osc_1_unison_voices": 3,
        "lfo_1_sync": 0,
        "lfo_1_frequency": 2.5,
        "modulation_1_amount": 0.15,
    },
}
MODS = {"vibrato + unison 3": [("lfo_1", "osc_1_tune")]}
AMBIGUOUS = {
    "hard sync 0.7": {"osc_1_distortion_type": 1, "osc_1_distortion_amount": 0.7},
    "random amplitudes 0.8": {"osc_1_spectral_morph_type": 6, "osc_1_spectral_morph_amount": 0.8},
    "self-oscillating resonance": {"filter_1_on": 1, "filter_1_cutoff": 80, "filter_1_resonance": 0.95},
}


def setup(synth, values, mods=()):
    synth.load_init_preset()
    for src, dst in mods:
        synth.connect_modulation(src, dst)
    controls = synth.get_controls()
    for name, value in values.items():
        controls[name].set(value)


def cents(f0, note):
    return float("nan") if f0 is None else 1200.0 * math.log2(f0 / (440.0 * 2.0 ** ((note - 69) / 12.0)))


def pitch_row(label, errs, octave_agnostic=False):
    c = np.array(errs, dtype=float)
    voiced = ~np.isnan(c)
    within = np.abs(c[voiced]) < 50
    row = [
        label,
        str(len(c)),
        f"{100 * within.sum() / len(c):.1f} %",
        f"{np.median(np.abs(c[voiced])):.1f}" if voiced.any() else "-",
        f"{100 * (~voiced).mean():.1f} %",
    ]
    if octave_agnostic:
        folded = np.abs((c[voiced] + 600) % 1200 - 600)
        row.insert(3, f"{100 * (folded < 50).sum() / len(c):.1f} %")
    return row


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def bench_grid(synth, notes):
    rows, all_errs, misses = [], [], []
    for name, values in TIMBRES.items():
        errs = []
        for note in notes:
            setup(synth, values, MODS.get(name, ()))
            r = analyze(synth.render(note, 0.8, 0.5, 0.6), SAMPLE_RATE)
            c = cents(r.f0_hz, note)
            errs.append(c)
            if not abs(c) < 50:
                misses.append(f"{name} @ {note}: {c:+.0f} c")
        all_errs += errs
    rows.append(pitch_row(f"grid: {len(TIMBRES)} timbres x MIDI {notes[0]}-{notes[-1]}", all_errs))
    amb = []
    for name, values in AMBIGUOUS.items():
        errs = []
        for note in notes[::2]:
            setup(synth, values)
            errs.append(cents(analyze(synth.render(note, 0.8, 0.5, 0.6), SAMPLE_RATE).f0_hz, note))
        amb.append(pitch_row(f"ambiguous: {name}", errs))
    return rows + amb, misses


def bench_human(synth, limit=None):
    paths = sorted(HUMAN.glob("*.vital"))[:limit]
    errs, misses, t_render = [], [], 0.0
    for path in paths:
        for note in (48, 60, 72):
            if not synth.load_preset(str(path)):
                misses.append(f"{path.stem}: failed to load")
                continue
            t0 = time.perf_counter()
            audio = synth.render(note, 0.8, 1.5, 2.0)
            t_render += time.perf_counter() - t0
            try:
                r = analyze(audio, SAMPLE_RATE)
                c = cents(r.f0_hz, note)
            except intake.IntakeError as err:  # e.g. a preset silent at this note
                c = float("nan")
                misses.append(f"{path.stem} @ {note}: {err}")
            errs.append(c)
            if not abs(c) < 50:
                misses.append(f"{path.stem} @ {note}: {'unpitched' if math.isnan(c) else f'{c:+.0f} c'}")
    return pitch_row(f"human presets ({len(paths)} x MIDI 48/60/72)", errs, octave_agnostic=True), misses


def noise_cases(synth):
    rng = np.random.default_rng(7)
    sr = SAMPLE_RATE
    t = np.arange(int(0.5 * sr)) / sr
    cases = []
    for extra in (
        {},
        {"filter_1_on": 1, "filter_1_cutoff": 50},
        {"filter_1_on": 1, "filter_1_cutoff": 90, "filter_1_resonance": 0.4},
        {"filter_1_on": 1, "filter_1_blend": 2.0, "filter_1_cutoff": 100},
        {"filter_1_on": 1, "filter_1_blend": 1.0, "filter_1_cutoff": 70, "filter_1_resonance": 0.5},
        {"env_1_sustain": 0.0, "env_1_decay": 0.2**0.25},
    ):
        setup(synth, {"osc_1_on": 0, "sample_on": 1, **extra})
        cases.append(synth.render(60, 0.8, 0.8, 1.2))
    for decay in (10.0, 25.0, 60.0):
        cases.append(rng.standard_normal(len(t)) * np.exp(-t * decay))  # noise bursts
        cases.append((0.6 * rng.standard_normal(len(t)) + 0.4 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * decay))
        cases.append(np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 2 * decay))  # hats
        sweep = {10.0: 0.05, 25.0: 0.06, 60.0: 0.08}[decay]  # kick: 180 -> 45 Hz while it fades
        cases.append(np.sin(2 * np.pi * np.cumsum(45 + 135 * np.exp(-t / sweep)) / sr) * np.exp(-t / 0.08))
    cases.append(np.cumsum(rng.standard_normal(sr)) / 100)  # brown noise
    cases.append(rng.standard_normal((2, sr)))  # stereo white noise
    return cases


def bench_unpitched(synth):
    cases = noise_cases(synth)
    flagged = sum(analyze(x, SAMPLE_RATE).pitched for x in cases)
    return [f"noise / drum hits ({len(cases)})", f"{flagged}", f"{100 * flagged / len(cases):.1f} %"]


def bench_note_seconds(synth):
    timbres = {
        "saw": {},
        "unison 7": {"osc_1_unison_voices": 7},
        "low-pass + unison 2": {
            "osc_1_unison_voices": 2,
            "osc_1_unison_detune": 3.0,
            "filter_1_on": 1,
            "filter_1_cutoff": 55,
        },
    }
    errs = []
    for values in timbres.values():
        for hold in (0.3, 0.5, 1.2, 2.5):
            for rel in (0.01, 0.09, 0.3, 1.0, 2.0):
                for att in (0.0005, 0.1):
                    for sus in (1.0, 0.5):
                        if sus < 1.0 and hold < att + 0.35:
                            continue  # released before the decay settled: ambiguous by design
                        setup(
                            synth,
                            {
                                **values,
                                "env_1_attack": att**0.25,
                                "env_1_release": rel**0.25,
                                "env_1_sustain": sus,
                                "env_1_decay": 0.3**0.25,
                            },
                        )
                        r = analyze(synth.render(48, 0.8, hold, min(hold + rel + 0.3, 6.0)), SAMPLE_RATE)
                        errs.append(r.note_seconds - hold)
    e = np.abs(np.array(errs))
    return [
        f"sustained notes: 3 timbres x holds 0.3-2.5 s x releases 0.01-2 s ({len(e)})",
        f"{1000 * np.median(e):.0f} ms",
        f"{1000 * np.percentile(e, 90):.0f} ms",
        f"{100 * (e < 0.05).mean():.1f} %",
        f"{1000 * e.max():.0f} ms",
    ]


CHILD = """
import sys, time
t0 = time.perf_counter()
from vital_inverse.intake import analyze_file
t1 = time.perf_counter()
r = analyze_file(sys.argv[1])
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, r.note)
"""


def bench_speed(synth):
    setup(synth, {"osc_1_unison_voices": 7, "filter_1_on": 1, "filter_1_cutoff": 80})
    audio = synth.render(45, 0.8, 3.0, 4.0)
    intake.warm_up()
    warm = []
    for _ in range(10):
        t0 = time.perf_counter()
        analyze(audio, SAMPLE_RATE)
        warm.append(time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.wav"
        sf.write(path, audio.T, SAMPLE_RATE, subtype="PCM_24")
        fresh = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, cwd=ROOT, check=True
            )
            total = time.perf_counter() - t0
            t_import, t_first, _ = out.stdout.split()
            fresh.append((total, float(t_import), float(t_first)))
    fresh = np.array(fresh)
    t_warmup = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from vital_inverse.intake import warm_up; warm_up()"], cwd=ROOT, check=True)
    t_warmup = time.perf_counter() - t_warmup
    return [
        ["warm analyze(), 4 s clip (median of 10)", f"{1000 * np.median(warm):.0f} ms"],
        ["fresh process: start -> result (median of 3)", f"{1000 * np.median(fresh[:, 0]):.0f} ms"],
        ["fresh process: import intake", f"{1000 * np.median(fresh[:, 1]):.0f} ms"],
        ["fresh process: first analyze_file() excluding imports", f"{1000 * np.median(fresh[:, 2]):.0f} ms"],
        ["fresh process running warm_up() (start -> done)", f"{1000 * t_warmup:.0f} ms"],
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer notes and presets (a smoke run)")
    args = ap.parse_args(argv)
    synth = vita.Synth()
    t0 = time.perf_counter()
    notes = list(range(36, 85, 8 if args.quick else 2))
    grid_rows, grid_misses = bench_grid(synth, notes)
    human_row, human_misses = bench_human(synth, 4 if args.quick else None)
    unpitched = bench_unpitched(synth)
    timing = bench_note_seconds(synth) if not args.quick else None
    speed = bench_speed(synth)

    print("### Intake: pitch accuracy (Vita renders)\n")
    print(table(["set", "renders", "within 50 cents", "median abs error (cents)", "flagged unpitched"], grid_rows))
    print()
    print(
        table(
            [
                "set",
                "renders",
                "within 50 cents",
                "within 50 cents of the pitch class",
                "median abs error (cents)",
                "flagged unpitched",
            ],
            [human_row],
        )
    )
    print()
    print(table(["unpitched set", "flagged pitched (false positives)", "rate"], [unpitched]))
    if timing:
        print()
        print(table(["note_seconds on known holds", "median abs error", "90th pct", "within 50 ms", "max"], [timing]))
    print()
    print(table(["analysis time", "value"], speed))
    print()
    if grid_misses:
        print(f"Grid misses: {'; '.join(grid_misses)}.\n")
    if human_misses:
        print(f"Human-preset misses: {'; '.join(human_misses)}.\n")
    print(f"(benchmark wall time {time.perf_counter() - t0:.0f} s; 2 shared CPU cores, other jobs were running)")


if __name__ == "__main__":
    main()
