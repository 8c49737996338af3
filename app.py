# SPDX-License-Identifier: GPL-3.0-or-later
"""Vital Inverse web app: a thin Gradio 6 UI over ``vital_inverse.session``.

    python app.py            # serves on 0.0.0.0:$PORT (default 7860)

Drop a clip of one synth note; Analyze detects the note and predicts a
preset for the free Vital synth, rendered for A/B; Refine improves the
match live with CMA-ES; Download .vital hands over the preset; the
Tutorial tab explains how to build it by hand.

Shared by every user (read-only after start-up): the predictor and one
pool of render worker processes (``ENGINE``). Everything per user lives in
``gr.State`` (a ``UserSession``). All matching logic is in
``vital_inverse.session``; this file only wires it to components.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import html
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import gradio as gr

from vital_inverse import intake, plots, session
from vital_inverse.errors import UserError
from vital_inverse.intake import IntakeLimits

log = logging.getLogger("vital_inverse.app")

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"

# Uploads: gradio refuses files over MAX_UPLOAD (before they reach us); intake refuses
# clips longer than LIMITS.max_seconds with a message saying so.
MAX_UPLOAD = "20mb"
LIMITS = IntakeLimits(max_bytes=20 * 1024 * 1024, max_seconds=30.0, analysis_seconds=4.0)
K_CANDIDATES = 4
# Refinement budgets a user can ask for (server-side clamps as well as slider ranges). The slider's
# minimum stays SLIDER_MIN for both kinds: gradio validates API calls against the slider as built.
BUDGETS = {"renders": (24, 1200, 150, 1), "seconds": (5, 300, 30, 5)}  # min, max, default, step
SLIDER_MIN = 5
# Refreshing the refined player + spectrogram + table costs ~0.3-0.5 s of CPU that the
# render workers would otherwise use, so while refining they follow the best at most this often
# (the loss plot updates every generation; the final best is always shown).
DISPLAY_EVERY_SECONDS = 2.0

# Serving (a 2-vCPU Hugging Face Space): Analyze renders 4 candidates on the shared pool of
# 2 render workers (~1-2 s), so 2 analyses at once keep both cores busy without making each
# wait long; Refine keeps every core busy for its whole run, so only 1 runs at a time (others
# queue and see their position); the tutorial is mostly waiting on the network (or a fast
# offline writer), 4 at once; Stop must never wait in a queue (no limit). At most 32 events queue.
ANALYZE_CONCURRENCY = 2
REFINE_CONCURRENCY = 1
TUTORIAL_CONCURRENCY = 4
QUEUE_MAX_SIZE = 32
STATE_SESSIONS = 300  # sessions kept in memory (each ~3 MB: the clip and two renders)
STATE_TTL_SECONDS = 2 * 3600


# --------------------------------------------------------------------------
# Shared, read-only resources
# --------------------------------------------------------------------------


class Engine:
    """The predictor and the render workers, loaded once and shared by every user."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._lock = threading.Lock()
        self._predictor = None
        self._renderer = None
        self._display = None  # a Renderer for reading Vital's display text (the settings table)
        self._display_lock = threading.Lock()
        self.startup_seconds: dict[str, float] = {}

    @property
    def ready(self) -> bool:
        return self._predictor is not None and self._renderer is not None

    def start(self) -> Engine:
        """Load the model, start and warm the render workers and every first-call path. Idempotent."""
        with self._lock:
            if self.ready:
                return self
            t0 = time.perf_counter()
            from vital_inverse import intake
            from vital_inverse.predict import PresetPredictor
            from vital_inverse.synth import ParallelRenderer, Renderer

            self.startup_seconds["import"] = time.perf_counter() - t0
            renderer = ParallelRenderer(self.workers)
            # The workers start (each builds its Synth, imports torch and runs the loss once)
            # while this process loads the model and warms its own first-call paths.
            warming = threading.Thread(target=self._warm_workers, args=(renderer,), daemon=True)
            warming.start()
            try:
                t = time.perf_counter()
                predictor = PresetPredictor.load()
                self.startup_seconds["load_model"] = time.perf_counter() - t
                t = time.perf_counter()
                intake.warm_up()
                self._display = Renderer()
                self._warm_here(predictor)
                self.startup_seconds["warm_here"] = time.perf_counter() - t
            finally:
                t = time.perf_counter()
                warming.join()
                self.startup_seconds["wait_workers"] = time.perf_counter() - t
                if self._display is None:  # start-up failed: do not leave the workers behind
                    renderer.close()
            self._predictor, self._renderer = predictor, renderer
            self.startup_seconds["total"] = time.perf_counter() - t0
            log.info("engine ready in %.1f s (%s)", self.startup_seconds["total"],
                     ", ".join(f"{k} {v:.1f} s" for k, v in self.startup_seconds.items()))
            return self

    @staticmethod
    def _warm_workers(renderer) -> None:
        renderer.warm()
        list(renderer.map(session.warm_worker, range(renderer.workers)))

    def _warm_here(self, predictor) -> None:
        """Predict, draw, read a report and export once (torch, matplotlib, Vita's Init document)."""
        from vital_inverse import intake

        clips = sorted(EXAMPLES_DIR.glob("*.wav"))
        if not clips:
            return
        analysis = intake.analyze_file(clips[0], LIMITS)
        preset = predictor.predict(analysis, k=K_CANDIDATES)[0].preset
        plots.spectrogram_figure(analysis.audio, analysis.audio)
        self.parameter_table(preset)
        with tempfile.TemporaryDirectory(prefix="vital-inverse-warm-") as d:
            preset.save(Path(d) / "warm.vital")

    def parameter_table(self, preset) -> list[list[str]]:
        """The settings table, read through one shared Synth (serialised: a Synth is not thread-safe)."""
        with self._display_lock:
            return session.parameter_table(preset, renderer=self._display)

    def predictor(self):
        return self.start()._predictor

    def renderer(self):
        return self.start()._renderer

    def reset_renderer(self) -> None:
        """Replace a broken worker pool (a worker process died) with a fresh one."""
        from vital_inverse.synth import ParallelRenderer

        with self._lock:
            old, self._renderer = self._renderer, ParallelRenderer(self.workers)
        if old is not None:
            try:
                old.close()
            except Exception as e:  # noqa: BLE001 - it is already broken
                log.debug("closing the broken worker pool: %s", e)

    def close(self) -> None:
        with self._lock:
            if self._renderer is not None:
                self._renderer.close()
                self._renderer = None


