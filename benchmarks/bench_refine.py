# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmarks for CMA-ES refinement (vital_inverse.refine); each prints Markdown.

Targets are the human presets in shared/data/human-presets rendered at MIDI
60 (velocity 0.8, 1.5 s held, 2.0 s long) with ``Renderer().render``,
peak-normalised to -1 dBFS like intake, and wrapped in an ``Analysis`` with
note 60, note_seconds 1.5 and render_seconds 2.0 (built directly, so intake's
pitch/length estimates do not enter the refinement numbers).

    python benchmarks/bench_refine.py speed   --presets 2 --budget 120
    python benchmarks/bench_refine.py quality --presets 8 --budget 600 --start init
    python benchmarks/bench_refine.py quality --presets 32 --budget 600 --start predict
    python benchmarks/bench_refine.py tune    --presets 3 --budget 300
    python benchmarks/bench_refine.py noise   --presets 8 --repeats 6
    python benchmarks/bench_refine.py variants --presets 8 --budget 600   # dims / log-mel / rescore

Numbers depend on machine load: say what else was running.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"

from vital_inverse import metrics
from vital_inverse.intake import TARGET_PEAK, Analysis
from vital_inverse.params import default_space
from vital_inverse.preset import Preset, load_vital
from vital_inverse.refine import (
    DEFAULT_POPSIZE,
    DEFAULT_SIGMA0,
    Budget,
    RefineConfig,
    refine,
)
from vital_inverse.scoring import Evaluator, match_to_target
from vital_inverse.synth import ParallelRenderer, Renderer, RenderJob

NOTE, VEL, NOTE_S, RENDER_S = 60, 0.8, 1.5, 2.0
LENGTHS = [NOTE_S, RENDER_S]  # --note-seconds / --render-seconds


def preset_paths(n: int | None, names: str | None = None) -> list[Path]:
    paths = sorted(HUMAN.glob("*.vital"))
    if names:
        want = [s.strip() for s in names.split(",") if s.strip()]
        paths = [p for p in paths if p.stem in want]
    elif n is not None and n < len(paths):
        # spread over the (alphabetical) list rather than taking the first n
        idx = np.linspace(0, len(paths) - 1, n).round().astype(int)
        paths = [paths[i] for i in idx]
    return paths


def make_target(path: Path, renderer: Renderer) -> tuple[Preset, Analysis]:
    preset = load_vital(path)
    NOTE_S, RENDER_S = LENGTHS
    audio = renderer.render(preset, NOTE, VEL, NOTE_S, RENDER_S)
    peak = float(np.max(np.abs(audio)))
    audio = (audio * (TARGET_PEAK / peak)).astype(np.float32) if peak > 0 else audio
    return preset, Analysis(audio, 44100, NOTE, 0.0, 1.0, True, 261.63, NOTE_S, RENDER_S, 1.0, path.stem)


def perturbed(preset: Preset, std: float, seed: int) -> Preset:
    """The true preset with its audible continuous parameters moved by N(0, std) (normalised units)."""
    space = default_space()
    audible = space.audible(preset.values)
    x = space.continuous_vector(preset.values)
    rng = np.random.default_rng(seed)
    for i, p in enumerate(space.continuous):
        if p.name in audible:
            x[i] = np.clip(x[i] + std * rng.standard_normal(), 0.0, 1.0)
    return preset.with_values(space.with_continuous(preset.values, x))


def starts_for(kind: str, truth: Preset, target: Analysis, seed: int, k: int) -> list[Preset]:
    if kind == "init":
        return [Preset.init()]
    if kind == "perturbed":
        return [perturbed(truth, 0.1, seed)]
    if kind == "predict":
        predictor = getattr(starts_for, "_predictor", None)
        if predictor is None:
            from vital_inverse import predict  # the lead's predictor

            cls = getattr(predict, "PresetPredictor", None) or predict.Predictor
            predictor = starts_for._predictor = cls.load(starts_for.checkpoint)
        return [c.preset for c in predictor.predict(target, k)]
    raise SystemExit(f"unknown start {kind!r}")


#: Fresh renders behind each reported MSS/MRSTFT: one render of a noisy preset (unison, noise) moves MSS
#: by up to ~1-2 dB (AccidentalMagic), so a single render would make a lucky or unlucky row.
SCORE_RENDERS = 3


