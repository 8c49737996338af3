# SPDX-License-Identifier: GPL-3.0-or-later
"""The matching pipeline the app and the CLI share: one clip in, a preset out.

    state = analyze_clip(path, predictor, renderer)        # intake -> K candidates -> best
    for update in refine_stream(state, Budget(renders=120), seed=0, renderer=renderer):
        state = update.state                                # best so far, loss history
    export(state, folder)                                   # <clip stem>.vital

State is plain dataclasses (``MatchState``), replaced rather than changed,
so a web session can keep it in ``gr.State`` and a stopped refinement
leaves the last good state behind. Nothing here is module-level and
mutable: the predictor and the render workers are passed in (they are
read-only and shared; the per-user data is all in the state).

Losses are the refinement loss (``refine`` module): the render padded or
cropped to the clip's length and scaled to the clip's RMS, then auraloss
``MultiResolutionSTFTLoss()`` against the clip (``metrics.mrstft``). So
the "predicted" and "refined" losses are on one scale.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .intake import Analysis, IntakeLimits, analyze_file
from .preset import Preset
from .tutorial.report import TABLE_COLUMNS, parameter_table  # re-exported: the settings table is the report's

__all__ = [
    "TABLE_COLUMNS",
    "MatchState",
    "RefineUpdate",
    "SessionError",
    "analyze_clip",
    "export",
    "match_audio",
    "match_clip",
    "parameter_table",
    "refine_stream",
    "retune_candidates",
    "safe_stem",
    "warm_worker",
    "write_wav",
]

_MIN_SAMPLES = 2048  # the refinement loss's largest FFT: shorter notes cannot be scored

DEFAULT_LIMITS = IntakeLimits()  # frozen: safe to share
Progress = Callable[[float, str], None]


class SessionError(UserError):
    """A step of the pipeline cannot run with these inputs; the message says why."""


@dataclass(eq=False)  # eq=False: hashed by identity (gr.State hashes its values), never compared field by field
class MatchState:
    """Everything known about one clip: the analysis, the candidates, the best preset so far."""

    analysis: Analysis
    candidates: list  # list[predict.Candidate], best first by probability
    candidate_losses: list[float]  # loss of one render of each candidate, in candidate order
    best_index: int  # the candidate with the lowest loss
    predicted_audio: np.ndarray = field(repr=False)  # its render, matched to the clip (length, RMS)
    predicted_loss: float  # mean loss of fresh renders of the best candidate (as refinement scores its incumbent)
    refined: Preset | None = None
    refined_audio: np.ndarray | None = field(default=None, repr=False)
    refined_loss: float | None = None
    history: tuple[tuple[int, float, float], ...] = ()  # (renders, best loss, generation loss), all runs
    refine_renders: int = 0  # renders used by every refinement of this clip
    refine_generations: int = 0
    refine_runs: int = 0
    refine_reason: str = ""  # why the last refinement ended ("budget", "time", "converged", "stopped")
    timings: dict[str, float] = field(default_factory=dict)
    #: set by a Stop button: the running refinement ends after its current generation.
    stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def predicted(self) -> Preset:
        return self.candidates[self.best_index].preset

    @property
    def best_preset(self) -> Preset:
        """The refined preset once refinement has run, the best candidate before."""
        return self.refined if self.refined is not None else self.predicted

    @property
    def best_audio(self) -> np.ndarray:
        return self.refined_audio if self.refined_audio is not None else self.predicted_audio

    @property
    def best_loss(self) -> float:
        return self.refined_loss if self.refined_loss is not None else self.predicted_loss

    @property
    def stem(self) -> str:
        """File-name-safe name of the clip (for the exported preset)."""
        return safe_stem(self.analysis.source_name)

    @property
    def unpitched(self) -> bool:
        return not self.analysis.pitched


@dataclass(frozen=True)
class RefineUpdate:
    """One step of ``refine_stream``: the new state, the refinement event, and whether the best changed."""

    state: MatchState
    event: object  # refine.RefineEvent
    improved: bool


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def safe_stem(name: str, fallback: str = "clip") -> str:
    """A file name stem from any clip name: ASCII letters, digits, space . _ - only; at most 64 characters."""
    s = unicodedata.normalize("NFKD", str(name or "")).encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9._ -]+", "_", s)
    s = re.sub(r"\s+", " ", s).strip(" ._-")
    s = s[:64].strip(" ._-")
    return s or fallback


def match_audio(audio: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``audio`` as stereo float32 at the target's length, scaled to the target's RMS (as refinement scores it)."""
    from .scoring import match_to_target

    return match_to_target(audio, target)