ENGINE = Engine()


# --------------------------------------------------------------------------
# Per-user state
# --------------------------------------------------------------------------


@dataclass(eq=False)
class UserSession:
    """What one browser tab has: the match so far and a private folder for its files."""

    match: session.MatchState
    folder: Path
    #: set while a refinement of this tab runs (shared by the copies ``replace`` makes)
    refining: threading.Event = field(default_factory=threading.Event)
    #: set when a new analysis replaced this one: its refinement must not touch the tab any more
    closed: threading.Event = field(default_factory=threading.Event)

    def file(self, stem: str, suffix: str = ".wav") -> Path:
        """A new file name in this tab's folder (a new name per update: browsers cache by URL)."""
        return self.folder / f"{stem}-{uuid.uuid4().hex[:8]}{suffix}"


def _delete_session(value) -> None:
    if isinstance(value, UserSession):
        shutil.rmtree(value.folder, ignore_errors=True)


def _retire(old: UserSession | None) -> None:
    """A new analysis replaces ``old``: stop its refinement and delete its files (now, or when it ends)."""
    if old is None:
        return
    old.closed.set()
    old.match.stop.set()
    if not old.refining.is_set():
        _delete_session(old)


# --------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------


def _note_markdown(m: session.MatchState) -> str:
    a = m.analysis
    extra = "".join(f"\n\nℹ️ {html.escape(n, quote=False)}" for n in a.notices)
    if not a.pitched:
        return (f"### Detected note: none — ⚠️ unpitched, rendered at C4\n"
                f"No steady pitch was found (confidence {a.confidence:.2f}), so the presets are played at "
                f"C4 (MIDI 60). Note length {a.note_seconds:.2f} s held, {a.render_seconds:.2f} s in all.{extra}")
    hz = f"{a.f0_hz:.1f} Hz, " if a.f0_hz else ""
    if len(a.chord) > 1:
        extra += (f"\n\n⚠️ **More than one note** ({' '.join(intake.midi_name(n) for n in a.chord)}): matched at the "
                  f"lowest, {intake.midi_name(a.note)}. For a closer match, upload a clip of one note.")
    return (f"### Detected note: {a.note_name()}\n"
            f"MIDI {a.note} ({hz}pitch confidence {a.confidence:.2f}); key held {a.note_seconds:.2f} s, "
            f"{a.render_seconds:.2f} s in all.{extra}")


