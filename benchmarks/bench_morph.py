# SPDX-License-Identifier: GPL-3.0-or-later
"""How evenly morphs between human presets move, as preset-gen-vae measures interpolations.

    python benchmarks/bench_morph.py [--presets DIR] [--steps 7] [--note 48] [--seconds 1.0]

For each pair of presets, ``morph`` makes ``--steps`` presets from A to B,
renders each (one Synth) and measures spectral features per step
(``morph.morph_features``). Columns: the largest neighbour step against an
even step (1 = even), the path's length against the ends' distance (1 = no
detour), the midpoint's feature distance from A and to B as a share of the
A-B distance (both < 1: the midpoint sounds between the ends), and whether
the distance from A never falls by more than 0.1 along the path. Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("PS-20-Oboe", "PS-20-Strings"), ("SalmoBass", "NierBassLayerOne"), ("LexaproPad", "SoutheastDemonsPad"),
         ("UmbraLead", "NarcoticLead"), ("FunkyTown", "AgeOfLove"), ("PS-20-Clarinet", "PS-20-Vibraphone")]


def main() -> None:
    from vital_inverse.morph import morph, render_morph
    from vital_inverse.preset import load_vital
    from vital_inverse.synth import Renderer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", type=Path, default=ROOT / "tests" / "data" / "human-presets")
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--note", type=int, default=48)
    ap.add_argument("--seconds", type=float, default=1.0, help="render length (key held 75%%)")
    args = ap.parse_args()
    renderer = Renderer()
    print("| A -> B | largest step / even step | path / straight line | midpoint from A | midpoint to B | "
          "monotone (0.1 slack) | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | :---: | ---: |")
    mid = args.steps // 2
    for a_name, b_name in PAIRS:
        a, b = (load_vital(args.presets / f"{n}.vital") for n in (a_name, b_name))
        t = time.perf_counter()
        r = render_morph(morph(a, b, args.steps), note=args.note, note_seconds=0.75 * args.seconds,
                         render_seconds=args.seconds, renderer=renderer)
        s = r.smooth
        mono = all(y >= x - 0.1 for x, y in itertools.pairwise(s["from_a"]))
        print(f"| {a_name} -> {b_name} | {s['max_step_ratio']:.2f} | {s['path_ratio']:.2f} | {s['from_a'][mid]:.2f} "
              f"| {s['to_b'][mid]:.2f} | {'yes' if mono else 'no'} | {time.perf_counter() - t:.1f} |")


if __name__ == "__main__":
    main()
