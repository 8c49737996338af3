# SPDX-License-Identifier: GPL-3.0-or-later
"""Figure: original / predicted / refined log-mel spectrograms of a few human presets.

Rows are presets, columns original, predicted, refined. Each preset is
rendered at MIDI 60 (velocity 0.8, key held 1.5 s of 2.0 s) and analysed
like a user's clip (``intake.analyze``); the prediction is the best of the
checkpoint's K candidates (by the refinement loss), the refinement starts
from it with ``--budget`` renders -- the evaluation suite's ``predict`` and
``refine`` methods (``vital_inverse.evaluate``). Predicted and refined
renders are matched to the clip's length and RMS, as they are scored.
Each row shares one dB scale (0 dB = the loudest bin of its three panels);
panel titles give the MSS (dB) against the original.

    python benchmarks/figure_spectrograms.py --checkpoint checkpoints/default --budget 600
    python benchmarks/figure_spectrograms.py --checkpoint /tmp/ctest --budget 24 --presets PS-20-Oboe,JX300P,LexaproPad
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"
DEFAULT_PRESETS = "PS-20-Oboe,LexaproPad,NierBassLayerOne,UmbraLead"

from vital_inverse import evaluate as ev
from vital_inverse.plots import HOP, N_MELS, TOP_DB, mel_axis_hz, mono_mel_power, power_db


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=None, help="checkpoint folder or Hub id (default: the shipped one)")
    p.add_argument("--budget", type=int, default=600, help="refinement renders per preset")
    p.add_argument("--presets", default=DEFAULT_PRESETS, help="human preset names (file stems), comma-separated")
    p.add_argument("--note", type=int, default=60)
    p.add_argument("--k", type=int, default=4, help="predicted candidates rendered")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="render workers for refinement (default: every core)")
    p.add_argument("--presets-dir", type=Path, default=HUMAN)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "spectrograms.png")
    return p


def compute(args) -> list[dict]:
    from vital_inverse.predict import PresetPredictor
    from vital_inverse.synth import ParallelRenderer

    names = [n.strip() for n in args.presets.split(",") if n.strip()]
    missing = [n for n in names if not (args.presets_dir / f"{n}.vital").exists()]
    if missing or not names:
        raise SystemExit(f"no such preset(s) in {args.presets_dir}: {', '.join(missing) or '(none given)'}")
    predictor = PresetPredictor.load(args.checkpoint)
    rows = []
    with ParallelRenderer(args.workers) as pool:
        for name in names:
            t0 = time.perf_counter()
            item = ev.Item(name, path=str(args.presets_dir / f"{name}.vital"))
            t = ev.prepare_target("presets", item, args.note, floor=False)
            if t.error:
                raise SystemExit(f"{name}: {t.error}")
            a = t.analysis
            best, scored, _, _ = ev.predict_best(predictor, a, k=args.k)
            rr = ev.refine_preset(a, best, args.budget, seed=args.seed, renderer=pool)
            refined = ev.score_presets(a.audio, a.note, a.note_seconds, a.render_seconds, [rr.preset], keep_audio=True)
            rows.append({"name": name, "analysis": a, "original": a.audio, "predicted": scored.audio,
                         "refined": refined.audio, "mss_predicted": scored.metrics["mss"],
                         "mss_refined": refined.metrics["mss"] if refined.metrics else float("nan"),
                         "renders": rr.renders})
            print(f"{name}: {a.note_name()}, predicted MSS {scored.metrics['mss']:.2f} dB, refined "
                  f"{rows[-1]['mss_refined']:.2f} dB ({rr.renders} renders), {time.perf_counter() - t0:.0f} s",
                  flush=True)
    return rows


def draw(rows: list[dict], out: Path, budget: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sr = 44100
    fig = Figure(figsize=(12, 2.6 * len(rows) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), 3, sharey=True, squeeze=False)
    mel_hz = mel_axis_hz(sr)
    image = None
    for r, row in enumerate(rows):
        powers = [mono_mel_power(row[k], sr) for k in ("original", "predicted", "refined")]
        ref = max(max(float(p.max()) for p in powers), 1e-12)
        titles = [f"{row['name']}: original ({row['analysis'].note_name()})",
                  f"predicted, MSS {row['mss_predicted']:.1f} dB",
                  f"refined ({row['renders']} renders), MSS {row['mss_refined']:.1f} dB"]
        for c, (p, title) in enumerate(zip(powers, titles)):
            ax = axes[r, c]
            db = power_db(p, ref)
            image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-TOP_DB, vmax=0.0,
                              extent=(0.0, db.shape[1] * HOP / sr, 0, N_MELS), interpolation="nearest")
            ax.set_title(title, fontsize=10)
            if r == len(rows) - 1:
                ax.set_xlabel("seconds")
        ticks = [100, 300, 1000, 3000, 10000]
        axes[r, 0].set_yticks([float(np.interp(t, mel_hz, np.arange(N_MELS))) for t in ticks])
        axes[r, 0].set_yticklabels(["100", "300", "1k", "3k", "10k"])
        axes[r, 0].set_ylabel("Hz (mel)")
    if image is not None:
        fig.colorbar(image, ax=axes, label="dB re the loudest bin of the row", shrink=0.8)
    fig.suptitle(f"Human presets at MIDI 60: original, predicted (best of K), refined ({budget}-render budget)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    if args.budget < 1:
        raise SystemExit("--budget must be at least 1 render")
    rows = compute(args)
    print(f"wrote {draw(rows, args.out, args.budget)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