def _analysis_status(m: session.MatchState) -> str:
    c = m.candidates[m.best_index]
    others = ", ".join(f"{x:.3f}" for i, x in enumerate(m.candidate_losses) if i != m.best_index)
    return (f"**Predicted:** candidate {m.best_index + 1} of {len(m.candidates)} ({c.label}), loss "
            f"**{m.predicted_loss:.3f}** (others: {others or '—'}; lower is closer). "
            f"Analyzed in {m.timings.get('analyze_total', 0.0):.1f} s. Press **Refine** to improve the match.")


def _refine_status(m: session.MatchState, ev, budget_text: str) -> str:
    reasons = {"budget": "budget used", "time": "time is up", "converged": "converged", "stopped": "stopped"}
    head = f"**Refined** ({reasons.get(ev.reason, ev.reason)})" if ev.done else "**Refining…**"
    return (f"{head}: generation {ev.generation}, {ev.renders} renders of {budget_text}, "
            f"{ev.elapsed:.1f} s. Best loss **{ev.best_loss:.3f}** (predicted {m.predicted_loss:.3f}).")


def _table(rows: list[list[str]]):
    return gr.Dataframe(value=rows, headers=list(session.TABLE_COLUMNS))


# --------------------------------------------------------------------------
# Errors: a notice, never a traceback
# --------------------------------------------------------------------------


def _error(message: str, title: str) -> gr.Error:
    """A notice for the user. gradio renders the message as HTML: escape it (it can hold a file name)."""
    return gr.Error(html.escape(message, quote=False), title=title, print_exception=False)


def _notice(exc: BaseException) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, UserError):
        log.info("user error: %s", exc)
        return _error(str(exc), "That did not work")
    if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
        ENGINE.reset_renderer()
        log.exception("render workers died; restarted them")
        return _error("The synth engine restarted after a crash. Please try again.", "Please try again")
    log.exception("unexpected error")
    return _error(f"Something went wrong on our side ({type(exc).__name__}). Please try again or use another clip.",
                  "Unexpected error")