def fresh_scores(preset: Preset, target: Analysis, pr: ParallelRenderer) -> tuple[float, float]:
    """Mean MSS and MRSTFT of ``SCORE_RENDERS`` new renders of ``preset`` against the target.

    Not counted in the refinement budget: this is the measurement, not the search.
    MRSTFT after scaling to the target's RMS, as the refinement loss does.
    """
    jobs = [RenderJob(preset, target.note, VEL, target.note_seconds, target.render_seconds)] * SCORE_RENDERS
    matched = [match_to_target(a, target.audio) for a in pr.render_jobs(jobs)]
    mss = [metrics.mss(a, target.audio) for a in matched]  # level-free: scaling does not change it
    mr = [metrics.mrstft(a, target.audio) for a in matched]
    return float(np.mean(mss)), float(np.mean(mr))


def run_one(target, starts, budget, seed, pr, popsize=None, sigma0=None, config=None):
    """Run refinement to the end; return a summary dict."""
    t0 = time.monotonic()
    config = config or RefineConfig()
    events = list(refine(target, starts, budget, seed=seed, renderer=pr, popsize=popsize, sigma0=sigma0, config=config))
    wall = time.monotonic() - t0
    first, last = events[0], events[-1]
    red_final = first.best_loss - last.best_loss
    t90 = r90 = float("nan")
    if red_final > 0:
        for e in events:
            if first.best_loss - e.best_loss >= 0.9 * red_final:
                t90, r90 = e.elapsed, e.renders
                break
    mss0, mr0 = fresh_scores(first.best, target, pr)
    mss1, mr1 = fresh_scores(last.best, target, pr)
    return {
        "events": events,
        "wall": wall,
        "renders": last.renders,
        "loss0": first.best_loss,
        "loss1": last.best_loss,
        "mss0": mss0,
        "mss1": mss1,
        "mr0": mr0,
        "mr1": mr1,
        "t90": t90,
        "r90": r90,
        "reason": last.reason,
        "dims": len(last.searched),
    }