def write_wav(audio: np.ndarray, path: str | Path, sample_rate: int = 44100) -> Path:
    """16-bit stereo WAV for a player; scaled down only if it would clip (so levels stay comparable)."""
    import soundfile as sf

    a = np.asarray(audio, dtype=np.float32)
    a = a[None, :] if a.ndim == 1 else a
    peak = float(np.max(np.abs(a))) if a.size else 0.0
    if peak > 0.999:
        a = a * np.float32(0.999 / peak)
    path = Path(path)
    sf.write(path, a.T, sample_rate, subtype="PCM_16")
    return path


def _scored(renderer, presets: Sequence[Preset], a: Analysis) -> tuple[list[float], int, np.ndarray | None]:
    """``scoring.score_presets`` with a failed or inaudible candidate's loss as inf: (losses, best index, matched)."""
    from .scoring import FAILED_LOSS, score_presets

    losses, best, audio = score_presets(renderer, list(presets), a)
    return [float(x) if float(x) < FAILED_LOSS else float("inf") for x in losses], int(best), audio


def _rescore_renders() -> int:
    from .refine import RESCORE_RENDERS

    return max(1, RESCORE_RENDERS)


def retune_candidates(candidates: list, a: Analysis, renderer) -> list:
    """Candidates shifted onto the clip's f0 (``tuning.retune``); unpitched clips: unchanged."""
    from .scoring import jobs_for, render_each
    from .tuning import retune

    def render(presets):
        jobs = jobs_for(presets, a.note, a.note_seconds, a.render_seconds)
        if hasattr(renderer, "render_jobs"):
            return renderer.render_jobs(jobs, raise_errors=False)
        return render_each(renderer, jobs)

    tuned = retune([c.preset for c in candidates], a, render)
    return [c if p is c.preset else dataclasses.replace(c, preset=p) for c, p in zip(candidates, tuned)]


# --------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------


def analyze_clip(path, predictor, renderer, k: int = 4, *, limits: IntakeLimits = DEFAULT_LIMITS,
                 progress: Progress | None = None, generative: int = 0) -> MatchState:
    """Intake -> predict ``k`` candidates (+ ``generative`` samples of the generative head) -> render each at
    the clip's note and length -> keep the closest.

    ``renderer``: a ``synth.ParallelRenderer`` (candidates rendered on every
    core) or a ``synth.Renderer``. ``progress(fraction, message)`` is called
    between steps. Raises a ``UserError`` subclass (``IntakeError`` for a bad
    file) with a message meant for the person who uploaded it.
    """
    say = progress or (lambda f, m: None)
    timings: dict[str, float] = {}
    t0 = t = time.perf_counter()
    say(0.0, "Reading the clip")
    analysis = analyze_file(path, limits)
    timings["intake"] = time.perf_counter() - t

    if analysis.audio.shape[-1] < _MIN_SAMPLES:
        raise SessionError(
            f"the note in '{analysis.source_name}' is only {1000 * analysis.audio.shape[-1] / analysis.sample_rate:.0f} ms "
            f"long; matching compares spectra over {1000 * _MIN_SAMPLES / 44100:.0f} ms windows, so upload a longer note"
        )
    say(0.15, f"Predicting presets for {analysis.note_name()}")
    t = time.perf_counter()
    candidates = predictor.predict(analysis, k=max(1, int(k)), generative=max(0, int(generative)))
    timings["predict"] = time.perf_counter() - t

    say(0.3, f"Tuning {len(candidates)} candidates to {analysis.note_name()}")
    t = time.perf_counter()
    candidates = retune_candidates(candidates, analysis, renderer)
    timings["tune"] = time.perf_counter() - t
    say(0.35, f"Rendering and comparing {len(candidates)} candidates")
    t = time.perf_counter()
    losses, best, matched = _scored(renderer, [c.preset for c in candidates], analysis)
    if best < 0 or not math.isfinite(losses[best]) or matched is None:
        raise SessionError(f"none of the {len(candidates)} predicted presets could be rendered; "
                           "try another clip (or report this clip as a bug)")
    # The minimum over single noisy renders is biased low: the chosen candidate's loss is the mean of
    # fresh renders, as refinement scores every incumbent, so "predicted" and "refined" compare honestly.
    fresh, _, fresh_audio = _scored(renderer, [candidates[best].preset] * _rescore_renders(), analysis)
    finite = [x for x in fresh if math.isfinite(x)]
    predicted_loss = float(losses[best])
    if finite and fresh_audio is not None:
        predicted_loss, matched = float(np.mean(finite)), fresh_audio
    timings["render_score"] = time.perf_counter() - t
    timings["analyze_total"] = time.perf_counter() - t0
    say(1.0, "Done")
    return MatchState(
        analysis=analysis,
        candidates=list(candidates),
        candidate_losses=losses,
        best_index=best,
        predicted_audio=matched,
        predicted_loss=predicted_loss,
        timings=timings,
    )


