# SPDX-License-Identifier: GPL-3.0-or-later
"""Why refinement could not lower MSS from a start made of the clip (issue 13, section 4): probes.

Each target (NAME@NOTE, a human preset rendered at that MIDI note, velocity 0.8, 1.5 s held, 2.0 s long)
goes through ``session.analyze_clip`` once; its start (the kept candidate, retuned and scored) is cached in
``runs/starts/`` so every probe starts from the same preset.

    python benchmarks/probe_refine_start.py landscape T1,T2,...   # random steps around the start
    python benchmarks/probe_refine_start.py dims T1,T2,...        # one searched parameter at a time
    python benchmarks/probe_refine_start.py variants T1,... V1,V2,... --out runs/var.jsonl
    python benchmarks/probe_refine_start.py repeat T1,T2,...      # the start's MSS, 4 renders on each renderer

``landscape``: 12 steps of sigma 0.05 and 12 of 0.015 (normalised units, every searched dimension at once,
as CMA-ES steps) around the start, one render each: loss and MSS change against the start's mean of 4
renders, and their correlation. ``dims``: each searched parameter moved by +-0.01 and +-0.002 alone.
``variants``: 600-render refinements from the start with the configs in ``VARIANTS``; judged as
bench_match judges (3 fresh renders of the best and of the start with one Renderer, MSS against the clip).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HUMAN = ROOT.parent / "shared" / "data" / "human-presets"
CACHE = ROOT / "runs" / "starts"

from vital_inverse import refine as rf  # noqa: E402
from vital_inverse import session  # noqa: E402
from vital_inverse.metrics import mss  # noqa: E402
from vital_inverse.params import default_space  # noqa: E402
from vital_inverse.preset import load_vital  # noqa: E402
from vital_inverse.resynthesis import CLIP_START_KINDS, SWEEP_TIMING, TABLE_PITCH, search_locks  # noqa: E402
from vital_inverse.scoring import Evaluator  # noqa: E402
from vital_inverse.synth import SAMPLE_RATE, ParallelRenderer, Renderer  # noqa: E402
from vital_inverse.tuning import pitch_locked  # noqa: E402

#: session 4's clip-start search (what the app did), then one change at a time
VARIANTS = {
    "product": dict(),
    "lockT": dict(locked=SWEEP_TIMING),
    "lockT_s01": dict(locked=SWEEP_TIMING, sigma0=0.01),
    "lockT_s01_full": dict(locked=SWEEP_TIMING, sigma0=0.01, plateau=0),
    "lockT_r2": dict(locked=SWEEP_TIMING, restarts=2),
    "lockT_w02_r2": dict(locked=SWEEP_TIMING, mss_weight=0.2, restarts=2),
    "lockT_w05_r2": dict(locked=SWEEP_TIMING, mss_weight=0.5, restarts=2),
    "lockTP_w02_r2": dict(locked=SWEEP_TIMING | TABLE_PITCH, mss_weight=0.2, restarts=2),
    # this session's product for a clip start, and the same spending the whole budget on gentler restarts
    "final": dict(locked=SWEEP_TIMING | TABLE_PITCH, mss_weight=0.2, restarts=2, confirm=True),
    "final_more": dict(locked=SWEEP_TIMING | TABLE_PITCH, mss_weight=0.2, restarts=12, shrink=0.6, confirm=True),
}


def get_start(name: str, note: int, predictor, pr, r1) -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    f = CACHE / f"{name}-{note}.pkl"
    if f.exists():
        return pickle.loads(f.read_bytes())
    import soundfile as sf

    truth = load_vital(HUMAN / f"{name}.vital")
    clip = r1.render(truth, note, 0.8, 1.5, 2.0)
    noise = float(np.mean([mss(clip, r1.render(truth, note, 0.8, 1.5, 2.0)) for _ in range(2)]))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / f"{name}-{note}.wav"
        sf.write(wav, clip.T, SAMPLE_RATE)
        st = session.analyze_clip(wav, predictor, pr)
    d = dict(analysis=st.analysis, start=st.best_preset, loss=st.best_loss, audio=st.best_audio, noise=noise,
             source=getattr(st.candidates[st.best_index], "source", ""))
    f.write_bytes(pickle.dumps(d))
    return d


def _search(d: dict, space) -> rf._Search:
    a = d["analysis"]
    config = rf.RefineConfig(locked=search_locks() if d["source"] in CLIP_START_KINDS else frozenset())
    locked = frozenset(pitch_locked(d["start"], a, space)) if a.pitched else frozenset()
    return rf._Search(d["start"], d["loss"], d["audio"], space, config, 12, 0.05, 0, locked)


def _start_row(t, d, ev, s):
    L, R, _ = ev.rescore([d["start"]] * 4)
    M = [mss(r, ev.audio) for r in R]
    row = dict(t=t, source=d["source"], dims=len(s.dims), noise=d["noise"],
               start_loss=[float(np.mean(L)), float(np.std(L))], start_mss=[float(np.mean(M)), float(np.std(M))])
    return row, float(np.mean(L)), float(np.mean(M))


def _score(ev, s, X):
    L, R, _ = ev.rescore([s.preset_at(x) for x in X])
    return L, np.array([mss(r, ev.audio) if r is not None else np.nan for r in R])


def _each_start(args, predictor, pr, r1, space):
    """Per target of ``--targets``: (evaluator, search, start row, start loss, start MSS, start vector)."""
    for t in args.targets.split(","):
        name, note = t.split("@")
        d = get_start(name, int(note), predictor, pr, r1)
        ev, s = Evaluator(pr, d["analysis"], 0.0), _search(d, space)
        row, l0, m0 = _start_row(t, d, ev, s)
        yield ev, s, row, l0, m0, s.x_all[s.dims]


def landscape(args, predictor, pr, r1, space) -> None:
    rng = np.random.default_rng(0)
    for ev, s, row, l0, m0, x0 in _each_start(args, predictor, pr, r1, space):
        for sig in (0.05, 0.015):
            L, M = _score(ev, s, np.clip(x0 + sig * rng.standard_normal((12, len(x0))), 0, 1))
            dl, dm = L - l0, M - m0
            row[f"s{sig}"] = dict(corr=float(np.corrcoef(dl, dm)[0, 1]), dl=[round(float(v), 3) for v in dl],
                                  dm=[round(float(v), 2) for v in dm], lower_both=int(np.sum((dl < 0) & (dm < 0))),
                                  lower_mss=int(np.sum(dm < 0)))
        print(json.dumps(row), flush=True)


def dims(args, predictor, pr, r1, space) -> None:
    for ev, s, row, l0, m0, x0 in _each_start(args, predictor, pr, r1, space):
        for delta in (0.01, 0.002):
            X = []
            for j in range(len(x0)):
                for sg in (1, -1):
                    x = x0.copy()
                    x[j] = np.clip(x[j] + sg * delta, 0, 1)
                    X.append(x)
            L, M = _score(ev, s, np.array(X))
            dl, dm = L - l0, M - m0
            row[f"d{delta}"] = {s.names[j // 2] + "+-"[j % 2]: [round(float(dl[j]), 3), round(float(dm[j]), 2)]
                                for j in range(len(X))}
        print(json.dumps(row), flush=True)


def _judge(r1, preset, a, n: int = 3) -> float:
    return float(np.mean([mss(r1.render(preset, int(a.note), 0.8, float(a.note_seconds), float(a.render_seconds)),
                              a.audio) for _ in range(n)]))


def variants(args, predictor, pr, r1, space) -> None:
    for t in args.targets.split(","):
        name, note = t.split("@")
        d = get_start(name, int(note), predictor, pr, r1)
        a = d["analysis"]
        base = _judge(r1, d["start"], a)
        for v in args.variants.split(","):
            spec = VARIANTS[v]
            clip = d["source"] in CLIP_START_KINDS
            config = rf.RefineConfig(
                locked=(search_locks() if clip else frozenset()) | frozenset(spec.get("locked", ())),
                plateau=spec.get("plateau", 8 if clip else 0), restarts=spec.get("restarts", 0),
                mss_weight=spec.get("mss_weight", 0.0), confirm=spec.get("confirm", False),
                restart_shrink=spec.get("shrink", 0.3))
            t0, last = time.perf_counter(), None
            for ev in rf.refine(a, [d["start"]], 600, seed=0, renderer=pr, sigma0=spec.get("sigma0"), config=config,
                                incumbent=(d["loss"], d["audio"])):
                last = ev
            after = _judge(r1, last.best, a) if last.best is not d["start"] else base
            row = dict(t=t, v=v, source=d["source"], noise=d["noise"], start=base, refined=after,
                       kept_start=last.best is d["start"], loss0=d["loss"], loss=last.best_loss, renders=last.renders,
                       secs=time.perf_counter() - t0, chall=last.challengers, rej=last.mss_rejections,
                       reason=last.reason)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def repeat(args, predictor, pr, r1, space) -> None:
    """The start rendered 4 times on the render workers and 4 times on one Renderer: MSS of each render."""
    for t in args.targets.split(","):
        name, note = t.split("@")
        d = get_start(name, int(note), predictor, pr, r1)
        a = d["analysis"]
        ev = Evaluator(pr, a, 0.0)
        ev.rescore([d["start"]] * 4)
        one = [mss(r1.render(d["start"], int(a.note), 0.8, float(a.note_seconds), float(a.render_seconds)), a.audio)
               for _ in range(4)]
        print(json.dumps(dict(t=t, source=d["source"], workers=np.round(ev.last_mss, 3).tolist(),
                              renderer=np.round(one, 3).tolist())), flush=True)


def main(argv=None) -> None:
    from vital_inverse.predict import PresetPredictor

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cmd", choices=("landscape", "dims", "variants", "repeat"))
    ap.add_argument("targets", help="NAME@NOTE,... (human presets)")
    ap.add_argument("variants", nargs="?", default="product", help=f"for 'variants': any of {', '.join(VARIANTS)}")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "refine_variants.jsonl")
    args = ap.parse_args(argv)
    predictor, r1, space = PresetPredictor.load(), Renderer(), default_space()
    with ParallelRenderer(2) as pr:
        run = {"landscape": landscape, "dims": dims, "variants": variants, "repeat": repeat}[args.cmd]
        run(args, predictor, pr, r1, space)


if __name__ == "__main__":
    main()
