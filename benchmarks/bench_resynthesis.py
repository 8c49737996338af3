# SPDX-License-Identifier: GPL-3.0-or-later
"""Starts made of the clip (vital_inverse.resynthesis) against and beside the predictor's; prints Markdown.

Per target: (a) the clip's own starts alone (the resynthesis start, with
and without its noise layer, or the noise start for unpitched clips), (b)
the predictor's candidates alone (K=4 network + 2 retrieval), (c) all
candidates together (b + the clip's own starts + the mixed start), each
shifted onto the clip's f0 (``tuning.retune``), rendered once, and the best
by the refinement loss (MRSTFT) kept, as the app does; optionally (d) (c) + up
to N renders of CMA-ES refinement of the kept candidate, as the app refines
it (its score, the mean of 2 fresh renders, is the incumbent), searching
``resynthesis.CLIP_SEARCHED`` from a start made of the clip (``--dims clip``)
and stopping on a plateau (``--plateau``). Metrics of the kept render
against the target: MSS, wMFCC, SOT, RMS cosine, MRSTFT, f0 error; a second
render of (c)'s pick gives the run-to-run noise; per preset group (``GROUPS``)
medians; wall and CPU seconds of refinement (CPU from /proc, so the cost per
render can be read apart from the load).

Targets: the human presets rendered at each note (velocity 0.8, 1.5 s held,
2.0 s long) and analysed by intake like a user's clip, or a folder of clips.

    python benchmarks/bench_resynthesis.py presets --notes 48,60,72 --out runs/resynthesis/human
    python benchmarks/bench_resynthesis.py presets --notes 60 --presets 12 --refine 600 --out runs/resynthesis/refine60
    python benchmarks/bench_resynthesis.py clips --dir examples/recordings --out runs/resynthesis/recordings
"""

from __future__ import annotations

import argparse
import csv
import math
import os
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
from vital_inverse.session import match_audio, retune_candidates  # noqa: E402

VEL, NOTE_S, RENDER_S = 0.8, 1.5, 2.0
METRICS = ("mss", "wmfcc", "sot", "rms", "mrstft", "f0_cents")
SETS = ("a", "b", "c", "d")
SET_NAMES = {"a": "(a) clip's own start alone", "b": "(b) predictor's candidates alone",
             "c": "(c) all candidates, best by loss", "d": "(d) (c) + refinement"}


#: Preset groups for the per-group comparison, from each preset's own "preset_style" and its name:
#: Pad, Lead, Bass; "Keys" split into keys/plucks, acoustic imitations (PS-20 accordion, clarinet, oboe,
#: strings) and bells/mallets (the vibraphone, with the "Percussion" preset); "Sequence", "SFX" and
#: "Experiment" presets (held chords, arpeggios, effects) are "sequences/sfx".
GROUPS = {
    "pads": ("AdLibTextAdventure", "Desolate", "LexaproPad", "SoutheastDemonsPad"),
    "leads": ("AmourToujoursLead", "EggmanLead", "NarcoticLead", "PCMusicSupersaw", "UmbraLead", "VermExplodeLead"),
    "basses": ("NierBassLayerOne", "SalmoBass", "ThrillerFrog", "WeirdEDMBass"),
    "keys/plucks": ("BedroomPopDX", "CicadeChords", "FakeFullTines", "JX300P", "WalkingAwayChords", "Z3taTwang"),
    "acoustic": ("PS-20-Accordion", "PS-20-Clarinet", "PS-20-Oboe", "PS-20-Strings"),
    "bells/mallets": ("PS-20-Vibraphone", "MinipopsQuijada"),
    "sequences/sfx": ("AccidentalMagic", "AgeOfLove", "BullfrogsOnNeptune", "FunkyTown", "Progwank",
                      "PunchcardArpeggio"),
}


def group_of(name: str) -> str:
    """The preset group of a target (``GROUPS``); a clip that is not a human preset is "clips"."""
    return next((g for g, names in GROUPS.items() if name in names), "clips")


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
    if args.names:
        paths = [p for p in paths if p.stem in args.names.split(",")]
    renderer = _renderer()
    for path in paths:
        truth = load_vital(path)
        for note in args.notes:
            raw = renderer.render(truth, note, VEL, NOTE_S, RENDER_S)
            yield path.stem, note, analyze(raw, 44100, f"{path.stem}@{note}")


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


