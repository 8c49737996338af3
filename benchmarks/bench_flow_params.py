# SPDX-License-Identifier: GPL-3.0-or-later
"""The generative head in parameter space (no rendering): on the test split of
a generated dataset, how close the K samples come to the true preset, how
diverse they are, against the regression heads, for a few guidance weights.

    python benchmarks/bench_flow_params.py --data data/synth-s3 --checkpoint checkpoints/default

Per (test preset, note), over the parameters audible for the truth:
``mae``: mean |normalised continuous difference|, ``acc``: categorical
accuracy; ``first`` is the first sample, ``best_of_K`` the sample with the
lowest (mae + (1 - acc)) (an oracle choice: rendering chooses by audio
instead), ``spread``: mean over parameters of the samples' std (continuous,
normalised). Cheap: it guides the sampling settings; the audio benchmark
(bench_generative.py) decides.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vital_inverse.data import dataset as ds  # noqa: E402
from vital_inverse.evaluate import param_errors  # noqa: E402
from vital_inverse.flow import FlowCodec, condition, sample  # noqa: E402
from vital_inverse.predict import PresetPredictor  # noqa: E402
from vital_inverse.training.losses import values_of  # noqa: E402


def score(space, truth: dict, values: dict) -> tuple[float, float]:
    """``evaluate.param_errors`` (MAE, accuracy over what is audible for the truth), 0 and 1 where nothing is."""
    mae, acc = param_errors(space, truth, values)
    return (0.0 if np.isnan(mae) else mae), (1.0 if np.isnan(acc) else acc)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--split", default="test")
    ap.add_argument("--limit", type=int, default=60, help="test presets")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--guidance", default="1,1.5,2")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pred = PresetPredictor.load(args.checkpoint)
    space, codec = pred.space, FlowCodec(pred.space)
    data = ds.load(args.data, (args.split,), space_hash=space.hash, limit=args.limit)
    rows: dict[str, list] = {}
    for p in range(data.n_presets):
        truth = space.canonical(values_of(space, data.continuous[p], data.categorical[p]))
        for n, note in enumerate(data.meta.notes):
            x = torch.from_numpy(data.mel[p:p + 1, n].astype(np.float32))
            note_t = torch.tensor([int(note)])
            with torch.no_grad():
                plain, routes, logits = pred.model(x, note_t)
            from vital_inverse.predict import values_from_outputs

            head = values_from_outputs(space, plain[0].numpy(), routes[0].numpy(), [int(l[0].argmax()) for l in logits])
            rows.setdefault("heads (top-1)", []).append(score(space, truth, head) + (0.0,))
            cond = condition(pred.model, x, note_t)[0]
            for w in [float(g) for g in args.guidance.split(",")]:
                xs = sample(pred.flow, cond, int(note), args.k, guidance=w, seed=p).numpy()
                vals = codec.decode(xs)
                sc = [score(space, truth, v) for v in vals]
                spread = float(np.mean(codec.split(xs)[0].std(0)))
                rows.setdefault(f"flow w={w:g} first", []).append(sc[0] + (spread,))
                for k in (8, args.k):
                    b = min(sc[:k], key=lambda t: t[0] + (1 - t[1]))
                    rows.setdefault(f"flow w={w:g} best_of_{k}", []).append(b + (spread,))
    print(f"{args.split} split of {args.data}: {data.n_presets} presets x notes {list(data.meta.notes)}\n")
    print("| samples | param MAE (audible) | cat. acc (audible) | spread (cont. std) |\n|---|---|---|---|")
    for name, r in rows.items():
        a = np.array(r)
        print(f"| {name} | {a[:, 0].mean():.3f} | {a[:, 1].mean():.3f} | {a[:, 2].mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