class _Blocks(gr.Blocks):
    """gr.Blocks whose request-input errors reach the client as a message, logged in one line.

    gradio checks a request's files before any handler runs (``preprocess_data``): a
    path the server refuses (not uploaded through it) raised InvalidPathError there, which
    gradio's queue logged with a full traceback and sent as ``{"error": null}`` (its
    ``error_payload`` hides messages of non-``gr.Error`` exceptions when show_error is off)."""

    async def preprocess_data(self, *args, **kwargs):
        try:
            return await super().preprocess_data(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001 - anything wrong with a request's input is the request's
            from gradio.exceptions import InvalidPathError

            log.warning("refused a request's input: %s: %s", type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
            if isinstance(e, InvalidPathError):
                raise _error("The server refused that file: it only reads files uploaded through this page or "
                             "its API (handle_file). Upload the clip and try again.", "File refused") from None
            raise _error(f"The request's input could not be read ({type(e).__name__}). Upload the clip again "
                         "through this page or the API.", "Bad request") from None


def _user_errors(fn):
    """Turn every exception into a gr.Error notice (UserError messages are shown as they are)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise _notice(e) from None
    return wrapper


def _user_errors_gen(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            yield from fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise _notice(e) from None
    return wrapper


# --------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------


@_user_errors
def analyze(clip, old: UserSession | None, progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress bar
    """Analyze a clip: detected note, predicted preset rendered for A/B, spectrograms, parameters."""
    if not clip:
        raise _error("Upload or record a clip of one note first (or pick an example).", "No clip")
    t0 = time.perf_counter()
    progress(0.0, desc="Starting")
    m = session.analyze_clip(clip, ENGINE.predictor(), ENGINE.renderer(), k=K_CANDIDATES, limits=LIMITS,
                             progress=lambda f, msg: progress(0.8 * f, desc=msg))
    progress(0.85, desc="Drawing spectrograms")
    folder = Path(tempfile.mkdtemp(prefix="vital-inverse-"))
    user = UserSession(m, folder)
    original = session.write_wav(m.analysis.audio, user.file("original"))
    predicted = session.write_wav(m.predicted_audio, user.file("predicted"))
    image = plots.spectrogram_figure(m.analysis.audio, m.predicted_audio)
    progress(0.95, desc="Reading the preset's settings")
    rows = ENGINE.parameter_table(m.predicted)
    preset_path = session.export(m, folder)
    _retire(old)
    log.info("analyze %s: %.2f s in all (%s)", m.analysis.source_name, time.perf_counter() - t0,
             ", ".join(f"{k} {v:.2f}" for k, v in m.timings.items()))
    return (user, _note_markdown(m), str(original), str(predicted), None, image, _table(rows), None,
            _analysis_status(m), gr.DownloadButton(value=str(preset_path), interactive=True),
            gr.Button(interactive=True))


def _budget(kind: str, amount) -> tuple[object, str]:
    from vital_inverse.refine import Budget

    kind = kind if kind in BUDGETS else "renders"
    lo, hi, default, _ = BUDGETS[kind]
    try:
        value = float(amount)
    except (TypeError, ValueError):
        value = default
    value = min(max(value, lo), hi)
    if kind == "renders":
        return Budget(renders=int(value), seconds=None), f"{int(value)}"
    return Budget(renders=None, seconds=value), f"a {value:.0f} s budget"


@_user_errors_gen
def refine(user: UserSession | None, kind: str, amount, progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress bar
    """Refine the match with CMA-ES; streams the loss plot and the best sound so far."""
    if user is None:
        raise _error("Analyze a clip first, then refine it.", "Nothing to refine")
    budget, budget_text = _budget(kind, amount)
    progress(0.0, desc="Starting the refinement")
    last_display = 0.0
    pending = False
    updates = session.refine_stream(user.match, budget, seed=0, renderer=ENGINE.renderer())
    # Closed when Stop cancels this stream (gradio closes the generator once the generation in
    # flight is done): the refinement then sends no more renders to the shared workers.
    with contextlib.closing(updates), _refining(user):
        for update in updates:
            if user.closed.is_set():  # a new analysis took over this tab
                return
            m, ev = update.state, update.event
            if budget.renders:
                progress(min(1.0, ev.renders / budget.renders), desc=f"{ev.renders} / {budget.renders} renders")
            else:
                progress(min(1.0, ev.elapsed / budget.seconds), desc=f"{ev.elapsed:.0f} / {budget.seconds:.0f} s")
            pending = pending or update.improved
            status = _refine_status(m, ev, budget_text)
            plot = plots.loss_plot_data(m.history)
            if pending and (ev.done or time.monotonic() - last_display >= DISPLAY_EVERY_SECONDS):
                # The stored state advances only together with what is on screen, so a Stop (which
                # cancels this stream) keeps a best that the player and the download both hold.
                user = replace(user, match=m)
                refined = session.write_wav(m.refined_audio, user.file("refined"))
                image = plots.spectrogram_figure(m.analysis.audio, m.predicted_audio, m.refined_audio)
                rows = ENGINE.parameter_table(m.best_preset)
                preset_path = session.export(m, user.folder)
                last_display, pending = time.monotonic(), False
                yield (user, str(refined), image, _table(rows), plot, status,
                       gr.DownloadButton(value=str(preset_path)))
            elif ev.done:  # nothing new to show: store the final state (same best, full history)
                user = replace(user, match=m)
                yield (user, gr.skip(), gr.skip(), gr.skip(), plot, status, gr.skip())
            else:
                yield (gr.skip(), gr.skip(), gr.skip(), gr.skip(), plot, status, gr.skip())


@contextlib.contextmanager
def _refining(user: UserSession):
    user.refining.set()
    try:
        yield
    finally:
        user.refining.clear()
        if user.closed.is_set():
            _delete_session(user)


def stop(user: UserSession | None):
    """Stop a running refinement; the best preset so far stays in the players and the download."""
    if user is None:
        return "Nothing is running."
    user.match.stop.set()  # the refinement ends after its current generation (the cancel ends the stream now)
    m = user.match
    if m.refined is None:
        return f"Stopped before the first result. The predicted preset (loss {m.predicted_loss:.3f}) is in the download."
    return (f"**Stopped.** Kept the best so far: loss **{m.refined_loss:.3f}** after {m.refine_renders} renders "
            f"(predicted {m.predicted_loss:.3f}). **Download .vital** has it.")


def after_stop(user: UserSession | None):
    """Runs after Stop in the browser: waits until the cancelled refinement has really ended
    (the generation in flight finishes), then shows the final status again. The re-output also
    replaces what gradio 6.31 sometimes shows on a cancelled stream's outputs (an "Error" badge,
    or a last "Refining…" update arriving after the Stop message)."""
    if user is None:
        return "Nothing is running.", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    deadline = time.monotonic() + 30
    while user.refining.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    return stop(user), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()


def budget_control(kind: str):
    _, hi, default, step = BUDGETS.get(kind, BUDGETS["renders"])
    label = "Budget: renders" if kind == "renders" else "Budget: seconds"
    return gr.Slider(minimum=SLIDER_MIN, maximum=hi, value=default, step=step, label=label)


@_user_errors_gen
def write_tutorial(user: UserSession | None, progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress bar
    """Stream a tutorial for the best preset so far (Claude with ANTHROPIC_API_KEY set, offline otherwise)."""
    from vital_inverse.tutorial import stream_tutorial

    if user is None:
        raise _error("Analyze a clip first: the tutorial explains the best preset so far.", "No preset yet")
    m = user.match
    a = m.analysis
    what = "refined" if m.refined is not None else "predicted"
    progress(0.0, desc="Writing the tutorial")
    notice, text, last = "", "", 0.0
    # the key is read from the environment by stream_tutorial, in this process only
    for chunk in stream_tutorial(m.best_preset, int(a.note), bool(a.pitched)):
        if chunk.notice:
            notice = f"{notice}\n\n" if notice else ""
            notice += f"ℹ️ {chunk.notice}. (For the {what} preset of '{a.source_name}'.)"
        text += chunk.text
        if time.monotonic() - last > 0.15:
            last = time.monotonic()
            yield notice, text
    yield notice, text


# --------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------

INTRO = """# Vital Inverse
Hear a synth sound, get the [Vital](https://vital.audio) preset that makes it. Drop a clip of **one note**,
press **Analyze**, compare the players, press **Refine** to improve the match, then **Download .vital**."""

ABOUT = """## What it does
Vital Inverse listens to one note of a synthesizer and writes a preset for **Vital**, the free wavetable synth,
that makes the same sound:

1. **Analyze** finds the note (pitch, and how long the key was held) and a neural network predicts the
   parameters of a Vital preset: oscillators and wavetables, filters, envelopes, LFOs, effects and a few
   modulation routes. Four candidates are rendered with [Vita](https://github.com/DBraun/Vita) (Vital's engine
   as a Python library) and the closest to your clip is kept.
2. **Refine** searches around that preset with CMA-ES, rendering each try through Vita and comparing its spectrum
   with your clip (multi-resolution STFT loss; lower is closer).
3. **Download .vital** gives you the best preset so far, ready to open in Vital. The **Tutorial** tab explains
   how to build it by hand.

## Limits
- **Custom wavetables can only be approximated**: the preset uses the closest tables of a built-in bank.
- **Modulation beyond 8 fixed routes is not inferred** (envelope 2 → filter cutoff, LFO → pitch, and so on).
- **One note at a time**: only the first note of a clip is used; chords, melodies and drums are not matched.
- Uploads are limited to 20 MB and 30 seconds (the first 4 seconds of the first note are analysed).

## Credits
- **Vital** by Matt Tytel (GPL-3.0); **Vita**, Vital's engine as a Python module (GPL-3.0).
- Example clips rendered from presets by **instatetragrammaton**
  ([instatetragrammaton/Patches](https://github.com/instatetragrammaton/Patches), folder "Matt Tytel Vital"),
  licensed [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/).
- Vital Inverse is free software under the GPL-3.0-or-later.
"""


def _examples() -> list[list[str]]:
    return [[str(p)] for p in sorted(EXAMPLES_DIR.glob("*.wav"))]


def build_demo() -> gr.Blocks:
    with _Blocks(title="Vital Inverse", delete_cache=(3600, 7200)) as demo:
        user = gr.State(None, time_to_live=STATE_TTL_SECONDS, delete_callback=_delete_session)
        gr.Markdown(INTRO)
        with gr.Tabs():
            with gr.Tab("Match", id="match"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        clip = gr.Audio(type="filepath", sources=["upload", "microphone"], label="Your clip (one note)",
                                        elem_id="clip")
                        examples = _examples()
                        if examples:
                            gr.Examples(examples=examples, inputs=[clip], cache_examples=False,
                                        label="Examples (rendered from instatetragrammaton's presets, CC BY 4.0)",
                                        example_labels=[Path(e[0]).stem for e in examples])
                        analyze_btn = gr.Button("Analyze", variant="primary", elem_id="analyze")
                        note_md = gr.Markdown(elem_id="note")
                    with gr.Column(scale=2):
                        with gr.Row():
                            original = gr.Audio(label="Original (analysed note)", interactive=False, elem_id="original")
                            predicted = gr.Audio(label="Predicted", interactive=False, elem_id="predicted")
                            refined = gr.Audio(label="Refined", interactive=False, elem_id="refined")
                        spectrogram = gr.Image(label="Log-mel spectrograms (same dB scale)", type="pil",
                                               format="png", interactive=False, elem_id="spectrogram",
                                               buttons=["download", "fullscreen"])
                with gr.Row():
                    with gr.Column(scale=2, min_width=320), gr.Row():
                        budget_kind = gr.Radio(["renders", "seconds"], value="renders", label="Refine for",
                                               elem_id="budget-kind", scale=1, min_width=120)
                        _, hi, default, step = BUDGETS["renders"]
                        budget = gr.Slider(SLIDER_MIN, hi, value=default, step=step, label="Budget: renders",
                                           elem_id="budget", scale=2)
                    with gr.Column(scale=1, min_width=200):
                        refine_btn = gr.Button("Refine", variant="primary", interactive=False, elem_id="refine")
                        stop_btn = gr.Button("Stop", variant="stop", elem_id="stop")
                    with gr.Column(scale=1, min_width=200):
                        download = gr.DownloadButton("Download .vital", value=None, interactive=False,
                                                     elem_id="download")
                        gr.Markdown("The best preset so far, named after your clip. Open it in Vital.",
                                    elem_classes=["hint"])
                status = gr.Markdown(elem_id="status")
                # no initial value: a LinePlot that starts from an empty DataFrame draws no lines later (gradio 6.31)
                loss_plot = gr.LinePlot(x="renders", y="loss", color="series",
                                        title="Refinement: loss against renders (lower is closer)",
                                        x_title="renders", y_title="loss (MRSTFT)", height=280,
                                        color_map={plots.SERIES_BEST: "#d62728", plots.SERIES_GENERATION: "#9ecae1"},
                                        elem_id="loss-plot")
                table = gr.Dataframe(headers=list(session.TABLE_COLUMNS), label="Preset settings (as Vital shows them; "
                                     "modules that are off are not listed)", interactive=False, wrap=True,
                                     max_height=520, elem_id="table")
            with gr.Tab("Tutorial", id="tutorial"):
                gr.Markdown("Step-by-step instructions to build the best preset so far in Vital, starting from "
                            "its Init preset. Written by Claude when the server has an API key, by Vital Inverse's "
                            "own offline writer otherwise.")
                tutorial_btn = gr.Button("Write the tutorial", variant="primary", elem_id="tutorial-btn")
                tutorial_notice = gr.Markdown(elem_id="tutorial-notice")
                tutorial_md = gr.Markdown(elem_id="tutorial")
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)

        refine_evt = refine_btn.click(
            refine, [user, budget_kind, budget], [user, refined, spectrogram, table, loss_plot, status, download],
            api_name="refine", concurrency_limit=REFINE_CONCURRENCY, concurrency_id="refine",
            show_progress="minimal", show_progress_on=[status], time_limit=BUDGETS["seconds"][1] + 120,
        )
        # Stop: the cancel ends the stream in the browser at once (and removes a Refine still waiting in
        # the queue); stop() also sets the refinement's stop flag, so a stream driven through the API
        # ends after its current generation with a final "stopped" update.
        stop_btn.click(stop, [user], [status], api_name="stop", cancels=[refine_evt], concurrency_limit=None).then(
            after_stop, [user], [status, refined, spectrogram, table, loss_plot, download], show_progress="hidden",
            api_visibility="private", concurrency_limit=None)
        # a new analysis ends this tab's refinement (its updates would overwrite the new state)
        analyze_btn.click(
            analyze, [clip, user],
            [user, note_md, original, predicted, refined, spectrogram, table, loss_plot, status, download, refine_btn],
            api_name="analyze", concurrency_limit=ANALYZE_CONCURRENCY, concurrency_id="analyze",
            show_progress_on=[note_md, spectrogram], cancels=[refine_evt],
        )
        budget_kind.change(budget_control, [budget_kind], [budget], api_visibility="private", queue=False)
        tutorial_btn.click(write_tutorial, [user], [tutorial_notice, tutorial_md], api_name="tutorial",
                           concurrency_limit=TUTORIAL_CONCURRENCY, concurrency_id="tutorial",
                           show_progress_on=[tutorial_notice])
    return demo


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _pool_workers_skip_main() -> None:
    """Render workers are started with multiprocessing's forkserver, which re-runs the main
    script in every new worker. They need nothing from this file (their code is in
    vital_inverse) and importing gradio there costs seconds and ~100 MB each, so mark
    __main__ as not to be re-run (what multiprocessing does for ``python -m pkg``)."""
    import importlib.machinery

    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)


demo = build_demo()
demo.queue(default_concurrency_limit=ANALYZE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)


def launch(**kwargs):
    """Launch ``demo`` with this app's serving settings (keyword arguments override them)."""
    settings = {"server_name": "0.0.0.0", "server_port": int(os.environ.get("PORT", "7860")),
                "max_file_size": MAX_UPLOAD, "allowed_paths": [str(EXAMPLES_DIR)], "show_error": False,
                "footer_links": ["api", "gradio"],
                # a session holds ~3 MB of audio: cap the sessions kept in memory (oldest dropped first)
                "state_session_capacity": STATE_SESSIONS}
    settings.update(kwargs)
    return demo.launch(**settings)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _pool_workers_skip_main()
    # SIGTERM (docker stop, a Space restart) ends like Ctrl+C: gradio closes the server, we close the workers
    signal.signal(signal.SIGTERM, _interrupt)
    t0 = time.perf_counter()
    try:
        ENGINE.start()
        log.info("warm-up done in %.1f s; starting the server", time.perf_counter() - t0)
        launch()
    except KeyboardInterrupt:
        pass
    except UserError as e:  # e.g. no checkpoint: say what to do, without a traceback
        log.error("cannot start: %s", e)
        sys.exit(2)
    finally:
        ENGINE.close()
