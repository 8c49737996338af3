# SPDX-License-Identifier: GPL-3.0-or-later
"""Dataset generation throughput against the parallel renderer's raw throughput,
on the same presets in the same run.

    python benchmarks/bench_generate.py [--n 96] [--workers N]

Raw: the ParallelRenderer renders the very jobs generation does (each
sampled preset at its notes), nothing else. Generation: `vital-inverse
generate` on the same seed (sampling, render, checks, log-mels, atomic
shard writes). Target: generation reaches at least 80% of raw.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from vital_inverse.data import dataset as ds
from vital_inverse.data.generate import run
from vital_inverse.data.sampling import PresetSampler
from vital_inverse.features import FeatureConfig
from vital_inverse.params import default_space
from vital_inverse.synth import ParallelRenderer, RenderJob


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--notes", default="36,48,60,72")
    ap.add_argument("--note-seconds", type=float, default=1.0)
    ap.add_argument("--render-seconds", type=float, default=1.5)
    args = ap.parse_args()
    space = default_space()
    notes = tuple(int(x) for x in args.notes.split(","))
    meta = ds.DatasetMeta(space_hash=space.hash, seed=12345, n=args.n, shard_size=16, notes=notes,
                          note_seconds=args.note_seconds, render_seconds=args.render_seconds,
                          features=FeatureConfig(seconds=args.render_seconds).to_dict())
    sampler = PresetSampler(space, meta.seed)
    jobs = [RenderJob(sampler.preset(i), n, meta.velocity, meta.note_seconds, meta.render_seconds)
            for i in range(args.n) for n in notes]
    with ParallelRenderer(args.workers) as pr:
        pr.warm()
        t = time.perf_counter()
        pr.render_jobs(jobs, raise_errors=False)
        raw = len(jobs) / (time.perf_counter() - t)
    root = Path(tempfile.mkdtemp(prefix="bench-gen-"))
    try:
        t = time.perf_counter()
        summary = run(root / "d", meta, workers=args.workers, progress=False, space=space)
        wall = time.perf_counter() - t
    finally:
        shutil.rmtree(root, ignore_errors=True)
    renders = summary["attempted"] * len(notes)  # upper bound: rejected presets stop at their first bad note
    gen = summary["renders_per_second"]
    print(f"cores: {os.cpu_count()}, {args.n} presets x {len(notes)} notes, {args.render_seconds} s renders\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| parallel renderer, raw | {raw:.2f} renders/s |")
    print(f"| generation (incl. worker start-up) | {gen:.2f} renders/s, {summary['accepted_per_second']:.2f} accepted presets/s |")
    print(f"| generation / raw | {100 * gen / raw:.0f}% |")
    print(f"| accepted | {summary['accepted']}/{summary['attempted']} (rejected: {summary['rejected'] or 'none'}) |")
    print(f"| wall | {wall:.1f} s for at most {renders} renders |")


if __name__ == "__main__":
    main()
