# SPDX-License-Identifier: GPL-3.0-or-later
"""Starts made of the clip (vital_inverse.resynthesis) against and beside the predictor's; prints Markdown.

Per target: (a) the clip's own starts alone (the resynthesis start, with
and without its noise layer, or the noise start for unpitched clips), (b)
the predictor's candidates alone (K=4 network + 2 retrieval), (c) all
candidates together (b + the clip's own starts + the mixed start), each
shifted onto the clip's f0 (``tuning.retune``), rendered once, and the best
by the refinement loss (MRSTFT) kept, as the app does; optionally (d) (c) + N
renders of CMA-ES refinement from the best of all. Metrics of the kept
render against the target: MSS, wMFCC, SOT, RMS cosine, MRSTFT, f0 error.

Targets: the human presets rendered at each note (velocity 0.8, 1.5 s held,
2.0 s long) and analysed by intake like a user's clip, or a folder of clips.

    python benchmarks/bench_resynthesis.py presets --notes 48,60,72 --out runs/resynthesis/human
    python benchmarks/bench_resynthesis.py presets --notes 60 --refine 600 --out runs/resynthesis/refine
    python benchmarks/bench_resynthesis.py clips --dir examples/recordings --out runs/resynthesis/recordings
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"

from vital_inverse.evaluate import OneThread as _OneThread, score_metrics  # noqa: E402
from vital_inverse.synth import worker_renderer as _renderer  # noqa: E402
from vital_inverse.intake import analyze, analyze_file  # noqa: E402
from vital_inverse.metrics import mrstft_batch  # noqa: E402
from vital_inverse.predict import PresetPredictor, clip_candidates  # noqa: E402
from vital_inverse.preset import load_vital  # noqa: E402
from vital_inverse.session import match_audio  # noqa: E402

VEL, NOTE_S, RENDER_S = 0.8, 1.5, 2.0
METRICS = ("mss", "wmfcc", "sot", "rms", "mrstft", "f0_cents")
SETS = ("a", "b", "c", "d")
SET_NAMES = {"a": "(a) clip's own start alone", "b": "(b) predictor's candidates alone",
             "c": "(c) all candidates, best by loss", "d": "(d) (c) + refinement"}


def targets(args):
    """(name, note, Analysis) for each target, rendered and analysed lazily."""
    if args.command == "clips":
        for path in sorted(p for p in Path(args.dir).iterdir() if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3")):
            yield path.stem, None, analyze_file(path)
        return
    paths = sorted(HUMAN.glob("*.vital"))
    if args.presets:
        idx = np.linspace(0, len(paths) - 1, args.presets).round().astype(int)
        paths = [paths[i] for i in sorted(set(idx))]
    renderer = _renderer()
    for path in paths:
        truth = load_vital(path)
        for note in args.notes:
            raw = renderer.render(truth, note, VEL, NOTE_S, RENDER_S)
            yield path.stem, note, analyze(raw, 44100, f"{path.stem}@{note}")


def retuned(candidates, a):
    """Candidates shifted onto the clip's f0 as the app does before scoring (``tuning.retune``)."""
    import dataclasses

    from vital_inverse.tuning import retune

    renderer = _renderer()

    def render(presets):
        out = []
        for p in presets:
            try:
                out.append(renderer.render(p, a.note, VEL, a.note_seconds, a.render_seconds))
            except Exception as e:  # noqa: BLE001 - retune leaves a failed preset as it is
                out.append(e)
        return out

    tuned = retune([c.preset for c in candidates], a, render)
    return [c if p is c.preset else dataclasses.replace(c, preset=p) for c, p in zip(candidates, tuned)]


def best_of(candidates, a) -> tuple[int, list[float], list[np.ndarray]]:
    """Render every candidate at the clip's note and length; (index of the lowest MRSTFT, losses, matched audio)."""
    renderer = _renderer()
    matched = []
    for c in candidates:
        try:
            matched.append(match_audio(renderer.render(c.preset, a.note, VEL, a.note_seconds, a.render_seconds),
                                       a.audio))
        except Exception:  # noqa: BLE001 - a failed render loses the selection
            matched.append(None)
    ok = [i for i, m in enumerate(matched) if m is not None]
    losses = [math.inf] * len(candidates)
    for i, v in zip(ok, mrstft_batch([matched[i] for i in ok], a.audio)):
        losses[i] = float(v) if math.isfinite(v) else math.inf
    return int(np.argmin(losses)), losses, matched


def refine_from(candidates, a, budget: int, seed: int, pool):
    """Refine from all candidates (the best by loss is the start, as the app does); one fresh render's metrics."""
    from vital_inverse.refine import Budget, refine

    t0 = time.perf_counter()
    last = None
    for ev in refine(a, [c.preset for c in candidates], Budget(renders=budget, seconds=None), seed=seed,
                     renderer=pool):
        last = ev
    seconds = time.perf_counter() - t0
    fresh = _renderer().render(last.best, a.note, VEL, a.note_seconds, a.render_seconds)
    return match_audio(fresh, a.audio), seconds