def refine_stream(state: MatchState, budget, seed: int = 0, renderer=None, *,
                  stop: threading.Event | None = None, **refine_kwargs) -> Iterator[RefineUpdate]:
    """Refine the best preset so far towards the clip; yields a ``RefineUpdate`` per CMA-ES generation.

    ``budget``: a ``refine.Budget`` or a number of renders. A second call
    continues from the refined preset (the loss history and render count
    carry on). ``stop`` (default: ``state.stop``, cleared here) ends the run
    after the current generation with a final update. Closing this generator
    closes the refinement, which stops submitting renders (a ``renderer``
    passed in stays open for others; one made by refinement is shut down).
    The seed of run n is ``seed + n`` so repeated runs explore differently.
    The best so far and its loss (a mean of fresh renders, the prediction's
    too) are the incumbent of the next run: a run replaces it only when
    fresh renders beat it, so the reported best never goes up.
    """
    from . import refine as rf
    from .resynthesis import CLIP_START_KINDS, clip_refine_config

    stop = state.stop if stop is None else stop
    stop.clear()
    start = state.best_preset
    offset = state.refine_renders
    run = state.refine_runs
    t0 = time.perf_counter()
    refine_kwargs.setdefault("incumbent", (state.best_loss, state.best_audio))
    kind = getattr(state.candidates[state.best_index], "source", "") if state.candidates else ""
    if kind in CLIP_START_KINDS:
        # a start made of the clip: search only what its table and envelope leave open (resynthesis.search_locks)
        refine_kwargs["config"] = clip_refine_config(refine_kwargs.get("config"), kind)
    gen = rf.refine(state.analysis, [start], budget, seed=int(seed) + run, renderer=renderer, stop=stop,
                    **refine_kwargs)
    history = list(state.history)
    prev_best: Preset | None = None
    current = state
    try:
        for ev in gen:
            improved = ev.best is not prev_best
            prev_best = ev.best
            history.append((offset + int(ev.renders), float(ev.best_loss), float(ev.generation_loss)))
            timings = dict(current.timings)
            timings["refine"] = state.timings.get("refine", 0.0) + (time.perf_counter() - t0)
            current = dataclasses.replace(
                current,
                refined=ev.best,
                refined_audio=ev.best_audio if improved or current.refined_audio is None else current.refined_audio,
                refined_loss=float(ev.best_loss),
                history=tuple(history),
                refine_renders=offset + int(ev.renders),
                refine_generations=state.refine_generations + int(ev.generation),
                refine_runs=run + 1,
                refine_reason=ev.reason if ev.done else "",
                timings=timings,
            )
            yield RefineUpdate(current, ev, improved)
    finally:
        gen.close()


