# SPDX-License-Identifier: GPL-3.0-or-later
"""CMA-ES refinement: move a start preset towards a target note through Vita's own renderer.

The predictor gets close; refinement gets the match. ``refine`` is a
generator of ``RefineEvent``s (one per CMA-ES generation, plus one for the
start), so the CLI can print progress and the app can stream a live plot;
it can be stopped at any event (``close()`` it, or just stop iterating) and
then frees the render workers it started.

How it works
------------
1. Every start preset is rendered at the target's note and length (MIDI
   ``target.note``, velocity 0.8, ``target.note_seconds`` held,
   ``target.render_seconds`` long) and scored; the best one is the start.
   These renders count against the budget. For a pitched target each start
   is first shifted onto the target's f0 (``tuning.retune``, one render
   each), and nothing that moves the pitch is searched (every transpose and
   tune, routes into a tune: ``tuning.pitch_locked``), so the match stays on
   the clip's pitch; unpitched targets search them as before. A start given
   with its ``incumbent`` score (a previous run's best, the scored
   prediction) is not re-rendered: that score is the one to beat.
2. A start whose filter 1 is off gets it switched on fully open (Init's
   analog 12 dB low-pass at the top cutoff, envelope 2 -> cutoff at 1e-4):
   it sounds the same but the filter and envelope 2 become searchable
   (``RefineConfig.open_filter``).
3. Search space: the continuous (and ordinal) ParamSpace parameters that
   are *reachable* for the start: ``ParamSpace.audible`` plus the parameters
   of envelopes/LFOs whose routes are at zero (the search moves those
   amounts); normalised to [0, 1]. Categoricals (switches, filter model,
   wavetables...) stay those of the start. CMA-ES (``cma``) ask/tell with
   bounds [0, 1], popsize ``DEFAULT_POPSIZE``, step ``DEFAULT_SIGMA0``, and
   a diagonal covariance (sep-CMA-ES): with 40-60 dimensions and 600
   renders a full covariance has too few samples to learn.
   ``RefineConfig(race=N)`` searches the N best-scoring starts in turns for
   the first ``race_share`` of the budget, then only the leader (measured,
   not the default).
4. Each population is rendered *and scored* (``scoring.Evaluator``, the
   render-and-score path shared with the app and the benchmarks) in the
   ParallelRenderer's worker processes (one chunk per worker), so the loss
   runs on every core too and only losses and each chunk's best render
   travel back. The loss is NumPy (no torch in the workers: importing it
   costs seconds per worker).
5. Loss (``scoring.loss``): each render is padded/cropped to the target's length and
   scaled to the target's RMS (the target is loudness-normalised and a
   preset's output level is not what we match; the exported preset keeps its
   own level), then auraloss ``MultiResolutionSTFTLoss()`` with its defaults,
   one sound per call (equal to ``metrics.mrstft`` to ~1e-6) against the
   target. No log-mel term: it did not improve MSS. A render below
   -60 dBFS RMS is a failed candidate (``FAILED_LOSS``), in the workers too.
6. Noise: Vita renders differ run to run (random oscillator/unison phases,
   noise), so the minimum of a population is biased low. When a generation's
   best beats the incumbent it is re-rendered ``RESCORE_RENDERS`` more times
   and becomes the incumbent only if the mean of those fresh scores is lower;
   ``RefineEvent.best_loss`` is always such a fresh mean (also for the
   start), so it never goes up and is what a new render of ``best`` scores.
   Re-scoring counts against the budget.
7. Two measures must agree (``RefineConfig.mss_gate``, on by default): the
   fresh renders of a challenger are also scored by ``metrics.mss`` (the
   level-free multi-scale log-mel distance in dB), and it replaces the
   incumbent only if it is closer by both. MRSTFT alone sometimes prefers a
   preset that sounds further away (a lower MRSTFT with a higher MSS), so
   every accepted step is one a listener-facing measure agrees with; the
   start's MSS is measured on fresh renders too.
8. What the search ranks by (``RefineConfig.mss_weight``, off by default,
   0.2 for a start made of the clip): the loss plus that weight x MSS in
   dB, computed in the workers (``scoring.mss_against``, equal to
   ``metrics.mss``), so CMA-ES proposes challengers the gate can accept
   instead of ones that win by the loss and lose by MSS. The reported
   best loss stays the plain loss (the app's scale; it never rises).
9. Polish (``RefineConfig.restarts``): when the plateau stop (or CMA-ES's
   own) would end the run with budget left, the search restarts around the
   best so far with ``restart_shrink`` x the step, up to ``restarts``
   times. A start made of the clip sits in a narrow valley: every step of
   the initial size is worse by both measures, smaller ones are not.

The measurements behind these choices are in BENCHMARKS.md section 5.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .intake import Analysis
from .params import ParamSpace, default_space
from .preset import Preset, PresetError
from .scoring import FAILED_LOSS, Evaluator, as_stereo, loss, min_samples
from .synth import SAMPLE_RATE, ParallelRenderer
from .tuning import pitch_locked, retune

__all__ = [
    "DEFAULT_POPSIZE",
    "DEFAULT_SIGMA0",
    "RESCORE_RENDERS",
    "Budget",
    "RefineConfig",
    "RefineError",
    "RefineEvent",
    "loss",
    "refine",
]

#: CMA-ES population and initial step (normalised units), chosen by measurement (see above).
DEFAULT_POPSIZE = 12
DEFAULT_SIGMA0 = 0.05
#: Fresh renders used to re-score a new incumbent (the mean is what is reported).
RESCORE_RENDERS = 2
#: A target whose peak is at or below this is silent.
_SILENT_PEAK = 1e-6


class RefineError(UserError):
    """Refinement cannot run with these inputs; the message says why and what to do."""


@dataclass(frozen=True)
class Budget:
    """When to stop: after ``renders`` renders or ``seconds`` of wall time, whichever comes first.

    A limit that is None or <= 0 is not set; at least one must be set. Every
    render counts: start candidates, the population, re-scoring.
    """

    renders: int | None = 600
    seconds: float | None = None


@dataclass(frozen=True)
class RefineEvent:
    """Progress after the start (generation 0) and after each CMA-ES generation."""

    renders: int  # renders done so far (start candidates, population, re-scoring)
    generation: int  # 0 = the start presets were scored
    best_loss: float  # loss of the incumbent: mean of fresh re-renders (honest, not the lucky draw)
    generation_loss: float  # best single loss within this generation
    elapsed: float  # seconds since refinement started
    best: Preset  # best preset so far (exportable)
    best_audio: np.ndarray = field(repr=False)  # its render, float32 (2, n), scaled to the target's RMS
    done: bool = False  # True on the final event
    reason: str = ""  # on the final event: "budget", "time", "converged" or "stopped"
    population: np.ndarray | None = field(default=None, repr=False)  # this generation's candidates (normalised, searched dims)
    searched: tuple[str, ...] = ()  # names of the parameters being searched
    #: challengers whose fresh renders beat the incumbent by the loss, and of those the ones MSS turned down
    #: (``RefineConfig.mss_gate``): how often the loss and a listener-facing measure disagree, this run so far
    challengers: int = 0
    mss_rejections: int = 0
    best_mss: float = math.nan  # MSS (dB) of the incumbent: mean of the same fresh renders as ``best_loss``


@dataclass(frozen=True)
class RefineConfig:
    """Knobs that were measured (see the module docstring); the defaults are the chosen ones."""

    dims: str = "reachable"  # "audible" for the start; "reachable": also sources of zero routes; "all" continuous
    logmel_weight: float = 0.0  # weight of a log-mel (dB) term added to MRSTFT; 0 = MRSTFT only
    rescore: int = RESCORE_RENDERS  # fresh renders to re-score a new incumbent (0 = trust the draw)
    method: str = "cma"  # "cma", or "random" (uniform in [0, 1] over the same dims; for benchmarks)
    open_filter: bool = True  # a start with filter 1 off gets it on, fully open, so it can be searched
    diagonal: bool = True  # sep-CMA-ES (diagonal covariance): adapts per-parameter steps within 600 renders
    race: int = 1  # the best-scoring N start presets are each searched, in turns, for the first part of the budget
    race_share: float = 0.3  # share of the budget (renders, else seconds) the race lasts; then only its leader goes on
    locked: frozenset[str] = frozenset()  # parameters kept exactly as the start has them (locks.expand_locks)
    lock_pitch: bool = True  # pitched target: starts retuned onto its f0; nothing that moves the pitch is searched
    mss_gate: bool = True  # a new incumbent must also be closer by metrics.mss (fresh renders), not only by the loss
    moves: object | None = None  # moves.CategoricalMoves (anything with .propose(preset, n)): tried on a stall
    stall_generations: int = 6  # generations without a better incumbent before categorical moves are tried
    move_batch: int = 8  # categorical moves rendered per try (counted in the budget)
    plateau: int = 0  # stop ("converged") once the best loss fell by less than plateau_tol over this many generations
    plateau_tol: float = 0.005  # relative; plateau = 0: always spend the whole budget
    #: the search minimises loss + mss_weight x MSS (dB, computed in the workers), so CMA-ES ranks candidates
    #: by what the gate and a listener judge too; the reported best loss stays the plain loss
    mss_weight: float = 0.0
    #: on a plateau (or CMA-ES converged) with budget left, search again from the best so far with the step
    #: times ``restart_shrink``, up to ``restarts`` times, before stopping: a polish near a start already close
    restarts: int = 0
    restart_shrink: float = 0.3
    #: a challenger whose fresh renders beat the incumbent is rendered ``rescore`` more times and must still
    #: beat it on the mean of all of them: the best of a generation is the luckiest draw, and without this
    #: a noisy preset "wins" by a few hundredths of a dB that fresh renders do not repeat
    confirm: bool = True


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------


def _check_budget(budget: Budget | int) -> tuple[int | None, float | None]:
    if isinstance(budget, bool) or not isinstance(budget, (Budget, int, np.integer)):
        raise RefineError(f"budget must be a Budget or a number of renders, got {budget!r}")
    if not isinstance(budget, Budget):
        budget = Budget(renders=int(budget))
    renders, seconds = budget.renders, budget.seconds
    if seconds is not None and not math.isfinite(float(seconds)):
        raise RefineError(f"the time budget must be a finite number of seconds, got {seconds!r}")
    renders = int(renders) if renders is not None and int(renders) > 0 else None
    seconds = float(seconds) if seconds is not None and float(seconds) > 0 else None
    if renders is None and seconds is None:
        raise RefineError(
            f"the refinement budget is empty ({budget.renders} renders, {budget.seconds} s): "
            "give a number of renders (e.g. 600) or a time limit in seconds, greater than 0"
        )
    return renders, seconds


def _check_target(target: Analysis) -> None:
    if not isinstance(target, Analysis):
        raise RefineError(f"the target must be an intake.Analysis (from intake.analyze), got {type(target).__name__}")
    audio = np.asarray(target.audio)
    if audio.ndim not in (1, 2) or (audio.ndim == 2 and audio.shape[0] not in (1, 2)) or audio.size == 0:
        raise RefineError(f"the target audio must be shaped (2, n), got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise RefineError("the target audio contains NaN or infinite samples")
    n = audio.shape[-1]
    need = min_samples()
    if n < need:
        raise RefineError(
            f"the target is {n} samples ({1000 * n / SAMPLE_RATE:.1f} ms) long; refinement compares spectra over "
            f"windows of up to {need} samples ({1000 * need / SAMPLE_RATE:.0f} ms), so use a clip at least that long"
        )
    peak = float(np.max(np.abs(audio)))
    if peak <= _SILENT_PEAK:
        raise RefineError("the target is silent: there is nothing to match; use a clip with a note in it")
    if not (0 <= int(target.note) <= 127):
        raise RefineError(f"the target's MIDI note must be 0-127, got {target.note}")
    if not (target.note_seconds > 0 and target.render_seconds > 0):
        raise RefineError(
            f"the target's note and render lengths must be positive, got {target.note_seconds} s and {target.render_seconds} s"
        )


def _check_starts(start_presets: Sequence[Preset], space: ParamSpace) -> list[Preset]:
    if isinstance(start_presets, Preset):
        start_presets = [start_presets]
    starts = list(start_presets or [])
    if not starts:
        raise RefineError("no start preset was given: pass at least one (e.g. Preset.init() or the predictor's candidates)")
    for i, p in enumerate(starts):
        if not isinstance(p, Preset):
            raise RefineError(f"start preset {i} is a {type(p).__name__}, not a Preset")
        if p.space_hash and p.space_hash != space.hash:
            raise RefineError(
                f"start preset {i} ({p.name!r}) was made for ParamSpace {p.space_hash}, but this code uses "
                f"{space.hash}; re-create it with this version (import its .vital file again or predict again)"
            )
        try:
            p.check_space(space)
        except PresetError as e:
            raise RefineError(f"start preset {i}: {e}") from None
    return starts


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------

#: Route whose amount is set to a negligible value by ``_open_filter`` so envelope 2 becomes searchable.
_FILTER_ENV_ROUTE = "mod_env2_filter1_cutoff"
_TINY_ROUTE = 1e-4
_FILTER_RESET = ("filter_1_model", "filter_1_style", "filter_1_blend", "filter_1_resonance", "filter_1_drive",
                 "filter_1_keytrack")


def _reachable(space: ParamSpace, values) -> set[str]:
    """Parameters audible for these categoricals once the searched route amounts leave zero.

    ``audible`` leaves out an envelope or LFO whose routes are all at zero,
    but the search moves those amounts, and then the source's own
    parameters matter too.
    """
    probe = dict(values)
    for p in space.routes:
        if abs(probe[p.name]) <= 1e-6:
            probe[p.name] = p.max
    return space.audible(probe)


def _open_filter(start: Preset, space: ParamSpace) -> Preset | None:
    """``start`` with filter 1 switched on fully open and envelope 2 -> cutoff at ~0, or None.

    The sound barely changes (an open 12 dB analog low-pass; loss vs Init
    without it 0.43, render-to-render 0.29), but the cutoff, resonance,
    blend, drive, keytrack, envelope 2 and its amount become audible and so
    searchable: without this, refinement from Init cannot touch the filter.
    Only for starts whose filter 1 is off (None otherwise); without a free
    modulation slot for the route, the filter alone is opened.
    """
    values = start.values
    on = space["filter_1_on"]
    if on.index_of(values["filter_1_on"]) != 0:
        return None
    # Init's filter (analog 12 dB low-pass, no drive, no keytrack), whatever an imported preset left there
    changes = {n: space[n].default for n in _FILTER_RESET if n in space}
    changes["filter_1_on"] = on.option_values[1]
    changes["filter_1_cutoff"] = space["filter_1_cutoff"].max
    if _FILTER_ENV_ROUTE in space and abs(values[_FILTER_ENV_ROUTE]) <= 1e-6:
        changes[_FILTER_ENV_ROUTE] = _TINY_ROUTE
    opened = start.with_values(changes)
    try:
        opened.to_vital_dict(space)
    except PresetError:
        opened = start.with_values({k: v for k, v in changes.items() if k != _FILTER_ENV_ROUTE})
    return opened


def _seed(seed: int) -> int:
    """cma treats seed 0/None as 'from the clock': map every int to a fixed positive seed."""
    return int(seed) % (2**31 - 2) + 1


def refine(
    target: Analysis,
    start_presets: Sequence[Preset],
    budget: Budget | int = Budget(),
    *,
    seed: int = 0,
    renderer: ParallelRenderer | None = None,
    popsize: int | None = None,
    sigma0: float | None = None,
    stop: threading.Event | None = None,
    config: RefineConfig = RefineConfig(),
    incumbent: tuple[float, np.ndarray] | None = None,
) -> Iterator[RefineEvent]:
    """Refine towards ``target``; yields a RefineEvent after the start and after each generation.

    Inputs are checked here, at the call (RefineError); rendering starts at
    the first ``next()``. The last event has ``done=True`` and a ``reason``.
    Closing the generator (or dropping it) stops after the current event
    and closes the ParallelRenderer if this call created it (a renderer
    passed in stays open). Setting ``stop`` (a threading.Event) ends the run
    after the current generation with a final event, reason "stopped".
    Same ``seed`` and starts -> the same CMA-ES asks (renders still differ
    slightly run to run). ``incumbent``: (loss, matched audio) of the one
    start preset, already scored as the mean of fresh renders (by a previous
    run, or as the scored prediction): it is not re-rendered, not retuned,
    and stays the best until fresh renders of a challenger beat it, so a
    second run never reports a worse best than the first ended with.
    """
    space = default_space()
    _check_target(target)
    renders_limit, seconds_limit = _check_budget(budget)
    starts = _check_starts(start_presets, space)
    popsize = DEFAULT_POPSIZE if popsize is None else int(popsize)
    if popsize < 2:
        raise RefineError(f"popsize must be at least 2, got {popsize}")
    sigma0 = DEFAULT_SIGMA0 if sigma0 is None else float(sigma0)
    if not (0.0 < sigma0 <= 1.0):
        raise RefineError(f"sigma0 is a step in normalised [0, 1] units and must be in (0, 1], got {sigma0}")
    if config.dims not in ("audible", "reachable", "all") or config.method not in ("cma", "random"):
        raise RefineError(f"unknown refinement config {config}")
    if renderer is not None and not isinstance(renderer, ParallelRenderer):
        raise RefineError(f"renderer must be a ParallelRenderer, got {type(renderer).__name__}")
    if incumbent is not None:
        if len(starts) != 1 or not math.isfinite(float(incumbent[0])) or float(incumbent[0]) >= FAILED_LOSS:
            raise RefineError("an incumbent score goes with exactly one start preset and a finite loss")
        incumbent = (float(incumbent[0]), as_stereo(incumbent[1], "incumbent audio"))
    return _run(target, starts, renders_limit, seconds_limit, seed, renderer, popsize, sigma0, stop, config, space,
                incumbent)


def _run(target, starts, renders_limit, seconds_limit, seed, renderer, popsize, sigma0, stop, config, space, incumbent):
    own = renderer is None
    if own:
        renderer = ParallelRenderer()
    try:
        yield from _loop(target, starts, renders_limit, seconds_limit, seed, renderer, popsize, sigma0, stop, config,
                         space, incumbent)
    finally:
        if own:
            renderer.close()


class _Search:
    """One search (CMA-ES, or uniform random for benchmarks) from one start preset.

    Searches the start's continuous parameters chosen by ``config.dims``,
    normalised to [0, 1]; categoricals stay the start's. Keeps its own
    honest best (see ``_loop``).
    """

    def __init__(self, start: Preset, loss: float, audio: np.ndarray, space: ParamSpace, config: RefineConfig,
                 popsize: int, sigma0: float, seed: int, locked: frozenset[str] = frozenset(),
                 mss: float = math.inf) -> None:
        self.start, self.space, self.popsize = start, space, popsize
        self.values = dict(start.values)
        self.x_all = space.continuous_vector(self.values)
        if config.dims in ("audible", "reachable"):
            keep = space.audible(self.values) if config.dims == "audible" else _reachable(space, self.values)
            self.dims = [i for i, p in enumerate(space.continuous) if p.name in keep and p.name not in locked]
        else:
            self.dims = list(range(len(space.continuous)))
        self.locked = config.locked & set(self.values)  # not searched, and written back exactly as they were
        self.dims = [i for i in self.dims if space.continuous[i].name not in self.locked | locked]
        if not self.dims:
            raise RefineError("every setting refinement could change is locked: unlock one to refine")
        self.names = tuple(space.continuous[i].name for i in self.dims)
        self.rng = np.random.default_rng(_seed(seed))
        self.es = None
        if config.method == "cma":
            import cma

            self.es = cma.CMAEvolutionStrategy(
                self.x_all[self.dims], sigma0,
                {"bounds": [0.0, 1.0], "popsize": popsize, "seed": _seed(seed), "verbose": -9, "verb_log": 0,
                 "verb_disp": 0, "CMA_diagonal": bool(config.diagonal)},
            )
        self.best, self.best_loss, self.best_audio = start, float(loss), audio
        self.best_mss = float(mss)  # mean metrics.mss of the incumbent's fresh renders (the gate's other measure)
        self.stalled = 0  # generations since the incumbent last improved
        self.mss_weight = float(config.mss_weight)
        self.sigma, self.seed, self.diagonal, self.restarts = sigma0, seed, bool(config.diagonal), 0

    @property
    def best_objective(self) -> float:
        """The incumbent on the search's scale (loss + mss_weight x MSS): what a generation's best must beat."""
        if self.mss_weight and math.isfinite(self.best_mss) and self.best_mss < FAILED_LOSS:
            return self.best_loss + self.mss_weight * self.best_mss
        return self.best_loss

    def restart(self, shrink: float) -> None:
        """A new CMA-ES around the best so far with the step times ``shrink`` (a local polish)."""
        import cma

        self.restarts += 1
        self.sigma *= shrink
        best_x = self.space.continuous_vector(self.best.values)[self.dims]
        self.es = cma.CMAEvolutionStrategy(
            np.clip(best_x, 0.0, 1.0), self.sigma,
            {"bounds": [0.0, 1.0], "popsize": self.popsize, "seed": _seed(self.seed + 1000 * self.restarts),
             "verbose": -9, "verb_log": 0, "verb_disp": 0, "CMA_diagonal": self.diagonal},
        )

    def preset_at(self, x: np.ndarray) -> Preset:
        full = self.x_all.copy()
        full[self.dims] = np.clip(x, 0.0, 1.0)
        values = self.space.with_continuous(self.values, full)
        values.update({n: self.values[n] for n in self.locked})
        return self.start.with_values(values)

    def ask(self) -> np.ndarray:
        if self.es is not None:
            return np.asarray(self.es.ask(), dtype=np.float64)
        return self.rng.uniform(0.0, 1.0, size=(self.popsize, len(self.dims)))

    def tell(self, X: np.ndarray, losses: np.ndarray) -> None:
        if self.es is not None:
            self.es.tell(list(X), losses.tolist())

    def converged(self) -> bool:
        return self.es is not None and bool(self.es.stop())


def _start_incumbent(ev, start, loss, audio, space, config, left, fresh):
    """(start, loss, audio, MSS) for a start whose honest loss is known (it is kept: the best never rises);
    its MSS is measured on fresh renders (the gate compares challengers with it). Its opened-filter variant
    (``_open_filter``) replaces it only if fresh renders beat it on both measures."""
    k = int(min(max(1, int(config.rescore)), max(0.0, left())))
    s_mss = _mss_of(audio, ev)
    if (config.mss_gate or config.logmel_weight) and k > 0:
        f_loss, f_mss, f_audio = fresh(start, k)
        s_mss = f_mss if math.isfinite(f_mss) and f_mss < FAILED_LOSS else s_mss
        if config.logmel_weight and f_audio is not None:
            # the carried score is the plain loss (the app's scale); with a log-mel term this run's
            # challengers are scored on another scale, so the start is scored on it too
            loss, audio = f_loss, f_audio
    opened = _open_filter(start, space) if config.open_filter else None
    k = int(min(k, max(0.0, left())))
    if opened is not None and k > 0:
        o_loss, o_mss, a = fresh(opened, k, (loss, s_mss))
        if o_loss < loss and a is not None and (not config.mss_gate or o_mss < s_mss):
            return opened, o_loss, a, o_mss
    return start, loss, audio, s_mss


def _mss_of(audio: np.ndarray | None, ev: Evaluator) -> float:
    """metrics.mss of one matched render against the target (inf without a render)."""
    if audio is None:
        return math.inf
    return ev.mss(audio)


def _loop(target, starts, renders_limit, seconds_limit, seed, renderer, popsize, sigma0, stop, config, space,
          incumbent=None):
    t0 = time.monotonic()
    ev = Evaluator(renderer, target, config.logmel_weight, config.mss_weight)
    rescore = max(0, int(config.rescore))

    def left() -> float:
        return math.inf if renders_limit is None else renders_limit - ev.renders

    def fresh(preset: Preset, k: int, to_beat: tuple[float, float] | None = None
              ) -> tuple[float, float, np.ndarray | None]:
        """Mean loss and mean MSS (``metrics.mss``, computed by ``Evaluator.rescore``) of k new renders of
        ``preset``, and one of them (matched). With ``to_beat`` (the incumbent's loss and MSS) and
        ``config.confirm``: if those renders beat it (by both measures with the gate), k more are made and
        the means are over all 2k, so a lucky pair of renders does not decide."""
        losses, _, a = ev.rescore([preset] * k)
        msses = ev.last_mss
        wins = (to_beat is not None and float(np.mean(losses)) < to_beat[0]
                and (not config.mss_gate or float(np.mean(msses)) < to_beat[1]))
        if wins and config.confirm and left() >= k:
            more, _, _ = ev.rescore([preset] * k)
            losses, msses = np.concatenate([losses, more]), np.concatenate([msses, ev.last_mss])
        return float(np.mean(losses)), float(np.mean(msses)) if len(msses) else math.inf, a

    tally = {"challengers": 0, "mss_rejections": 0}

    def beats(c_loss: float, c_mss: float, search: _Search) -> bool:
        """A challenger replaces the incumbent only if fresh renders say it is closer by the loss and, with
        ``mss_gate``, by MSS too: where the two disagree the listener may not hear an improvement."""
        if not c_loss < search.best_loss:
            return False
        tally["challengers"] += 1
        if config.mss_gate and not c_mss < search.best_mss:
            tally["mss_rejections"] += 1
            return False
        return True

    # -- start: score every start preset; the best ``config.race`` become searches ----------
    searches: list[_Search] = []
    ranked: list[int] = []
    if incumbent is not None:
        start, s_loss, s_audio, s_mss = _start_incumbent(ev, starts[0], *incumbent, space, config, left, fresh)
        locked = frozenset(pitch_locked(start, target, space)) if config.lock_pitch else frozenset()
        searches.append(_Search(start, s_loss, s_audio, space, config, popsize, sigma0, seed, locked, s_mss))
    else:
        starts = starts[: int(min(len(starts), left()))]
        if config.lock_pitch and target.pitched and left() > 2 * len(starts):
            starts = retune(starts, target, ev.render)  # onto the clip's f0 before anything is searched
        _, best_i, best_audio = ev.evaluate(starts)
        losses = ev.last_losses.copy()  # the plain loss (the ranking above may include the MSS term)
        if best_i < 0 or losses[best_i] >= FAILED_LOSS:
            detail = f": {ev.failures[0]}" if ev.failures else ""
            raise RefineError(f"none of the {len(starts)} start preset(s) could be rendered{detail}")
        ranked = [best_i] + [int(i) for i in np.argsort(losses, kind="stable")
                             if losses[i] < FAILED_LOSS and i != best_i]
    for rank, i in enumerate(ranked[: max(1, int(config.race))]):
        start, s_loss, s_audio = starts[i], float(losses[i]), best_audio if i == best_i else None
        s_mss = math.inf
        opened = _open_filter(start, space) if config.open_filter else None
        if opened is not None and any(opened.values[n] != start.values[n] for n in config.locked):
            opened = None  # opening the filter would change a locked setting
        # honest start loss: fresh renders of the chosen start (a minimum over starts is biased low)
        need = 1 if (opened is not None or s_audio is None) else 0
        k = int(min(max(rescore, need), max(0.0, left())))
        if opened is not None and k > 0:
            o_loss, o_mss, a = fresh(opened, k)
            if o_loss < FAILED_LOSS and a is not None:
                start, s_loss, s_audio, s_mss, k = opened, o_loss, a, o_mss, 0
            else:
                k = int(min(max(rescore, 1 if s_audio is None else 0), max(0.0, left())))
        if k > 0:
            f_loss, f_mss, a = fresh(start, k)
            if a is not None:
                s_loss, s_audio, s_mss = f_loss, a, f_mss
        if s_audio is None or s_loss >= FAILED_LOSS:
            if rank > 0:
                continue  # a runner-up that failed its fresh renders does not race
            # the best start failed its fresh renders (Vita, rarely, renders silence): keep its first score
            start, s_loss, s_audio = starts[i], float(losses[i]), best_audio
            s_mss = math.inf
        if not math.isfinite(s_mss) or s_mss >= FAILED_LOSS:
            s_mss = _mss_of(s_audio, ev)
        locked = frozenset(pitch_locked(start, target, space)) if config.lock_pitch else frozenset()
        searches.append(_Search(start, s_loss, s_audio, space, config, popsize, sigma0, seed + rank, locked, s_mss))
    race_renders = None if renders_limit is None else config.race_share * renders_limit
    race_seconds = None if seconds_limit is None else config.race_share * seconds_limit

    def leader() -> _Search:
        return min(searches, key=lambda s: s.best_loss)

    current = leader()
    generation = 0
    gen_loss = current.best_loss
    last_gen_seconds = 0.0
    population = None

    def racing() -> bool:
        if len(searches) < 2:
            return False
        if race_renders is not None:
            return ev.renders < race_renders
        return time.monotonic() - t0 < race_seconds

    def reason_to_stop() -> str:
        if stop is not None and stop.is_set():
            return "stopped"
        if left() - rescore < 1:
            return "budget"
        elapsed = time.monotonic() - t0
        if seconds_limit is not None and elapsed + 0.5 * last_gen_seconds >= seconds_limit:
            return "time"
        if all(s.converged() for s in searches) or plateaued():
            if polish():
                return ""
            return "converged"
        return ""

    def polish() -> bool:
        """Restart the leader's search with a smaller step around its best (``config.restarts``)."""
        best = leader()
        if (config.method != "cma" or len(searches) != 1 or best.restarts >= config.restarts
                or left() - rescore < popsize):
            return False
        best.restart(config.restart_shrink)
        history.clear()  # the plateau is judged afresh for the new step
        return True

    history: list[float] = []  # the best loss after each generation

    def plateaued() -> bool:
        g = config.plateau
        return g > 0 and len(history) > g and history[-1] > (1.0 - config.plateau_tol) * history[-1 - g]

    def event() -> RefineEvent:
        best = leader()
        return RefineEvent(
            renders=ev.renders, generation=generation, best_loss=best.best_loss, generation_loss=gen_loss,
            elapsed=time.monotonic() - t0, best=best.best, best_audio=best.best_audio, done=bool(why), reason=why,
            population=population, searched=current.names, best_mss=best.best_mss, **tally,
        )

    why = reason_to_stop()
    yield event()
    turn = 0
    while not why:
        if stop is not None and stop.is_set():  # set while the caller handled the last event
            why = "stopped"
            yield event()
            break
        if len(searches) > 1 and not racing():
            searches = [leader()]  # the race is over: the rest of the budget goes to the leader
        live = [s for s in searches if not s.converged()] or searches
        current = live[turn % len(live)]
        turn += 1
        g0 = time.monotonic()
        generation += 1
        before = current.best_loss
        n = int(min(popsize, left() - rescore))
        X = current.ask()
        partial = n < popsize
        losses, best_i, best_audio = ev.evaluate([current.preset_at(x) for x in X[:n]])
        if not partial:
            current.tell(X, losses)
        gen_loss = float(np.min(ev.last_losses)) if len(ev.last_losses) else float(losses[best_i])
        if float(losses[best_i]) < current.best_objective:
            challenger = current.preset_at(X[best_i])
            k = int(min(rescore, max(0.0, left())))
            c_loss, c_mss, c_audio = (fresh(challenger, k, (current.best_loss, current.best_mss)) if k > 0
                                      else (float(ev.last_losses[best_i]), _mss_of(best_audio, ev), best_audio))
            if beats(c_loss, c_mss, current) and c_audio is not None:
                current.best, current.best_audio, current.best_loss = challenger, c_audio, c_loss
                current.best_mss = c_mss
        if config.moves is not None:  # stalled: try other categoricals (moves.py), judged on fresh renders
            current.stalled = 0 if current.best_loss < before else current.stalled + 1
            if current.stalled >= config.stall_generations and left() - rescore > config.move_batch:
                current.stalled = 0
                moved = _categorical_move(current, ev, fresh, beats, left, rescore, config)
                if moved is not None:
                    locked = frozenset(pitch_locked(moved[0], target, space)) if config.lock_pitch else frozenset()
                    new = _Search(*moved[:3], space, config, popsize, sigma0, seed + generation, locked, moved[3])
                    searches[searches.index(current)] = current = new
        last_gen_seconds = time.monotonic() - g0
        population = X[:n].copy()
        history.append(float(leader().best_loss))
        why = "budget" if partial else reason_to_stop()
        yield event()


def _categorical_move(search: _Search, ev, fresh, beats, left, rescore: int, config: RefineConfig):
    """(preset, loss, audio, MSS) of the best of the next categorical moves of ``search``'s incumbent when
    fresh renders say it beats the incumbent, else None. Moves that would change a locked setting are dropped."""
    n = int(min(config.move_batch, left() - rescore))
    proposals = [p for p in config.moves.propose(search.best, n)
                 if all(p.values.get(k) == search.best.values.get(k) for k in config.locked)]
    if not proposals:
        return None
    losses, i, audio = ev.evaluate(proposals)
    if i < 0 or float(losses[i]) >= search.best_objective:
        return None
    plain = float(ev.last_losses[i])
    k = int(min(rescore, max(0.0, left())))
    loss, m, a = (fresh(proposals[i], k, (search.best_loss, search.best_mss)) if k > 0
                  else (plain, _mss_of(audio, ev), audio))
    return (proposals[i], loss, a, m) if beats(loss, m, search) and a is not None else None
