# SPDX-License-Identifier: GPL-3.0-or-later
"""Is what we render what Vital plays after a musician loads the preset? Prints Markdown.

For every human preset in shared/data/human-presets at MIDI 48/60/72 (velocity
0.8, 1.5 s held, 2.0 s long), MSS in dB between:

- ``ours``: the ``vital-inverse render`` path (a fresh ``Renderer``, the
  preset read with ``load_vital``, ``Renderer.render``);
- ``after``: the same through a reused Renderer that has just rendered the
  previous preset of the list at another note (the app's and workers' case);
- ``ref``: Vita alone, a fresh Synth: ``load_json`` of the file, a 1 s
  throwaway render, then the note. Two kinds of throwaway: ``held`` (the
  note held 1 s, as the issue measured) and ``blip`` (a 1 ms note, then 1 s
  of render: the same settling without a held note's release tail).
- ``noise``: each reference made twice on fresh Synths (Vita's
  render-to-render noise: random phases, noise oscillators).
- ``phase``: the blip reference against one settled for 1.37 s instead of
  1 s: both are settled, so a difference is a free-running phase (LFOs in
  Sync mode, chorus/flanger/phaser, random sources run on from the load).

A row passes if ``ours`` and ``after`` are within 1.5 x noise + 1 dB of the
reference; ``phase`` marks rows where they are not, but are within
1.5 x max(noise, phase) + 1 dB (the difference is a free-running phase).
Cost: wall time of the settling render against the note's own render.

    python benchmarks/bench_settle.py [--presets N] [--notes 48,60,72] [--out runs/settle.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"

from vital_inverse.metrics import mss
from vital_inverse.preset import load_vital
from vital_inverse.synth import SAMPLE_RATE, Renderer

VEL, NOTE_S, RENDER_S = 0.8, 1.5, 2.0


def vita_ref(text: str, note: int, settle_s: float, held: bool, settle_note: int | None = None) -> np.ndarray:
    """Vita alone: fresh Synth, load the file, a throwaway render of ``settle_s``, then the note."""
    import vita

    s = vita.Synth()
    s.set_sample_rate(SAMPLE_RATE)
    assert s.load_json(text)
    s.render(note if settle_note is None else settle_note, VEL, settle_s if held else 0.001, settle_s)
    return np.asarray(s.render(note, VEL, NOTE_S, RENDER_S))


def timed_costs(renderer: Renderer, preset, note: int) -> tuple[float, float]:
    """(settle seconds, real render seconds) for one render of ``preset`` (already loaded)."""
    renderer.load(preset)
    t = time.perf_counter()
    renderer.settle(note, VEL)
    t1 = time.perf_counter()
    renderer.synth.render(note, VEL, NOTE_S, RENDER_S)
    return t1 - t, time.perf_counter() - t1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", type=int, default=None)
    ap.add_argument("--notes", default="48,60,72")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    notes = [int(n) for n in args.notes.split(",")]
    paths = sorted(HUMAN.glob("*.vital"))[: args.presets]
    reused = Renderer()
    rows, costs = [], []
    prev = None
    for path in paths:
        text = path.read_text()
        preset = load_vital(path)
        for note in notes:
            ours = Renderer().render(preset, note, VEL, NOTE_S, RENDER_S)
            if prev is not None:
                reused.render(prev, 84 if note < 72 else 36, VEL, NOTE_S, RENDER_S)  # a very different state first
            after = reused.render(preset, note, VEL, NOTE_S, RENDER_S)
            held = [vita_ref(text, note, 1.0, True) for _ in range(2)]
            blip = [vita_ref(text, note, 1.0, False) for _ in range(2)]
            late = vita_ref(text, note, 1.37, False)
            old = vita_ref(text, note, 0.03, True, settle_note=60)  # the previous settle: 30 ms at MIDI 60
            r = {
                "preset": path.stem, "note": note,
                "ours_held": mss(ours, held[0]), "after_held": mss(after, held[0]), "noise_held": mss(*held),
                "ours_blip": mss(ours, blip[0]), "after_blip": mss(after, blip[0]), "noise_blip": mss(*blip),
                "phase": mss(blip[0], late), "old_held": mss(old, held[0]),
                "start_rms_ours": float(np.sqrt(np.mean(ours[:, :441] ** 2))),
                "start_rms_held": float(np.sqrt(np.mean(held[0][:, :441] ** 2))),
            }
            for kind in ("held", "blip"):
                tol = 1.5 * r[f"noise_{kind}"] + 1.0
                tol_phase = 1.5 * max(r[f"noise_{kind}"], r["phase"]) + 1.0
                worst = max(r[f"ours_{kind}"], r[f"after_{kind}"])
                r[f"verdict_{kind}"] = "ok" if worst <= tol else ("phase" if worst <= tol_phase else "FAIL")
            rows.append(r)
            costs.append(timed_costs(reused, preset, note))
            print(f"{path.stem:20s} {note}  ours/after vs held {r['ours_held']:.2f}/{r['after_held']:.2f} "
                  f"(noise {r['noise_held']:.2f}) {r['verdict_held']:5s} | vs blip {r['ours_blip']:.2f}/"
                  f"{r['after_blip']:.2f} (noise {r['noise_blip']:.2f}, phase {r['phase']:.2f}) {r['verdict_blip']}",
                  file=sys.stderr, flush=True)
        prev = preset
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "costs": costs}, indent=1))
    report(rows, costs)


def report(rows: list[dict], costs: list[tuple[float, float]]) -> None:
    print("| preset | note | old 30 ms settle vs held ref | ours vs held ref | after another preset | noise (held) | ours vs blip ref | after | noise (blip) | phase spread | verdict held / blip |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['note']} | {r['old_held']:.2f} | {r['ours_held']:.2f} | {r['after_held']:.2f} | {r['noise_held']:.2f} | "
              f"{r['ours_blip']:.2f} | {r['after_blip']:.2f} | {r['noise_blip']:.2f} | {r['phase']:.2f} | "
              f"{r['verdict_held']} / {r['verdict_blip']} |")
    for kind in ("held", "blip"):
        v = [r[f"verdict_{kind}"] for r in rows]
        print(f"\nAgainst the {kind} reference: {v.count('ok')}/{len(v)} within 1.5 x noise + 1 dB, "
              f"{v.count('phase')} more within it once the free-running phase spread is allowed, {v.count('FAIL')} fail.")
    settle = [c[0] for c in costs]
    real = [c[1] for c in costs]
    print(f"\nCost: settling render median {1000 * statistics.median(settle):.1f} ms against "
          f"{1000 * statistics.median(real):.1f} ms for the 2 s note itself "
          f"(+{100 * statistics.median(s / r for s, r in zip(settle, real)):.0f}% per render, median of {len(costs)}).")


if __name__ == "__main__":
    main()