def export(state: MatchState, folder: str | Path, name: str | None = None) -> Path:
    """Save the best preset so far as ``<folder>/<clip stem>.vital`` (the preset is named after the clip)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SessionError(f"cannot save the preset: {folder} is not a folder")
    stem = safe_stem(name) if name else state.stem
    a = state.analysis
    how = (f"refined with {state.refine_renders} renders, loss {state.best_loss:.3f}" if state.refined is not None
           else f"predicted, loss {state.best_loss:.3f}")
    pitch = a.note_name() if a.pitched else "unpitched, matched at C4"
    preset = state.best_preset.with_meta(
        name=stem, author="Vital Inverse",
        comments=f"Matched by Vital Inverse to '{a.source_name}' ({pitch}); {how}.",
    )
    return preset.save(folder / f"{stem}.vital")



def warm_worker(_: int = 0) -> int:
    """Run in a render worker at start-up: import and run the refinement loss once (torch, auraloss)
    so the first refinement does not pay for it on a user's request. Returns the worker's pid."""
    import os

    from .scoring import loss

    t = np.linspace(0.0, 1.0, 8192, dtype=np.float32)
    x = np.stack([np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    loss(x, x * 0.5)
    return os.getpid()


# --------------------------------------------------------------------------
# One call for the command line
# --------------------------------------------------------------------------


def match_clip(path, refine_evals: int = 0, seed: int = 0, out: str | Path | None = None, k: int = 4, *,
               predictor=None, renderer=None, checkpoint: str | None = None,
               progress: Callable[[str], None] | None = None, lock: Sequence[str] | str | None = None,
               generative: int = 0) -> dict:
    """Match one clip end to end; the result as one JSON-ready dict.

    For ``vital-inverse match CLIP [--out X.vital] [--refine-evals N] [--seed S] [--json]``.
    ``out``: the .vital to write (default ``<clip stem>.vital`` in the current
    folder; a folder -> ``<folder>/<clip stem>.vital``). ``refine_evals``: render
    budget of the CMA-ES refinement (0 = prediction only). ``predictor``/
    ``renderer`` may be passed in to reuse them; otherwise the default
    checkpoint (or ``checkpoint``) is loaded and a ParallelRenderer is made
    and closed here. ``lock``: modules or settings refinement leaves as predicted
    (``locks.expand_locks``; checked before anything is loaded). ``generative``: samples of the
    generative head added to the candidates (0: none).
    """
    from .locks import expand_locks
    from .params import default_space
    from .predict import PresetPredictor
    from .refine import Budget, RefineConfig
    from .synth import ParallelRenderer
    from .tutorial import offline_tutorial

    if isinstance(refine_evals, bool) or int(refine_evals) < 0:
        raise SessionError(f"the refinement budget must be 0 or more renders, got {refine_evals!r}")
    say = progress or (lambda m: None)
    locked = expand_locks(default_space(), lock)
    t0 = time.perf_counter()
    t = time.perf_counter()
    predictor = predictor or PresetPredictor.load(checkpoint)
    load_seconds = time.perf_counter() - t
    own = renderer is None
    renderer = renderer or ParallelRenderer()
    try:
        say("analysing")
        state = analyze_clip(path, predictor, renderer, k=k, generative=generative,
                             progress=lambda f, m: say(m) if progress else None)
        if int(refine_evals) > 0:
            say(f"refining ({int(refine_evals)} renders)")
            for update in refine_stream(state, Budget(renders=int(refine_evals), seconds=None), seed, renderer,
                                        config=RefineConfig(locked=locked)):
                state = update.state
                ev = update.event
                say(f"generation {ev.generation}: {ev.renders} renders, best loss {ev.best_loss:.4f}")
    finally:
        if own:
            renderer.close()
    t = time.perf_counter()
    target = Path(out) if out is not None else Path.cwd() / f"{state.stem}.vital"
    if target.is_dir():
        target = target / f"{state.stem}.vital"
    if not target.parent.is_dir():
        raise SessionError(f"cannot write {target}: the folder {target.parent} does not exist")
    name = target.stem if target.suffix == ".vital" else target.name
    saved = export(state, target.parent, name=name)
    if saved.name != target.name and target.suffix == ".vital":
        saved = saved.replace(target)
    export_seconds = time.perf_counter() - t
    t = time.perf_counter()
    a = state.analysis
    text = offline_tutorial(state.best_preset, int(a.note), bool(a.pitched))
    tutorial_seconds = time.perf_counter() - t
    timings = {"load_model": load_seconds, **state.timings, "export": export_seconds, "tutorial": tutorial_seconds,
               "total": time.perf_counter() - t0}
    return {
        "clip": str(path),
        "note": int(a.note),
        "note_name": a.note_name(),
        "cents": float(a.cents),
        "pitched": bool(a.pitched),
        "confidence": float(a.confidence),
        "f0_hz": a.f0_hz,
        "chord": [int(n) for n in a.chord],
        "notices": list(a.notices),
        "note_seconds": float(a.note_seconds),
        "render_seconds": float(a.render_seconds),
        "losses": {
            "predicted": float(state.predicted_loss),
            "refined": None if state.refined_loss is None else float(state.refined_loss),
            "candidates": [float(x) if math.isfinite(x) else None for x in state.candidate_losses],
        },
        "candidates": [c.label for c in state.candidates],
        "chosen_candidate": int(state.best_index),
        "refine": {"renders": state.refine_renders, "generations": state.refine_generations,
                   "reason": state.refine_reason or None, "seed": int(seed), "locked": sorted(locked)},
        "timings": {k_: round(float(v), 4) for k_, v in timings.items()},
        "paths": {"preset": str(saved), "checkpoint": str(getattr(predictor, "source", ""))},
        "tutorial": text,
    }