def med(xs):
    xs = [x for x in xs if not np.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def load_note(args) -> str:
    import os

    la = os.getloadavg()
    return f"load average at start {la[0]:.1f}/{la[1]:.1f}/{la[2]:.1f} on {os.cpu_count()} cores"


# --------------------------------------------------------------------------


def cmd_quality(args) -> None:
    paths = preset_paths(args.presets, args.names)
    methods = args.methods.split(",")
    r = Renderer()
    print(f"\n### Refinement quality: start={args.start}, {args.budget} renders, {len(paths)} presets, seed {args.seed}\n")
    print(f"({load_note(args)}; popsize {args.popsize or DEFAULT_POPSIZE}, sigma0 {args.sigma0 or DEFAULT_SIGMA0})\n")
    hdr = "| preset | start MSS | start MRSTFT | " + " | ".join(
        f"{m} MSS | {m} MRSTFT | {m} loss | {m} s | {m} t90 s" for m in methods) + " |"
    print(hdr)
    print("|" + "---|" * (3 + 5 * len(methods)))
    rows = []
    with ParallelRenderer(args.workers) as pr:
        pr.warm()
        for i, path in enumerate(paths):
            truth, target = make_target(path, r)
            starts = starts_for(args.start, truth, target, args.seed + i, args.k)
            res = {}
            for m in methods:
                res[m] = run_one(target, starts, Budget(renders=args.budget), args.seed, pr, args.popsize, args.sigma0,
                                 RefineConfig(method=m))
            first = res[methods[0]]
            cells = [path.stem, f"{first['mss0']:.2f}", f"{first['mr0']:.3f}"]
            for m in methods:
                x = res[m]
                cells += [f"{x['mss1']:.2f}", f"{x['mr1']:.3f}", f"{x['loss1']:.3f}", f"{x['wall']:.1f}", f"{x['t90']:.1f}"]
            print("| " + " | ".join(cells) + " |", flush=True)
            rows.append(res)
    print()
    print("| summary (median over presets) | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    first = methods[0]
    print("| start MSS dB | " + " | ".join(f"{med([r[m]['mss0'] for r in rows]):.2f}" for m in methods) + " |")
    print("| final MSS dB | " + " | ".join(f"{med([r[m]['mss1'] for r in rows]):.2f}" for m in methods) + " |")
    print("| start MRSTFT | " + " | ".join(f"{med([r[m]['mr0'] for r in rows]):.3f}" for m in methods) + " |")
    print("| final MRSTFT | " + " | ".join(f"{med([r[m]['mr1'] for r in rows]):.3f}" for m in methods) + " |")
    print("| wall s | " + " | ".join(f"{med([r[m]['wall'] for r in rows]):.1f}" for m in methods) + " |")
    print("| renders | " + " | ".join(f"{med([r[m]['renders'] for r in rows]):.0f}" for m in methods) + " |")
    print("| time to 90% of the loss reduction, s | " + " | ".join(f"{med([r[m]['t90'] for r in rows]):.1f}" for m in methods) + " |")
    print("| renders to 90% of the loss reduction | " + " | ".join(f"{med([r[m]['r90'] for r in rows]):.0f}" for m in methods) + " |")
    print("| searched dims | " + " | ".join(f"{med([r[m]['dims'] for r in rows]):.0f}" for m in methods) + " |")
    if "cma" in methods and "random" in methods:
        n = len(rows)
        by_loss = sum(r["cma"]["loss1"] < r["random"]["loss1"] for r in rows)
        by_mss = sum(r["cma"]["mss1"] < r["random"]["mss1"] for r in rows)
        print(f"\nCMA-ES beats random search on {by_loss}/{n} presets by final loss (honest MRSTFT) "
              f"and on {by_mss}/{n} by MSS.")


def cmd_speed(args) -> None:
    """Renders/s inside refine vs ParallelRenderer.render_jobs on the same populations, same run.

    Interleaved: after each generation the loop is paused and that generation's
    population is rendered again through ``render_jobs`` (raw, no loss), so a
    change in machine load hits both measurements alike.
    """
    paths = preset_paths(args.presets, args.names)
    r = Renderer()
    print(f"\n### Refinement speed: {args.budget} renders per run, {len(paths)} presets, start={args.start}\n")
    print(f"({load_note(args)})\n")
    print("| preset | in-loop renders/s | raw render_jobs renders/s | ratio | loss+bookkeeping share |")
    print("|---|---|---|---|---|")
    ratios = []
    space = default_space()
    with ParallelRenderer(args.workers) as pr:
        pr.warm()
        for i, path in enumerate(paths):
            truth, target = make_target(path, r)
            starts = starts_for(args.start, truth, target, args.seed + i, args.k)
            # warm the workers' scorer for this target outside the timing
            Evaluator(pr, target, 0.0).evaluate(starts[:1] * pr.workers)
            gen = refine(target, starts, Budget(renders=args.budget), seed=args.seed, renderer=pr)
            first = prev = next(gen)
            base = first.best  # the start actually searched from (filter opened if it was off)
            idx = [j for j, p in enumerate(space.continuous) if p.name in first.searched]
            x_base = space.continuous_vector(dict(base.values))
            loop_t = raw_t = 0.0
            loop_n = raw_n = 0
            while not prev.done:
                t = time.monotonic()
                e = next(gen)
                loop_t += time.monotonic() - t
                loop_n += e.renders - prev.renders
                prev = e
                jobs = []
                for x in e.population:
                    full = x_base.copy()
                    full[idx] = x
                    preset = base.with_values(space.with_continuous(dict(base.values), full))
                    jobs.append(RenderJob(preset, NOTE, VEL, target.note_seconds, target.render_seconds))
                t = time.monotonic()
                pr.render_jobs(jobs)
                raw_t += time.monotonic() - t
                raw_n += len(jobs)
            gen.close()
            loop_rate, raw_rate = loop_n / loop_t, raw_n / raw_t
            ratio = loop_rate / raw_rate
            ratios.append(ratio)
            print(f"| {path.stem} | {loop_rate:.1f} | {raw_rate:.1f} | {ratio:.0%} | {1 - ratio:.0%} |", flush=True)
    print(f"\nMedian in-loop / raw throughput: {med(ratios):.0%} (in-loop counts its re-scoring renders; "
          "raw renders the same populations without loss; interleaved generation by generation).")


def cmd_tune(args) -> None:
    paths = preset_paths(args.presets, args.names)
    r = Renderer()
    pops = [int(x) for x in args.popsizes.split(",")]
    sigmas = [float(x) for x in args.sigmas.split(",")]
    starts_kinds = args.starts.split(",")
    print(f"\n### popsize x sigma0: {args.budget} renders, {len(paths)} presets ({', '.join(p.stem for p in paths)})\n")
    print(f"({load_note(args)})\n")
    targets = [make_target(p, r) for p in paths]
    results = {}
    with ParallelRenderer(args.workers) as pr:
        pr.warm()
        for kind in starts_kinds:
            for ps in pops:
                for s0 in sigmas:
                    out = []
                    for i, (truth, target) in enumerate(targets):
                        starts = starts_for(kind, truth, target, args.seed + i, args.k)
                        out.append(run_one(target, starts, Budget(renders=args.budget), args.seed, pr, ps, s0))
                    results[(kind, ps, s0)] = out
                    print(f"  {kind} popsize {ps} sigma0 {s0}: loss "
                          + " ".join(f"{o['loss0']:.2f}->{o['loss1']:.2f}" for o in out)
                          + "  MSS " + " ".join(f"{o['mss0']:.1f}->{o['mss1']:.1f}" for o in out), file=sys.stderr, flush=True)
    for kind in starts_kinds:
        print(f"\nStart: {kind}. Cells: mean final loss (honest MRSTFT) / mean final MSS dB over the presets.\n")
        print("| popsize \\ sigma0 | " + " | ".join(str(s) for s in sigmas) + " |")
        print("|---|" + "---|" * len(sigmas))
        for ps in pops:
            cells = []
            for s0 in sigmas:
                out = results[(kind, ps, s0)]
                cells.append(f"{np.mean([o['loss1'] for o in out]):.3f} / {np.mean([o['mss1'] for o in out]):.2f}")
            print(f"| {ps} | " + " | ".join(cells) + " |")
        start_loss = np.mean([o["loss0"] for o in results[(kind, pops[0], sigmas[0])]])
        start_mss = np.mean([o["mss0"] for o in results[(kind, pops[0], sigmas[0])]])
        print(f"\n(start: loss {start_loss:.3f}, MSS {start_mss:.2f} dB)")


def cmd_variants(args) -> None:
    """Audible dims vs all, log-mel term, re-scoring: same presets, budget and seed."""
    paths = preset_paths(args.presets, args.names)
    r = Renderer()
    variants = {
        "baseline (sep-CMA, reachable dims, MRSTFT, rescore 2, open filter)": RefineConfig(),
        "full-covariance CMA-ES": RefineConfig(diagonal=False),
        "race of the 2 best starts (30% of the budget)": RefineConfig(race=2),
        "+ log-mel term (w 1.0)": RefineConfig(logmel_weight=1.0),
        "+ log-mel term (w 3.0)": RefineConfig(logmel_weight=3.0),
        "audible dims": RefineConfig(dims="audible"),
        "all continuous dims": RefineConfig(dims="all"),
        "+ log-mel term (w 0.1)": RefineConfig(logmel_weight=0.1),
        "+ log-mel term (w 0.3)": RefineConfig(logmel_weight=0.3),
        "no re-scoring": RefineConfig(rescore=0),
        "no open filter": RefineConfig(open_filter=False),
    }
    chosen = [v.strip() for v in args.variants.split(",")] if args.variants else None
    if chosen:
        variants = {k: v for i, (k, v) in enumerate(variants.items()) if i == 0 or any(c in k for c in chosen)}
    print(f"\n### Variants: start={args.start}, {args.budget} renders, {len(paths)} presets, seed {args.seed}\n")
    print(f"({load_note(args)})\n")
    res = {k: [] for k in variants}
    with ParallelRenderer(args.workers) as pr:
        pr.warm()
        for i, path in enumerate(paths):
            truth, target = make_target(path, r)
            starts = starts_for(args.start, truth, target, args.seed + i, args.k)
            for name, cfg in variants.items():
                o = run_one(target, starts, Budget(renders=args.budget), args.seed, pr, args.popsize, args.sigma0, cfg)
                res[name].append(o)
                print(f"  {path.stem} {name}: MSS {o['mss0']:.2f}->{o['mss1']:.2f} MRSTFT {o['mr0']:.3f}->{o['mr1']:.3f}",
                      file=sys.stderr, flush=True)
    print("| variant | median final MSS dB | mean final MSS dB | median final MRSTFT | median wall s | dims |")
    print("|---|---|---|---|---|---|")
    for name, out in res.items():
        print(f"| {name} | {med([o['mss1'] for o in out]):.2f} | {np.mean([o['mss1'] for o in out]):.2f} | "
              f"{med([o['mr1'] for o in out]):.3f} | {med([o['wall'] for o in out]):.1f} | {med([o['dims'] for o in out]):.0f} |")
    base = next(iter(res))
    for name, out in list(res.items())[1:]:
        wins = sum(a["mss1"] < b["mss1"] for a, b in zip(out, res[base]))
        print(f"\n{name}: lower MSS than the baseline on {wins}/{len(out)} presets", end="")
    print()


def cmd_noise(args) -> None:
    """The same preset rendered N times: spread of the loss against one render of it."""
    paths = preset_paths(args.presets, args.names)
    r = Renderer()
    print(f"\n### Render-to-render loss noise: {args.repeats} renders of each preset vs one render of it\n")
    print("| preset | loss mean | loss sd | sd / mean | MSS mean dB | Init loss |")
    print("|---|---|---|---|---|---|")
    sds, rel = [], []
    with ParallelRenderer(args.workers) as pr:
        for path in paths:
            truth, target = make_target(path, r)
            ev = Evaluator(pr, target, 0.0)
            ls, _, _ = ev.evaluate([truth] * args.repeats)
            auds = pr.render_many([truth] * min(3, args.repeats), NOTE, VEL, target.note_seconds, target.render_seconds)
            ms = [metrics.mss(a, target.audio) for a in auds]
            li, _, _ = ev.evaluate([Preset.init()])
            sds.append(float(np.std(ls, ddof=1)))
            rel.append(sds[-1] / float(np.mean(ls)))
            print(f"| {path.stem} | {np.mean(ls):.3f} | {sds[-1]:.3f} | {rel[-1]:.1%} | {np.mean(ms):.2f} | {li[0]:.3f} |", flush=True)
    print(f"\nMedian loss sd {med(sds):.3f}, median relative sd {med(rel):.1%}.")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["quality", "speed", "tune", "variants", "noise"])
    ap.add_argument("--presets", type=int, default=None, help="number of human presets (spread over the list); default all 32")
    ap.add_argument("--names", default=None, help="comma-separated preset stems instead of --presets")
    ap.add_argument("--budget", type=int, default=600, help="renders per refinement run")
    ap.add_argument("--start", default="init", choices=["init", "perturbed", "predict"])
    ap.add_argument("--k", type=int, default=4, help="predictor candidates for --start predict")
    ap.add_argument("--checkpoint", default=None, help="predictor checkpoint (default: the shipped one)")
    ap.add_argument("--methods", default="cma,random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--popsize", type=int, default=None)
    ap.add_argument("--sigma0", type=float, default=None)
    ap.add_argument("--popsizes", default="8,12,16")
    ap.add_argument("--sigmas", default="0.1,0.2,0.3")
    ap.add_argument("--starts", default="init,perturbed")
    ap.add_argument("--variants", default=None, help="substrings of variant names to run (default all)")
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--note-seconds", type=float, default=NOTE_S, help="held length of the target note")
    ap.add_argument("--render-seconds", type=float, default=RENDER_S, help="rendered length of the target note")
    args = ap.parse_args(argv)
    LENGTHS[:] = [args.note_seconds, args.render_seconds]
    starts_for.checkpoint = args.checkpoint
    if LENGTHS != [NOTE_S, RENDER_S]:
        print(f"(targets: {args.note_seconds} s held, {args.render_seconds} s rendered)")
    {"quality": cmd_quality, "speed": cmd_speed, "tune": cmd_tune, "variants": cmd_variants, "noise": cmd_noise}[args.command](args)


if __name__ == "__main__":
    main()
