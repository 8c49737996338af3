# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``vital-inverse`` command line: the contract the app, tests and
benchmarks share. Each subcommand is a thin layer over the package; heavy
modules are imported inside the command that needs them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


class UsageError(ValueError):
    """Bad command-line input; printed without a traceback."""


#: Longest render the ``render`` command makes (seconds): a note, not an album.
MAX_RENDER_SECONDS = 60.0
MAX_GENERATIVE = 64  # generative samples `match` renders at most (each is one more render)


class _Parser(argparse.ArgumentParser):
    """argparse with one ``error:`` line (no usage block) and exit code 2 on bad arguments."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"error: {self.prog}: {message} (see '{self.prog} --help')\n")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _generative_k(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of samples 0-{MAX_GENERATIVE}, got {text!r}") from None
    if not 0 <= k <= MAX_GENERATIVE:
        raise argparse.ArgumentTypeError(f"--generative takes 0-{MAX_GENERATIVE} samples, got {k}")
    return k


def _midi_note(text: str) -> int:
    from .synth import MIDI_NOTES

    lo, hi = MIDI_NOTES[0], MIDI_NOTES[-1]
    try:
        note = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a MIDI note number {lo}-{hi} (60 = middle C), got {text!r}") from None
    if note not in MIDI_NOTES:
        raise argparse.ArgumentTypeError(f"MIDI notes are {lo}-{hi} (60 = middle C), got {note}")
    return note


def _velocity(text: str) -> float:
    from .synth import VELOCITY_MAX

    value = _finite(text)
    if not 0.0 < value <= VELOCITY_MAX:
        raise argparse.ArgumentTypeError(f"velocity must be above 0 and at most {VELOCITY_MAX:g} (0.8 is a firm key press), got {text}")
    return value


def _render_seconds(text: str) -> float:
    value = _finite(text)
    if not 0.0 < value <= MAX_RENDER_SECONDS:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_RENDER_SECONDS:g} seconds, got {text}")
    return value


def _positive_seconds(text: str) -> float:
    value = _finite(text)
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _positive(text: str) -> float:
    value = _finite(text)
    if value <= 0.0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def command(name: str):
    def register(fn: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = fn
        return fn

    return register


def _notes(text: str) -> list[int]:
    try:
        notes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"notes must be comma-separated MIDI numbers, got {text!r}") from None
    if not notes or any(not 0 <= n <= 127 for n in notes):
        raise argparse.ArgumentTypeError(f"notes must be MIDI numbers 0-127, got {text!r}")
    return notes


def _ints(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or any(v <= 0 for v in out):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out


def get_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vital-inverse", description="Hear a synth sound, get the Vital preset that makes it.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("match", help="match a clip of one note: predict (and refine) a Vital preset")
    p.add_argument("clip", type=Path)
    p.add_argument("--out", type=Path, default=None, help="the .vital to write (default: <clip stem>.vital here)")
    p.add_argument("--refine-evals", type=int, default=0, help="CMA-ES render budget (0 = prediction only)")
    p.add_argument("--generative", type=_generative_k, default=0, metavar="K",
                   help=f"also render K samples of the generative head (0-{MAX_GENERATIVE}; 0 = none, the default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lock", default="", metavar="NAMES",
                   help="modules or settings refinement must leave as predicted, comma-separated "
                        "(e.g. filter_1,osc_2_wavetable; `vital-inverse params` lists the names)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder or Hub repo id (default: the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON object (note, losses, timings, paths, tutorial)")

    p = sub.add_parser("morph", help="presets that glide from one .vital to another, each rendered")
    p.add_argument("a", type=Path, help="the .vital to start from")
    p.add_argument("b", type=Path, help="the .vital to end at")
    p.add_argument("--steps", type=int, default=7, help="presets in the row, A and B included (2-33)")
    p.add_argument("--out", type=Path, required=True, help="folder for step_NN.vital, step_NN.wav and morph.json")
    p.add_argument("--note", type=int, default=60, help="MIDI note the steps are rendered at")
    p.add_argument("--seconds", type=float, default=2.0, help="render length (the key is held 75%% of it)")

    p = sub.add_parser("render", help="render a .vital preset to a WAV file")
    p.add_argument("preset", type=Path)
    p.add_argument("--note", type=_midi_note, default=60, help="MIDI note (60 = middle C)")
    p.add_argument("--velocity", type=_velocity, default=0.8, help="key velocity, above 0 and at most 1")
    p.add_argument("--seconds", type=_render_seconds, default=2.0, help=f"render length (at most {MAX_RENDER_SECONDS:g} s)")
    p.add_argument("--note-seconds", type=_positive_seconds, default=None,
                   help="how long the key is held (default: 75%% of --seconds)")
    p.add_argument("--out", type=Path, required=True, help="a .wav (float WAV when the render goes above full scale) "
                   "or .flac (scaled down, with a notice, when it would clip)")

    p = sub.add_parser("params", help="list the ParamSpace (ranges read from Vita)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("wavetables", help="list the built-in wavetable bank")

    p = sub.add_parser("generate", help="render a synthetic dataset (sharded, resumable)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, required=True, help="number of presets to sample")
    p.add_argument("--notes", type=_notes, default=[48, 60, 72])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--shard-size", type=int, default=128)
    p.add_argument("--note-seconds", type=_finite, default=1.5)
    p.add_argument("--render-seconds", type=_finite, default=2.0)
    p.add_argument("--store-audio", action="store_true", help="also keep 16 kHz mono audio (for AST embeddings)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("importance", help="perceptual importance weights of the continuous parameters")
    p.add_argument("--data", type=Path, required=True, help="dataset folder (the weights are saved beside it)")
    p.add_argument("--out", type=Path, default=None, help="default: DATA/importance.json")
    p.add_argument("--presets", type=int, default=48)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")

    from .evaluate import add_arguments as evaluate_arguments

    evaluate_arguments(sub.add_parser("evaluate", help="score a method on a set of target notes (results.csv + summary.md)"))

    p = sub.add_parser("train", help="train the predictor on a generated dataset")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder (resumes if it holds train_state.pt)")
    p.add_argument("--encoder", choices=["compact", "ast"], default="compact")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=_positive, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="at most this many training presets")
    p.add_argument("--val-audio-items", type=int, default=32)
    p.add_argument("--importance", type=Path, default=None)
    p.add_argument("--ast-source", default=None, help="AST weights folder or Hub id (default MIT/ast-finetuned-audioset-10-10-0.4593)")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--time-limit", type=float, default=None, help="minutes; stop after the epoch that passes it")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (1 is much faster when other jobs share the cores: OpenMP spins)")
    p.add_argument("--channels", type=_ints, default=None, help="compact encoder widths, e.g. 96,128,192")
    p.add_argument("--embed-dim", type=int, default=None)
    p.add_argument("--hidden", type=int, default=None)
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("train-flow", help="train the generative head (flow matching) on a generated dataset")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True,
                   help="checkpoint folder to write flow.safetensors + flow.json into (e.g. the --checkpoint folder)")
    p.add_argument("--checkpoint", default=None, help="predictor whose frozen encoder conditions the flow (default: the shipped one)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=_positive, default=1e-3)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--emb-noise", type=float, default=0.1, help="embedding noise during training, in per-dimension stds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="at most this many training presets")
    p.add_argument("--device", default="auto", help="auto (a GPU when present), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--time-limit", type=float, default=None, help="minutes; stop after the epoch that passes it")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("publish", help="push a checkpoint folder to the Hugging Face Hub")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--repo", required=True, help="USER/NAME")
    p.add_argument("--private", action="store_true")
    return parser


@command("match")
def _match(args: argparse.Namespace) -> int:
    from .session import match_clip

    if args.refine_evals < 0:
        raise UsageError("--refine-evals must be 0 or more")
    if args.out is not None and not args.out.is_dir() and not args.out.parent.is_dir():
        raise UsageError(f"output folder {args.out.parent} does not exist; create it first")
    # A bad clip is refused here in milliseconds, before the model loads and render workers start.
    from .intake import analyze_file

    analyze_file(args.clip)
    say = None if args.json else (lambda m: print(m, file=sys.stderr))
    r = match_clip(args.clip, refine_evals=args.refine_evals, seed=args.seed, out=args.out,
                   checkpoint=args.checkpoint, progress=say, lock=args.lock, generative=args.generative)
    if args.json:
        print(json.dumps(r))
    else:
        for notice in r.get("notices", []):
            print(f"notice: {notice}", file=sys.stderr)
        if len(r.get("chord", [])) > 1:
            print(f"notice: the clip holds more than one note ({r['note_name'].split('note: ')[-1].rstrip(')')}); "
                  "matched at the lowest. For a closer match, upload one note.", file=sys.stderr)
        refined = r["losses"].get("refined")
        print(f"{r['note_name']}: loss {r['losses']['predicted']:.3f} predicted"
              + (f", {refined:.3f} refined" if refined is not None else "") + f"; wrote {r['paths']['preset']}")
        print(r["tutorial"])
    return 0


@command("morph")
def _morph(args: argparse.Namespace) -> int:
    from .morph import morph, render_morph, write_morph
    from .preset import load_vital

    if not 0 < args.seconds <= 30:
        raise UsageError("--seconds must be more than 0 and at most 30")
    a, b = load_vital(args.a), load_vital(args.b)
    presets = morph(a, b, args.steps)
    result = render_morph(presets, note=args.note, note_seconds=0.75 * args.seconds, render_seconds=args.seconds)
    write_morph(result, args.out)
    steps = ", ".join(f"{x:.2f}" for x in result.smooth["steps"])
    print(f"wrote {len(presets)} presets and renders to {args.out}")
    print(f"{result.summary()} Steps as a share of A->B: {steps or '-'}")
    return 0


@command("render")
def _render(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    from .preset import load_vital
    from .synth import SAMPLE_RATE, Renderer

    note_seconds = args.note_seconds if args.note_seconds is not None else 0.75 * args.seconds
    if args.out.suffix.lower() not in (".wav", ".flac"):
        raise UsageError(f"--out must end in .wav or .flac, got {args.out.name}")
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; give a file name ending in .wav or .flac")
    if not args.out.parent.is_dir():
        raise UsageError(f"output folder {args.out.parent} does not exist; create it first")
    preset = load_vital(args.preset)
    audio = Renderer().render(preset, args.note, args.velocity, note_seconds, args.seconds)
    if not np.isfinite(audio).all():
        raise UsageError(f"{args.preset.name} renders invalid samples (NaN or infinite) at note {args.note}; "
                         "open it in Vital and check its filters and effects")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    subtype, notice = None, ""
    if peak > 1.0:
        level = f"peak {peak:.2f}, {20 * math.log10(peak):+.1f} dBFS"
        if args.out.suffix.lower() == ".wav":
            subtype = "FLOAT"
            notice = f"the render goes above full scale ({level}): wrote a 32-bit float WAV so nothing clips"
        else:
            audio = audio * np.float32(0.999 / peak)
            notice = (f"the render goes above full scale ({level}): scaled it down by {20 * math.log10(peak / 0.999):.1f} dB "
                      "so the FLAC does not clip (write a .wav to keep the level: it is then a float WAV)")
    try:
        sf.write(args.out, audio.T, SAMPLE_RATE, subtype=subtype)
    except (OSError, sf.LibsndfileError) as e:
        raise UsageError(f"cannot write {args.out}: {getattr(e, 'strerror', None) or e}") from None
    if notice:
        print(f"notice: {notice}", file=sys.stderr)
    print(f"wrote {args.out} ({audio.shape[1] / SAMPLE_RATE:.2f} s, peak {peak:.3f})")
    return 0


@command("params")
def _params(args: argparse.Namespace) -> int:
    from .params import default_space, describe

    space = default_space()
    if args.json:
        print(json.dumps({"hash": space.hash, "params": [
            {"name": p.name, "kind": p.kind, "group": p.group, "min": p.min, "max": p.max,
             "options": list(p.options), "display_name": p.display_name} for p in space.params]}))
    else:
        print("\n".join(describe(space)))
        print(f"{len(space)} parameters ({len(space.continuous)} continuous/ordinal, "
              f"{len(space.categorical)} categorical), vector size {space.vector_size}, hash {space.hash}")
    return 0


@command("wavetables")
def _wavetables(args: argparse.Namespace) -> int:
    from .wavetables import bank_names, bank_wavetable

    for name in bank_names():
        print(f"{name:24s} {bank_wavetable(name).frames.shape[0]} keyframes")
    return 0


@command("generate")
def _generate(args: argparse.Namespace) -> int:
    from .data import dataset as ds
    from .data.generate import run
    from .features import FeatureConfig
    from .params import default_space

    if args.n <= 0:
        raise UsageError(f"--n must be a positive number of presets, got {args.n}")
    if args.shard_size <= 0:
        raise UsageError("--shard-size must be positive")
    if not 0 < args.note_seconds <= args.render_seconds <= 30:
        raise UsageError("need 0 < --note-seconds <= --render-seconds <= 30")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder")
    space = default_space()
    meta = ds.DatasetMeta(space_hash=space.hash, seed=args.seed, n=args.n, shard_size=args.shard_size,
                          notes=tuple(args.notes), note_seconds=args.note_seconds, render_seconds=args.render_seconds,
                          features=FeatureConfig(seconds=args.render_seconds).to_dict(), store_audio=args.store_audio)
    summary = run(args.out, meta, workers=args.workers, backend=args.backend, progress=not args.no_progress, space=space)
    rej = ", ".join(f"{k} {v}" for k, v in sorted(summary["rejected"].items())) or "none"
    print(f"{summary['accepted']}/{summary['attempted']} presets accepted ({100 * summary['rejection_rate']:.1f}% rejected: {rej}); "
          f"splits {summary['splits']}; this run: {summary['shards_generated']} shards in {summary['wall_seconds']:.1f} s, "
          f"{summary['accepted_per_second']:.2f} presets/s, {summary['renders_per_second']:.2f} renders/s")
    return 0


@command("importance")
def _importance(args: argparse.Namespace) -> int:
    from .data import dataset as ds
    from .data.importance import ImportanceConfig, compute, save
    from .params import default_space

    space = default_space()
    meta = ds.read_meta(args.data)
    if meta.space_hash != space.hash:
        raise UsageError(f"{args.data} is for ParamSpace {meta.space_hash}, this code uses {space.hash}")
    if args.presets <= 0:
        raise UsageError("--presets must be positive")
    result = compute(space, ImportanceConfig(n_presets=args.presets), workers=args.workers, progress=not args.no_progress)
    path, png = save(result, args.out or args.data / "importance.json")
    top = sorted(result["weights"].items(), key=lambda kv: -kv[1])[:8]
    print(f"wrote {path} and {png} in {result['seconds']:.0f} s; top: " + ", ".join(f"{k} {v:.2f}" for k, v in top))
    return 0


@command("evaluate")
def _evaluate(args: argparse.Namespace) -> int:
    from .evaluate import main_args

    return main_args(args)


@command("train")
def _train(args: argparse.Namespace) -> int:
    from .training.train import TrainConfig, train

    for name in ("epochs", "batch_size", "val_audio_items"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if args.lr <= 0:
        raise UsageError("--lr must be positive")
    cfg = TrainConfig(data=str(args.data), out=str(args.out), encoder=args.encoder, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, seed=args.seed, limit=args.limit,
                      val_audio_items=args.val_audio_items, importance=str(args.importance) if args.importance else None,
                      ast_source=args.ast_source, workers=args.workers, time_limit_minutes=args.time_limit,
                      channels=tuple(args.channels) if args.channels else None, embed_dim=args.embed_dim,
                      hidden=args.hidden, threads=args.threads,
                      dropout=args.dropout, weight_decay=args.weight_decay)
    best = train(cfg, progress=not args.no_progress)
    print(f"best epoch {best.get('epoch')}: val MSS {best.get('val_mss', float('nan')):.2f} dB; checkpoint in {args.out}")
    return 0


@command("train-flow")
def _train_flow(args: argparse.Namespace) -> int:
    from .training.flow_train import FlowTrainConfig, train_flow

    for name in ("epochs", "batch_size", "hidden", "blocks"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.dropout < 1 or args.emb_noise < 0:
        raise UsageError("--dropout must be in [0, 1) and --emb-noise at least 0")
    cfg = FlowTrainConfig(data=str(args.data), out=str(args.out), checkpoint=args.checkpoint, epochs=args.epochs,
                          batch_size=args.batch_size, lr=args.lr, hidden=args.hidden, blocks=args.blocks,
                          dropout=args.dropout, emb_noise=args.emb_noise, seed=args.seed, limit=args.limit,
                          device=args.device, threads=args.threads, time_limit_minutes=args.time_limit)
    best = train_flow(cfg, progress=not args.no_progress)
    print(f"best epoch {best.get('epoch')}: val flow loss {best.get('val_loss', float('nan')):.4f}; "
          f"generative head in {args.out}")
    return 0


@command("publish")
def _publish(args: argparse.Namespace) -> int:
    from .checkpoint import publish

    print(publish(args.checkpoint, args.repo, private=args.private))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 done, 2 bad input, 130 interrupted)."""
    try:
        args = get_parser().parse_args(argv)
    except SystemExit as e:  # bad arguments (one error line already printed) or --help
        return e.code if isinstance(e.code, int) else 2
    from .errors import USER_ERRORS

    try:
        return COMMANDS[args.command](args)
    except (UsageError, *USER_ERRORS) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
