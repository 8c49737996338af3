# SPDX-License-Identifier: GPL-3.0-or-later
"""Renders per second for 2 s notes: one Synth vs the parallel renderer.

    python benchmarks/bench_render.py [--n 48] [--workers N]

Plain patch: Vital's Init preset. Busy patch: the human preset
PCMusicSupersaw (3 oscillators, unison, effects). Each row renders N notes
of 2.0 s (note held 1.5 s) at MIDI notes cycling over 48/60/72, so the
renderer's load cache is exercised the way dataset generation uses it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from vital_inverse.preset import Preset, load_vital
from vital_inverse.synth import ParallelRenderer, Renderer, RenderJob

BUSY = Path(__file__).resolve().parents[2] / "shared" / "data" / "human-presets" / "PCMusicSupersaw.vital"


def jobs(preset: Preset, n: int) -> list[RenderJob]:
    return [RenderJob(preset, (48, 60, 72)[i % 3], 0.8, 1.5, 2.0) for i in range(n)]


def one_synth(js: list[RenderJob]) -> float:
    r = Renderer()
    r.render_job(js[0])  # warm: build and load once
    t = time.perf_counter()
    for j in js:
        r.render_job(j)
    return len(js) / (time.perf_counter() - t)


def parallel(js: list[RenderJob], workers: int | None) -> float:
    with ParallelRenderer(workers) as pr:
        pr.warm()
        pr.render_jobs(js[: pr.workers])  # each worker loads the preset once
        t = time.perf_counter()
        pr.render_jobs(js)
        return len(js) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    patches = {"plain (Init)": Preset.init(), "busy (PCMusicSupersaw)": load_vital(BUSY)}
    print(f"cores: {os.cpu_count()}, {args.n} renders of 2.0 s per row\n")
    print("| patch | one Synth (renders/s) | parallel (renders/s) | speed-up |")
    print("|---|---|---|---|")
    for name, preset in patches.items():
        js = jobs(preset, args.n)
        a, b = one_synth(js), parallel(js, args.workers)
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")


if __name__ == "__main__":
    main()
