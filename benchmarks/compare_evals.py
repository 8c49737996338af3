# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare evaluation runs of the same targets: per-method medians and how far each target moved.

    python benchmarks/compare_evals.py runs/a/results.csv runs/b/results.csv [runs/c/results.csv ...]

For each method: the median MSS and MRSTFT of every run, then, for each run
after the first, the median over targets of |MSS difference| against the
first run and how often ``predict`` kept the same candidate. Run the same
code twice to see how far render noise alone moves a row.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np


def load(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    with open(path, newline="") as f:
        return {(r["item"], r["note"], r["method"]): r for r in csv.DictReader(f)}


def value(row: dict[str, str], column: str) -> float | None:
    try:
        v = float(row[column])
    except (KeyError, TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def median(run: dict, method: str, column: str) -> float:
    vals = [v for k, r in run.items() if k[2] == method and (v := value(r, column)) is not None]
    return float(np.median(vals)) if vals else float("nan")


def change(a: dict, b: dict, method: str, column: str = "mss") -> float:
    d = [abs(x - y) for k in a if k[2] == method and k in b
         and (x := value(a[k], column)) is not None and (y := value(b[k], column)) is not None]
    return float(np.median(d)) if d else float("nan")


def same_choice(a: dict, b: dict) -> str:
    ks = [k for k in a if k[2] == "predict" and k in b]
    return f"{sum(a[k]['chosen'] == b[k]['chosen'] for k in ks)}/{len(ks)}" if ks else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", type=Path, help="results.csv of each run; the first is the reference")
    args = ap.parse_args(argv)
    runs = [load(p) for p in args.csv]
    methods = list(dict.fromkeys(k[2] for k in runs[0]))
    n = len(runs)
    head = ["method", *[f"MSS run {i + 1}" for i in range(n)], *[f"MRSTFT run {i + 1}" for i in range(n)],
            *[f"per-target MSS change 1 -> {i + 1}" for i in range(1, n)]]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for m in methods:
        cells = [f"{median(r, m, 'mss'):.2f}" for r in runs] + [f"{median(r, m, 'mrstft'):.3f}" for r in runs]
        cells += [f"{change(runs[0], r, m):.2f}" for r in runs[1:]]
        print(f"| {m} | " + " | ".join(cells) + " |")
    for i, r in enumerate(runs[1:], 2):
        print(f"predict kept the same candidate, run 1 vs {i}: {same_choice(runs[0], r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