def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = PresetPredictor.load(args.checkpoint)
    pool = None
    if args.refine:
        from vital_inverse.synth import ParallelRenderer

        pool = ParallelRenderer()
    columns = ["target", "note", "pitched", "winner", "n_keyframes", "resynth_s", "refine_s"] + [
        f"{s}_{m}" for s in SETS for m in METRICS]
    rows = []
    with open(out / "rows.csv", "w", newline="") as f, _OneThread():
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        for name, note, a in targets(args):
            t0 = time.perf_counter()
            network = predictor.predict(a, k=args.k, resynthesis=False)
            t1 = time.perf_counter()
            own = clip_candidates(a, [network[0].preset])
            resynth_s = time.perf_counter() - t1
            every = retuned(network + own, a)
            chosen, losses, matched = best_of(every, a)
            own_i = [i for i, c in enumerate(every) if c.source in ("resynthesis", "resynthesis+noise", "noise")]
            net_i = list(range(len(network)))
            row = {"target": name, "note": note if note is not None else a.note, "pitched": a.pitched,
                   "winner": every[chosen].source, "resynth_s": round(resynth_s, 3)}
            table = next((c.preset.custom_wavetables[1] for c in own if 1 in c.preset.custom_wavetables), None)
            row["n_keyframes"] = len(table["groups"][0]["components"][0]["keyframes"]) if table else 0
            picks = {"a": min(own_i, key=lambda i: losses[i]) if own_i else None,
                     "b": min(net_i, key=lambda i: losses[i]), "c": chosen}
            for s, i in picks.items():
                if i is not None and matched[i] is not None:
                    for m, v in score_metrics(matched[i], a.audio).items():
                        row[f"{s}_{m}"] = v
            if pool is not None:
                audio, row["refine_s"] = refine_from(every, a, args.refine, args.seed, pool)
                for m, v in score_metrics(audio, a.audio).items():
                    row[f"d_{m}"] = v
            rows.append(row)
            w.writerow(row)
            f.flush()
            print(f"{name} @{row['note']}: winner {row['winner']}, MSS a {row.get('a_mss', float('nan')):.2f} "
                  f"b {row['b_mss']:.2f} c {row['c_mss']:.2f}"
                  + (f" d {row['d_mss']:.2f}" if 'd_mss' in row else "")
                  + f" ({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    if pool is not None:
        pool.close()
    text = summary(rows, args)
    (out / "summary.md").write_text(text)
    print(text)


def _median(rows, key) -> float:
    vals = [float(r[key]) for r in rows if key in r and r[key] is not None and math.isfinite(float(r[key]))]
    return float(np.median(vals)) if vals else float("nan")


def summary(rows, args) -> str:
    sets = [s for s in SETS if any(f"{s}_mss" in r for r in rows)]
    lines = [f"{len(rows)} targets. Medians (f0 error where both are voiced):", "",
             "| set | MSS (dB) | wMFCC | SOT | RMS cosine | MRSTFT | f0 error (cents) |", "|---|---|---|---|---|---|---|"]
    for s in sets:
        vals = " | ".join(f"{_median(rows, f'{s}_{m}'):.3g}" for m in METRICS)
        lines.append(f"| {SET_NAMES[s]} | {vals} |")
    notes = sorted({r["note"] for r in rows})
    if len(notes) > 1:
        lines += ["", "Median MSS (dB) per note:", "", "| note | " + " | ".join(sets) + " |",
                  "|---|" + "---|" * len(sets)]
        for n in notes:
            sub = [r for r in rows if r["note"] == n]
            lines.append(f"| {n} | " + " | ".join(f"{_median(sub, f'{s}_mss'):.2f}" for s in sets) + " |")
    wins: dict[str, int] = {}
    for r in rows:
        wins[r["winner"]] = wins.get(r["winner"], 0) + 1
    lines += ["", "Kind of start kept in (c): " + ", ".join(f"{k} {v}" for k, v in sorted(wins.items(), key=lambda x: -x[1])),
              "", "| target | note | winner | MSS a | MSS b | MSS c" + (" | MSS d" if "d" in sets else "") + " | keyframes |",
              "|---|---|---|---|---|---" + ("|---" if "d" in sets else "") + "|---|"]
    for r in rows:
        d = f" | {float(r['d_mss']):.2f}" if "d" in sets and "d_mss" in r else (" | " if "d" in sets else "")
        a = f"{float(r['a_mss']):.2f}" if "a_mss" in r else ""
        lines.append(f"| {r['target']} | {r['note']} | {r['winner']} | {a} | {float(r['b_mss']):.2f} | "
                     f"{float(r['c_mss']):.2f}{d} | {r['n_keyframes']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("presets", "clips"))
    ap.add_argument("--notes", default="48,60,72", help="MIDI notes for the preset set")
    ap.add_argument("--presets", type=int, default=0, help="spread this many presets over the set (0: all)")
    ap.add_argument("--dir", default="examples/recordings", help="folder of clips for 'clips'")
    ap.add_argument("--k", type=int, default=4, help="network candidates")
    ap.add_argument("--refine", type=int, default=0, help="renders of refinement for (d) (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="runs/resynthesis")
    args = ap.parse_args(argv)
    args.notes = [int(n) for n in str(args.notes).split(",") if n.strip()]
    run(args)


if __name__ == "__main__":
    main()
