# SPDX-License-Identifier: GPL-3.0-or-later
"""A digest of evaluation's maths on fixed audio (no Vita), to show two checkouts compute the same numbers.

    PYTHONPATH=CHECKOUT python benchmarks/digest_scoring.py [--human DIR]

Scores four fixed candidates (sines with noise, seed 14) against a fixed
target with ``evaluate.score_metrics`` (every metric), the MRSTFT that ranks
candidates (``metrics.mrstft_batch``), ``evaluate.param_errors`` on sampled
presets and ``evaluate.parse_set`` of a preset folder; prints a SHA-256 of
all the values. Equal digests: equal floats, to the last bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"


def values(human: Path) -> dict:
    from vital_inverse import evaluate as ev
    from vital_inverse.data.sampling import PresetSampler
    from vital_inverse.metrics import mrstft_batch
    from vital_inverse.params import default_space

    rng = np.random.default_rng(14)
    t = np.arange(88200) / 44100
    target = np.stack([np.sin(2 * np.pi * 220 * t) * np.exp(-t)] * 2).astype(np.float32)
    cands = [np.stack([np.sin(2 * np.pi * f * t) * np.exp(-t * d) + 0.01 * rng.standard_normal(len(t))] * 2)
             .astype(np.float32) for f, d in ((220, 1.0), (221, 2.0), (440, 0.5), (110, 1.5))]
    space = default_space()
    sampler = PresetSampler(space, 14)
    s = ev.parse_set(f"presets:{human}", "48,60,72")
    return {
        "metrics": [ev.score_metrics(c, target) for c in cands],
        "selection": [float(v) for v in mrstft_batch(cands, target)],
        "param_errors": [ev.param_errors(space, sampler.values(i), sampler.values(i + 50)) for i in range(10)],
        "set": [s.kind, [i.id for i in s.items], list(s.notes), s.velocity, s.note_seconds, s.render_seconds],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--human", type=Path, default=HUMAN, help="a folder of .vital presets (for parse_set)")
    args = ap.parse_args(argv)
    text = json.dumps(values(args.human), sort_keys=True)
    print(hashlib.sha256(text.encode()).hexdigest()[:16])
    return 0


if __name__ == "__main__":
    sys.exit(main())
