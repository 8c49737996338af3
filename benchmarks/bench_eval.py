# SPDX-License-Identifier: GPL-3.0-or-later
"""The report's tables, as Markdown: method x metric on the synthetic test split
and on the human presets (MIDI 48/60/72), and timings.

Each table is one ``vital_inverse.evaluate.evaluate`` run (the same as the
``vital-inverse evaluate`` command printed above it); results folders are
kept under ``--out`` (results.csv, summary.md, run.json per run).

    python benchmarks/bench_eval.py --checkpoint checkpoints/default --data data/synth-v2 --budget 600
    python benchmarks/bench_eval.py --checkpoint /tmp/ctest --data /tmp/dtest --budget 24 --limit 2 \\
        --notes 60 --tables synthetic,human,timing          # a tiny end-to-end check

Cells are ``mean [95% CI]`` (item-level cluster bootstrap, 10,000
resamples) and medians in a second table. Timings are wall clock on the
machine as it is (say what else ran); within a run several targets are
prepared/scored at once on the render workers, except with ``refine``,
where targets go one at a time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"

from vital_inverse import evaluate as ev
from vital_inverse.evaluate import summary as sm

TABLE_METRICS = ("mss", "mrstft", "wmfcc", "sot", "rms", "f0_cents")
SHORT = {"mss": "MSS dB", "mrstft": "MRSTFT", "wmfcc": "wMFCC", "sot": "SOT", "rms": "RMS cos ↑",
         "f0_cents": "f0 cents", "param_mae": "param MAE", "cat_acc": "cat. acc ↑"}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint folder or Hub id (default: the shipped one)")
    p.add_argument("--data", type=Path, default=None,
                   help="generated dataset: its test split is the synthetic set, its train split feeds nearest/mean")
    p.add_argument("--budget", type=int, default=600, help="refinement renders per target")
    p.add_argument("--limit", type=int, default=None, help="at most this many items per set")
    p.add_argument("--methods", default="init,mean,nearest,predict,refine")
    p.add_argument("--notes", default="48,60,72", help="notes of the human-preset table")
    p.add_argument("--human", type=Path, default=HUMAN, help="folder of .vital presets")
    p.add_argument("--tables", default="synthetic,human,timing")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench_eval"))
    return p


def _cell(s: dict | None, digits: int = 3) -> str:
    if not s:
        return "–"
    m = sm.fmt_number(s["mean"], digits)
    if math.isfinite(s["ci_low"]):
        return f"{m} [{sm.fmt_number(s['ci_low'], digits)}, {sm.fmt_number(s['ci_high'], digits)}]"
    return m


def metric_tables(rows: list[dict], title: str) -> str:
    cols = [c for c in (*TABLE_METRICS, "param_mae", "cat_acc")
            if any(math.isfinite(sm.as_float(r.get(c))) for r in rows)]
    stats = {c: sm.method_stats(rows, c) for c in cols}
    methods = sm.ordered_methods(rows)
    head = "| method | n | " + " | ".join(SHORT[c] for c in cols) + " |"
    sep = "|---|---|" + "---|" * len(cols)
    out = [f"### {title}: mean [95% CI]", "", head, sep]
    for m in methods:
        n = sum(1 for r in rows if r["method"] == m and not r.get("error"))
        fails = sum(1 for r in rows if r["method"] == m and r.get("error"))
        out.append(f"| {m} | {n}{f' (+{fails} failed)' if fails else ''} | "
                   + " | ".join(_cell(stats[c].get(m)) for c in cols) + " |")
    out += ["", f"### {title}: median", "", head, sep]
    for m in methods:
        n = sum(1 for r in rows if r["method"] == m and not r.get("error"))
        out.append(f"| {m} | {n} | " + " | ".join(sm.fmt_number(stats[c][m]["median"]) if m in stats[c] else "–"
                                                  for c in cols) + " |")
    return "\n".join(out) + "\n"


def per_note_table(rows: list[dict], metric: str = "mss") -> str:
    notes = sorted({int(r["note"]) for r in rows if str(r.get("note", "")).strip() not in ("", "None")})
    methods = sm.ordered_methods(rows)
    out = [f"### {SHORT[metric]} median by note", "", "| method | " + " | ".join(f"MIDI {n}" for n in notes) + " |",
           "|---|" + "---|" * len(notes)]
    for m in methods:
        cells = []
        for n in notes:
            v = [sm.as_float(r.get(metric)) for r in rows if r["method"] == m and not r.get("error") and int(r["note"]) == n]
            v = [x for x in v if math.isfinite(x)]
            cells.append(sm.fmt_number(float(np.median(v))) if v else "–")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def command_line(set_spec: str, methods: str, out: Path, args, notes: str | None, train: Path | None) -> str:
    parts = ["vital-inverse evaluate", f"--set {set_spec}", f"--method {methods}", f"--out {out}"]
    if "refine" in methods:
        parts.append(f"--budget {args.budget}")
    if notes:
        parts.append(f"--notes {notes}")
    if args.checkpoint and ("predict" in methods or "refine" in methods):
        parts.append(f"--checkpoint {args.checkpoint}")
    if train:
        parts.append(f"--train-data {train}")
    if args.limit:
        parts.append(f"--limit {args.limit}")
    if args.workers is not None:
        parts.append(f"--workers {args.workers}")
    return " ".join(parts)


def run_set(name: str, set_spec: str, methods: str, args, notes: str | None, train: Path | None) -> list[dict]:
    out = args.out / name
    print(f"```\n{command_line(set_spec, methods, out, args, notes, train)}\n```\n", flush=True)
    res = ev.evaluate(set_spec, methods, out, budget=args.budget, notes=notes, checkpoint=args.checkpoint,
                      train_data=train, limit=args.limit, workers=args.workers, k=args.k, seed=args.seed,
                      progress=sys.stderr.isatty())
    print(f"_{len(res.rows)} rows in {res.seconds:.0f} s; details in {res.summary}_\n", flush=True)
    return res.rows


def render_speed(args, n: int = 12) -> list[tuple[str, str]]:
    """Renders per second: one Renderer (one preset re-rendered, as refinement does; and alternating presets,
    each reload rebuilding its wavetables), and a ParallelRenderer over a batch of different presets."""
    from vital_inverse.preset import load_vital
    from vital_inverse.synth import ParallelRenderer, Renderer, RenderJob

    paths = sorted(args.human.glob("*.vital"))[:4]
    presets = [load_vital(p) for p in paths]
    r = Renderer()
    r.render(presets[0], 60, 0.8, 1.5, 2.0)
    t = time.perf_counter()
    for _ in range(n):
        r.render(presets[0], 60, 0.8, 1.5, 2.0)
    same = n / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(n):
        r.render(presets[i % len(presets)], 60, 0.8, 1.5, 2.0)
    alternating = n / (time.perf_counter() - t)
    jobs = [RenderJob(presets[i % len(presets)], 60, 0.8, 1.5, 2.0) for i in range(2 * n)]
    with ParallelRenderer(args.workers) as pool:
        pool.warm()
        pool.render_jobs(jobs[: pool.workers])
        t = time.perf_counter()
        pool.render_jobs(jobs)
        parallel = len(jobs) / (time.perf_counter() - t)
        workers = pool.workers
    return [("renders/s, one Renderer, same preset (2.0 s note)", f"{same:.1f}"),
            ("renders/s, one Renderer, 4 presets alternating", f"{alternating:.1f}"),
            (f"renders/s, ParallelRenderer({workers}), 4 presets", f"{parallel:.1f}")]


def timing_table(rows: list[dict], speed: list[tuple[str, str]]) -> str:
    def col(method: str | None, c: str) -> list[float]:
        v = [sm.as_float(r.get(c)) for r in rows if (method is None or r["method"] == method) and not r.get("error")]
        return [x for x in v if math.isfinite(x)]

    def line(label: str, v: list[float], unit: str = "s") -> str:
        if not v:
            return f"| {label} | – | – | 0 |"
        return f"| {label} | {sm.fmt_number(statistics.median(v))} {unit} | {sm.fmt_number(statistics.fmean(v))} {unit} | {len(v)} |"

    analysis = {}
    for r in rows:  # one analysis per target
        if not r.get("error") and math.isfinite(sm.as_float(r.get("analysis_s"))):
            analysis[(r["set"], r["item"], r["note"])] = sm.as_float(r["analysis_s"])
    refine_rows = [r for r in rows if r["method"] == "refine" and not r.get("error")]
    gain = [sm.as_float(r["refine_start_loss"]) - sm.as_float(r["refine_loss"]) for r in refine_rows]
    out = ["| step | median | mean | n |", "|---|---|---|---|",
           line("analysis (intake.analyze of a rendered note)", list(analysis.values())),
           line("prediction (network, K candidates)", col("predict", "method_s")),
           line("render + score K candidates, pick the best", col("predict", "select_s")),
           line("nearest-neighbour retrieval", col("nearest", "method_s")),
           line("refinement, whole budget", col("refine", "method_s")),
           line("refinement, time to 90% of its gain", col("refine", "refine_t90_s")),
           line("refinement, renders to 90% of its gain", col("refine", "refine_r90"), "renders"),
           line("refinement loss drop (start - end)", [g for g in gain if math.isfinite(g)], "")]
    out += [f"| {label} | {value} | | |" for label, value in speed]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    import os

    print(f"# Vital Inverse evaluation ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
          f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())})\n")
    all_rows: list[dict] = []
    if "synthetic" in tables:
        if args.data is None:
            print("_synthetic table skipped: no --data_\n")
        else:
            print("## Synthetic test split (in-domain)\n")
            rows = run_set("synthetic", f"synthetic:{args.data}", ",".join(methods), args, None, args.data)
            print(metric_tables(rows, "Synthetic test split"))
            all_rows += rows
    if "human" in tables:
        hm = [m for m in methods if m != "nearest" or args.data is not None]
        if len(hm) < len(methods):
            print("_nearest left out of the human-preset table: no --data to retrieve from_\n")
        print(f"## Human presets at MIDI {args.notes.replace(',', '/')} (out of domain)\n")
        rows = run_set("human", f"presets:{args.human}", ",".join(hm), args, args.notes, args.data)
        print(metric_tables(rows, "Human presets"))
        print(per_note_table(rows))
        all_rows += rows
    if "timing" in tables:
        print("## Timings (wall clock, pessimistic: shared machine)\n")
        print(timing_table(all_rows, render_speed(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
