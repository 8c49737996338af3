# SPDX-License-Identifier: GPL-3.0-or-later
"""Candidate sources compared, predict only: regression heads, retrieval, the
generative head at K = 1, 8, 32, and all candidates together; plus the latency
of sampling K and rendering them as the app does.

    python benchmarks/bench_generative.py --data data/synth-v3 --sets human,synthetic --limit-synthetic 40

For every target (an item at a note, analysed as a user's clip, as
``vital-inverse evaluate`` does) the candidates are rendered once each in
the render workers; each method keeps the lowest-MRSTFT (refinement loss)
candidate of its own subset and is scored on it:

* ``heads``: the network's 4 most probable candidates (``predict --k 4``
  without retrieval); ``heads_top1`` its first;
* ``retrieval``: the checkpoint's 2 nearest training presets (log-mel PCA);
* ``clip_own``: the starts made of the clip itself (``resynthesis.clip_candidates``);
* ``gen_k1``, ``gen_k8``, ``gen_k32``: the first 1, 8, 32 samples of the
  generative head (seeded, so K=8 is a prefix of K=32);
* ``all``: every candidate above (what ``predict`` now offers).

Tables: mean [95% CI] (item-level cluster bootstrap) and median per metric,
as in bench_eval. Latency: wall clock of sampling K and of rendering + scoring
the K candidates in a ParallelRenderer (``scoring.score_presets``, the
app's path), with and without the app's retune renders.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections import deque
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"

from bench_eval import metric_tables, per_note_table  # noqa: E402

from vital_inverse import evaluate as ev  # noqa: E402
from vital_inverse.tuning import retune  # noqa: E402

GEN_KS = (1, 8, 32)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: the shipped one)")
    p.add_argument("--data", type=Path, default=None, help="generated dataset whose test split is the synthetic set")
    p.add_argument("--human", type=Path, default=HUMAN)
    p.add_argument("--sets", default="human,synthetic")
    p.add_argument("--notes", default="48,60,72", help="notes of the human presets")
    p.add_argument("--limit", type=int, default=None, help="at most this many human presets")
    p.add_argument("--limit-synthetic", type=int, default=40, help="at most this many synthetic test presets")
    p.add_argument("--k-heads", type=int, default=4)
    p.add_argument("--temperature", type=float, default=None, help="starting-noise scale of the flow (default: its config)")
    p.add_argument("--retune", action="store_true",
                   help="shift every candidate onto the clip's f0 first, as the app does (tuning.retune; one render each)")
    p.add_argument("--gen-only", action="store_true", help="render only the generative samples (a sampling variant)")
    p.add_argument("--retrieval", type=int, default=2)
    p.add_argument("--retrieval-wide", type=int, default=0,
                   help="also score the R nearest training presets as 'retrieval_rR' (a control for anchored samples)")
    p.add_argument("--anchors", type=int, default=0,
                   help="also score K samples started from the A nearest training presets ('gen_anchor_kK')")
    p.add_argument("--t0", default="0.6,0.8", help="where anchored samples start on the flow's path (cycled)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--latency-targets", type=int, default=8, help="human presets at MIDI 60 timed for K=32 (0: none)")
    p.add_argument("--refine-presets", type=int, default=0,
                   help="human presets at MIDI 60 refined from the best candidate, with and without categorical moves")
    p.add_argument("--refine-budget", type=int, default=600)
    p.add_argument("--dump", action="store_true",
                   help="also write every candidate's selection loss and MSS per group to OUT/SET-candidates.jsonl")
    p.add_argument("--out", type=Path, default=Path("runs/bench_generative"))
    return p


def candidates(predictor, analysis, k_heads: int, retrieval: int, k_gen: int, temperature: float | None = None,
               gen_only: bool = False, anchors: int = 0, anchor_t0: tuple[float, ...] = (), retrieval_wide: int = 0):
    """(presets, groups, sampling seconds) for one analysed target."""
    if gen_only:
        t0 = time.perf_counter()
        gen = [c.preset for c in predictor.generative(analysis, k_gen, temperature=temperature)]
        return gen, {f"gen_k{k}": list(range(k)) for k in GEN_KS if k <= len(gen)}, time.perf_counter() - t0
    heads = [c.preset for c in predictor.predict(analysis, k=k_heads, retrieval=0, generative=0, resynthesis=False)]
    retr = [c.preset for c in predictor.predict(analysis, k=1, retrieval=retrieval, generative=0, resynthesis=False)
            if c.source == "retrieval"]
    own = [c.preset for c in predictor.predict(analysis, k=1, retrieval=0, generative=0, resynthesis=True)
           if c.source not in ("network", "retrieval")]
    t0 = time.perf_counter()
    gen = ([c.preset for c in predictor.generative(analysis, k_gen, temperature=temperature)]
           if predictor.flow is not None else [])
    sample_s = time.perf_counter() - t0
    presets = heads + retr + own + gen
    h, r = list(range(len(heads))), list(range(len(heads), len(heads) + len(retr)))
    o = list(range(len(heads) + len(retr), len(heads) + len(retr) + len(own)))
    g0 = len(heads) + len(retr) + len(own)
    groups = {"heads": h, "heads_top1": h[:1], "retrieval": r}
    if own:
        groups["clip_own"] = o
    for k in GEN_KS:
        if gen and k <= len(gen):
            groups[f"gen_k{k}"] = list(range(g0, g0 + k))
    groups["all"] = list(range(len(presets)))
    if anchors > 0 and predictor.flow is not None:
        anch = [c.preset for c in predictor.generative(analysis, k_gen, temperature=temperature, anchors=anchors,
                                                     t0=anchor_t0)]
        for k in GEN_KS:
            if k <= len(anch):
                groups[f"gen_anchor_k{k}"] = list(range(len(presets), len(presets) + k))
        presets = presets + anch
    if retrieval_wide > 0:
        wide = [c.preset for c in predictor.predict(analysis, k=1, retrieval=retrieval_wide, generative=0,
                                                   resynthesis=False) if c.source == "retrieval"]
        groups[f"retrieval_r{retrieval_wide}"] = list(range(len(presets), len(presets) + len(wide)))
        presets = presets + wide
    return presets, groups, sample_s


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v.strip())


def _renders(pool, a):
    """render(presets) -> renders at the analysed note and lengths, in the pool (what ``tuning.retune`` needs)."""
    from vital_inverse.synth import RenderJob

    return lambda ps: pool.render_jobs([RenderJob(p, int(a.note), ev.VELOCITY, float(a.note_seconds),
                                                  float(a.render_seconds)) for p in ps], raise_errors=False)


def run_set(eset, predictor, pool, args, title: str) -> list[dict]:
    from vital_inverse.params import default_space

    space = default_space()
    rows: list[dict] = []
    targets = deque(eset.targets())
    preparing: deque = deque()
    scoring: deque = deque()
    window = 2 * max(1, pool.workers if hasattr(pool, "workers") else 2)

    def feed() -> None:
        while targets and len(preparing) + len(scoring) < window:
            item, note = targets.popleft()
            preparing.append(pool.submit(ev.prepare_target, eset.kind, item, note, eset.velocity, eset.note_seconds,
                                         eset.render_seconds, eset.seed, False))

    def collect(block: bool) -> None:
        while scoring and (block or scoring[0][0].done()):
            fut, t, presets, sample_s = scoring.popleft()
            res = fut.result()
            if args.dump:
                with open(args.out / f"{eset.kind}-candidates.jsonl", "a") as f:
                    f.write(json.dumps({"item": t.item.id, "note": t.note, "groups": {
                        m: {"loss": s.losses, "mss": s.mss_each} for m, s in res.items() if not s.error}}) + "\n")
            for m, s in res.items():
                row = {"set": eset.kind, "item": t.item.id, "note": t.note, "method": m, "error": s.error,
                       "chosen": s.chosen, "renders": len(presets), "sample_s": sample_s if m.startswith("gen") else ""}
                if s.metrics:
                    row.update(s.metrics)
                    if eset.kind == "synthetic":
                        row["param_mae"], row["cat_acc"] = ev.param_errors(space, t.truth.values,
                                                                           presets[s.chosen].values)
                rows.append(row)
            print(f"{title}: {len({(r['item'], r['note']) for r in rows})}/{len(eset.targets())} targets", flush=True)

    while targets or preparing or scoring:
        feed()
        if preparing and (preparing[0].done() or not scoring):
            t = preparing.popleft().result()
            if t.error:
                print(f"skipped {t.item.id}@{t.note}: {t.error}", flush=True)
            else:
                a = t.analysis
                presets, groups, sample_s = candidates(predictor, a, args.k_heads, args.retrieval, max(GEN_KS),
                                                       args.temperature, args.gen_only, args.anchors,
                                                       _floats(args.t0), args.retrieval_wide)
                if args.retune:
                    presets = retune(presets, a, _renders(pool, a))
                scoring.append((pool.submit(ev.score_groups, a.audio, a.note, a.note_seconds, a.render_seconds,
                                            presets, groups, args.dump), t, presets, sample_s))
            feed()
        collect(block=not preparing)
    return rows


def human_analyses(pool, args, limit: int):
    """(item, note, analysis) of the first ``limit`` human presets rendered at MIDI 60 (failed renders skipped)."""
    eset = ev.parse_set(f"presets:{args.human}", "60", limit)
    for item, note in eset.targets():
        t = pool.submit(ev.prepare_target, "presets", item, note, eset.velocity, eset.note_seconds,
                        eset.render_seconds, 0, False).result()
        if not t.error:
            yield item, note, t.analysis


def latency(predictor, pool, args) -> str:
    """Sampling K=32 and rendering + scoring the 32 (app path), on human presets at MIDI 60."""
    from vital_inverse import scoring, session

    out = {"sample": [], "render": [], "retune": []}
    for _, _, a in human_analyses(pool, args, args.latency_targets):
        if not out["sample"]:
            predictor.generative(a, 32)  # torch's one-off costs of a first call stay out of the timing
        t0 = time.perf_counter()
        cands = predictor.generative(a, 32)
        out["sample"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tuned = session.retune_candidates(cands, a, pool)
        out["retune"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scoring.score_presets(pool, [c.preset for c in tuned], a)
        out["render"].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in out.items() if v}
    n = len(out["sample"])
    return ("| step (K=32, median of %d human presets at MIDI 60) | seconds |\n|---|---|\n" % n
            + f"| sample 32 presets (flow, {predictor.flow.cfg.steps} Heun steps) | {med['sample']:.3f} |\n"
            + f"| render + score 32 in the workers (app: `scoring.score_presets`) | {med['render']:.2f} |\n"
            + f"| sample + render + score | {med['sample'] + med['render']:.2f} |\n"
            + f"| retune renders the app adds before that (`retune_candidates`, one render each) | {med['retune']:.2f} |\n"
            + f"| total as the app runs it | {med['sample'] + med['retune'] + med['render']:.2f} |\n")


def refine_compare(predictor, pool, args) -> tuple[str, list[dict]]:
    """Refinement from the best of all candidates, with and without categorical moves (``moves.py``)."""
    from vital_inverse.moves import CategoricalMoves
    from vital_inverse.refine import Budget, RefineConfig, refine

    rows = []
    for item, note, a in human_analyses(pool, args, args.refine_presets):
        presets, groups, _ = candidates(predictor, a, args.k_heads, args.retrieval, max(GEN_KS))
        best = pool.submit(ev.score_groups, a.audio, a.note, a.note_seconds, a.render_seconds, presets,
                           {"all": groups["all"]}).result()["all"]
        start = presets[best.chosen]
        base = {"set": "presets", "item": item.id, "note": note}
        rows.append({**base, "method": "predict (all candidates)", **(best.metrics or {})})
        variants = (("refine", RefineConfig()),
                    ("refine + categorical moves", RefineConfig(moves=CategoricalMoves.for_clip(predictor, a))))
        for name, cfg in variants:
            t0 = time.perf_counter()
            last = None
            for e in refine(a, [start], Budget(renders=args.refine_budget, seconds=None), seed=0, renderer=pool,
                            config=cfg):
                last = e
            s = pool.submit(ev.score_presets, a.audio, a.note, a.note_seconds, a.render_seconds, [last.best]).result()
            rows.append({**base, "method": name, **(s.metrics or {}), "error": s.error, "renders": last.renders,
                         "refine_loss": last.best_loss, "seconds": time.perf_counter() - t0})
        print(f"refine: {item.id} done", flush=True)
    title = f"Refinement, {args.refine_budget} renders, {len({r['item'] for r in rows})} human presets at MIDI 60"
    return metric_tables(rows, title), rows


def write_rows(rows: list[dict], path: Path) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from vital_inverse.predict import PresetPredictor
    from vital_inverse.synth import ParallelRenderer

    predictor = PresetPredictor.load(args.checkpoint)
    if predictor.flow is None:
        print("note: this checkpoint has no generative head; only heads/retrieval are compared")
    args.out.mkdir(parents=True, exist_ok=True)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    md = [f"Command: `python benchmarks/bench_generative.py {' '.join(argv if argv is not None else sys.argv[1:])}`", ""]
    t_start = time.perf_counter()
    with ParallelRenderer(args.workers) as pool:
        pool.warm()
        for s in sets:
            if s == "human":
                eset = ev.parse_set(f"presets:{args.human}", args.notes, args.limit)
                title = f"Human presets ({len(eset.items)} presets x MIDI {args.notes})"
            elif s == "synthetic":
                if args.data is None:
                    raise SystemExit("--data is needed for the synthetic set")
                eset = ev.parse_set(f"synthetic:{args.data}", None, args.limit_synthetic)
                title = f"Synthetic test split ({eset.description})"
            else:
                raise SystemExit(f"unknown set {s!r}")
            rows = run_set(eset, predictor, pool, args, title)
            write_rows(rows, args.out / f"{s}.csv")
            md += [metric_tables(rows, title), per_note_table(rows), ""]
            (args.out / "summary.md").write_text("\n".join(md))  # so far, in case the run is cut short
        if args.refine_presets > 0:
            table, rows = refine_compare(predictor, pool, args)
            write_rows(rows, args.out / "refine.csv")
            md += [table, ""]
        if args.latency_targets > 0 and predictor.flow is not None:
            md += ["### Latency", "", latency(predictor, pool, args)]
    md.append(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    text = "\n".join(md)
    (args.out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