from vital_inverse.resynthesis import CLIP_START_KINDS as CLIP_KINDS  # noqa: E402


def _cpu_seconds(pool) -> float:
    """CPU seconds (user + system) used so far by this process and the pool's live workers (Linux /proc):
    the cost of a render whatever else shares the cores."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pool.worker_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def refine_from(chosen, a, budget: int, seed: int, pool, dims: str, plateau: int):
    """Refine the kept candidate as the app does (its loss the mean of 2 fresh renders is the incumbent);
    ``dims`` "clip": a start made of the clip searches only ``resynthesis.CLIP_SEARCHED``. Returns the
    matched audio of one fresh render of the result, the seconds (incumbent renders included), renders."""
    from dataclasses import replace

    from vital_inverse.refine import Budget, RefineConfig, refine
    from vital_inverse.resynthesis import clip_refine_config
    from vital_inverse.scoring import Evaluator

    t0, cpu0 = time.perf_counter(), _cpu_seconds(pool)
    ev0 = Evaluator(pool, a, 0.0)
    losses, _, audio = ev0.evaluate([chosen.preset] * 2)
    ok = [x for x in losses if math.isfinite(x)]
    incumbent = (float(np.mean(ok)), audio) if ok and audio is not None else None
    config = RefineConfig(plateau=plateau)  # plateau 0: the whole budget
    if dims == "clip" and chosen.source in CLIP_KINDS:
        config = clip_refine_config(config) if plateau else replace(clip_refine_config(), plateau=0)
    last = None
    gen = refine(a, [chosen.preset], Budget(renders=budget, seconds=None), seed=seed, renderer=pool,
                 config=config, incumbent=incumbent)
    try:
        for ev in gen:
            last = ev
    finally:
        gen.close()
    seconds, cpu = time.perf_counter() - t0, _cpu_seconds(pool) - cpu0
    fresh = _renderer().render(last.best, a.note, VEL, a.note_seconds, a.render_seconds)
    return match_audio(fresh, a.audio), seconds, cpu, int(last.renders) + 2, len(last.searched)


def run(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = PresetPredictor.load(args.checkpoint)
    pool = None
    if args.refine:
        from vital_inverse.synth import ParallelRenderer

        pool = ParallelRenderer()
        pool.warm()  # worker start-up (imports) is not a render's cost
    columns = ["target", "group", "note", "pitched", "winner", "n_keyframes", "resynth_s", "candidates_s", "refine_s",
               "refine_cpu_s", "refine_renders", "refine_dims", "total_s", "load", "c_mss_again"] + [
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
            every = retune_candidates(network + own, a, _renderer())
            chosen, losses, matched = best_of(every, a)
            own_i = [i for i, c in enumerate(every) if c.source in CLIP_KINDS]
            net_i = list(range(len(network)))
            row = {"target": name, "group": group_of(name), "note": note if note is not None else a.note, "pitched": a.pitched,
                   "winner": every[chosen].source, "resynth_s": round(resynth_s, 3)}
            table = next((c.preset.custom_wavetables[1] for c in own if 1 in c.preset.custom_wavetables), None)
            row["n_keyframes"] = len(table["groups"][0]["components"][0]["keyframes"]) if table else 0
            picks = {"a": min(own_i, key=lambda i: losses[i]) if own_i else None,
                     "b": min(net_i, key=lambda i: losses[i]), "c": chosen}
            for s, i in picks.items():
                if i is not None and matched[i] is not None:
                    for m, v in score_metrics(matched[i], a.audio).items():
                        row[f"{s}_{m}"] = v
            c_again = match_audio(_renderer().render(every[chosen].preset, a.note, VEL, a.note_seconds,
                                                     a.render_seconds), a.audio)
            row["c_mss_again"] = score_metrics(c_again, a.audio)["mss"]  # run-to-run noise of (c)
            row["candidates_s"] = round(time.perf_counter() - t0, 3)
            if pool is not None:
                audio, row["refine_s"], row["refine_cpu_s"], row["refine_renders"], row["refine_dims"] = refine_from(
                    every[chosen], a, args.refine, args.seed, pool, args.dims, args.plateau)
                row["total_s"] = round(time.perf_counter() - t0, 3)
                row["load"] = round(os.getloadavg()[0], 2)
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
    noise = [abs(float(r["c_mss"]) - float(r["c_mss_again"])) for r in rows if "c_mss_again" in r and "c_mss" in r]
    if noise:
        lines += ["", f"Run-to-run noise of (c): median |MSS of a second render - first| = {np.median(noise):.2f} dB "
                      f"(90th percentile {np.percentile(noise, 90):.2f} dB, {len(noise)} targets)."]
    groups = sorted({r["group"] for r in rows})
    if len(groups) > 1:
        lines += ["", "Median MSS (dB) per preset group (c - b: the new candidates against the predictor's):", "",
                  "| group | targets | " + " | ".join(sets) + " | c - b |", "|---|---|" + "---|" * len(sets) + "---|"]
        for g in groups:
            sub = [r for r in rows if r["group"] == g]
            cb = _median(sub, "c_mss") - _median(sub, "b_mss")
            lines.append(f"| {g} | {len(sub)} | " + " | ".join(f"{_median(sub, f'{s}_mss'):.2f}" for s in sets)
                         + f" | {cb:+.2f} |")
    if "d" in sets:
        timed = [r for r in rows if r.get("refine_s") is not None]
        per = [1000 * float(r["refine_s"]) / max(int(r["refine_renders"]), 1) for r in timed]
        cpu = [1000 * float(r["refine_cpu_s"]) / max(int(r["refine_renders"]), 1) for r in timed]
        lines += ["", f"Refinement: median {_median(timed, 'refine_s'):.1f} s wall "
                      f"(max {max(float(r['refine_s']) for r in timed):.1f}), median {_median(timed, 'refine_renders'):.0f} "
                      f"renders{' (plateau stop)' if args.plateau else ''}, {_median(timed, 'refine_dims'):.0f} dimensions searched; "
                      f"{np.median(per):.0f} ms of wall time per render on 2 workers, {np.median(cpu):.0f} ms of CPU time per render "
                      f"(workers + this process: 600 renders on 2 idle cores would take "
                      f"{600 * np.median(cpu) / 2000:.1f} s); from the clip's analysis to the "
                      f"refined preset (all candidates made, rendered, scored, then refined) median "
                      f"{_median(timed, 'total_s'):.1f} s (max {max(float(r['total_s']) for r in timed):.1f}); "
                      f"load average (1 min) {min(float(r['load']) for r in timed):.1f}-"
                      f"{max(float(r['load']) for r in timed):.1f} during the run."]
    wins: dict[str, int] = {}
    for r in rows:
        wins[r["winner"]] = wins.get(r["winner"], 0) + 1
    lines += ["", "Kind of start kept in (c): " + ", ".join(f"{k} {v}" for k, v in sorted(wins.items(), key=lambda x: -x[1])),
              "", "| target | group | note | winner | MSS a | MSS b | MSS c" + (" | MSS d" if "d" in sets else "") + " | keyframes |",
              "|---|---|---|---|---|---|---" + ("|---" if "d" in sets else "") + "|---|"]
    for r in rows:
        d = f" | {float(r['d_mss']):.2f}" if "d" in sets and "d_mss" in r else (" | " if "d" in sets else "")
        a = f"{float(r['a_mss']):.2f}" if "a_mss" in r else ""
        lines.append(f"| {r['target']} | {r['group']} | {r['note']} | {r['winner']} | {a} | {float(r['b_mss']):.2f} | "
                     f"{float(r['c_mss']):.2f}{d} | {r['n_keyframes']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("presets", "clips"))
    ap.add_argument("--notes", default="48,60,72", help="MIDI notes for the preset set")
    ap.add_argument("--presets", type=int, default=0, help="spread this many presets over the set (0: all)")
    ap.add_argument("--names", default="", help="only these presets (comma-separated names)")
    ap.add_argument("--dir", default="examples/recordings", help="folder of clips for 'clips'")
    ap.add_argument("--k", type=int, default=4, help="network candidates")
    ap.add_argument("--refine", type=int, default=0, help="renders of refinement for (d) (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dims", choices=("clip", "reachable"), default="clip",
                    help="refinement from a clip start: 'clip' searches resynthesis.CLIP_SEARCHED, 'reachable' all")
    ap.add_argument("--plateau", type=int, default=8,
                    help="stop refinement after this many generations without a 0.5%% better loss (0: never)")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--out", default="runs/resynthesis")
    args = ap.parse_args(argv)
    args.notes = [int(n) for n in str(args.notes).split(",") if n.strip()]
    run(args)


if __name__ == "__main__":
    main()
