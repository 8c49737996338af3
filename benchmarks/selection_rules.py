# SPDX-License-Identifier: GPL-3.0-or-later
"""How each candidate source fares under different rules for choosing among its candidates, from the
per-candidate dump of ``bench_generative.py --dump`` (every candidate's selection loss and MSS).

    python benchmarks/selection_rules.py runs/s5-sel/presets-candidates.jsonl [--against retrieval]

Rules: ``loss`` (the product's: lowest MRSTFT), ``mss`` (lowest MSS against the clip: the metric itself, so
an upper bound on what any rule could pick from that source), ``rank`` (lowest sum of the two ranks). Prints
the median MSS of each source's pick per rule, then each source paired per target against ``--against``
(median difference, targets where the source is lower).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np

RULES = {
    "loss": lambda loss, m: int(np.argmin(loss)),
    "mss": lambda loss, m: int(np.argmin(m)),
    "rank": lambda loss, m: int(np.argmin(np.argsort(np.argsort(loss)) + np.argsort(np.argsort(m)))),
}


def picks(rows: list[dict], group: str, rule: str) -> dict[tuple[str, int], float]:
    """(item, note) -> MSS dB of the candidate ``rule`` picks from ``group``."""
    out = {}
    for d in rows:
        g = d["groups"].get(group)
        if g and g["mss"]:
            out[(d["item"], d["note"])] = float(np.asarray(g["mss"])[RULES[rule](np.asarray(g["loss"]), np.asarray(g["mss"]))])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dump", type=Path)
    p.add_argument("--against", default="retrieval")
    args = p.parse_args(argv)
    rows = [json.loads(line) for line in args.dump.read_text().splitlines() if line.strip()]
    groups = [g for g in rows[0]["groups"] if g not in ("heads_top1", "gen_k1", "gen_anchor_k1")]
    print(f"{len(rows)} targets of {args.dump}\n")
    print("| source (median MSS dB of its pick) | " + " | ".join(f"by {r}" for r in RULES) + " |")
    print("|---|" + "---|" * len(RULES))
    for g in groups:
        cells = [picks(rows, g, r) for r in RULES]
        print(f"| {g} | " + " | ".join(f"{statistics.median(c.values()):.2f}" for c in cells) + " |")
    print(f"\n| source, paired against {args.against} | " + " | ".join(f"by {r}" for r in RULES) + " |")
    print("|---|" + "---|" * len(RULES))
    for g in groups:
        if g == args.against:
            continue
        cells = []
        for r in RULES:
            a, b = picks(rows, g, r), picks(rows, args.against, r)
            d = np.array([a[k] - b[k] for k in a if k in b])
            cells.append(f"{np.median(d):+.2f} dB, {int((d < 0).sum())}/{len(d)}")
        print(f"| {g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
