# SPDX-License-Identifier: GPL-3.0-or-later
"""Vital Inverse web app: a thin Gradio 6 UI over ``vital_inverse.service``.

    python app.py            # serves on 127.0.0.1:7860
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7880 python app.py   # another address and port

Drop a clip of one synth note; Analyze detects the note and predicts a
preset for the free Vital synth, rendered for A/B; Refine improves the
match live with CMA-ES; Download .vital hands over the preset; the
Tutorial tab explains how to build it by hand.

``main()`` builds one ``service.Service`` (the predictor, the render
workers, the display Synth; shared by every user, read-only after start-up)
and hands it to ``build_demo``. Everything per user lives in ``gr.State``
(a ``service.UserSession``). Matching is in ``vital_inverse.session`` and
``service``; this file only lays out components and wires them to it.
"""

from __future__ import annotations

import contextlib
import functools
import html
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
import librosa
from starlette.middleware import Middleware

from vital_inverse import plots, session
from vital_inverse.errors import UserError
from vital_inverse.service import (
    BUDGETS,
    K_CANDIDATES,
    LIMITS,
    MIN_NOTE_SECONDS,
    Service,
    UserSession,
    clamp_budget,
    delete_session,
    locked_names,
    open_session,
    refining,
    retire,
    too_short,
)
from vital_inverse.service import check_clip as read_clip
from vital_inverse.tutorial.report import TABLE_COLUMNS

log = logging.getLogger("vital_inverse.app")

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"

# Uploads: gradio refuses files over MAX_UPLOAD (before they reach us); intake refuses
# clips longer than LIMITS.max_seconds with a message saying so.
MAX_UPLOAD = "20mb"
# One upload request may bring one clip (plus the multipart envelope), however many files it holds.
MAX_REQUEST_BYTES = LIMITS.max_bytes + 1024 * 1024
# The budget slider's minimum stays SLIDER_MIN for both kinds (service.BUDGETS clamps each kind):
# gradio validates API calls against the slider as built.
SLIDER_MIN = 5
# Refreshing the refined player + spectrogram + table takes CPU time that the
# render workers would otherwise use, so while refining they follow the best at most this often
# (the loss plot updates every generation; the final best is always shown).
DISPLAY_EVERY_SECONDS = 2.0

# Serving (a 2-vCPU Hugging Face Space): Analyze renders its candidates on the shared pool of
# 2 render workers, so 2 analyses at once keep both cores busy without making each
# wait long; Refine keeps every core busy for its whole run, so only 1 runs at a time (others
# queue and see their position); the tutorial is mostly waiting on the network (or a fast
# offline writer), 4 at once; Stop must never wait in a queue (no limit). At most 32 events queue.
ANALYZE_CONCURRENCY = 2
REFINE_CONCURRENCY = 1
TUTORIAL_CONCURRENCY = 4
QUEUE_MAX_SIZE = 32
STATE_SESSIONS = 300  # sessions kept in memory (each holds the clip and two renders)
STATE_TTL_SECONDS = 2 * 3600


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
        names = librosa.midi_to_note(list(a.chord), unicode=False)
        extra += (f"\n\n⚠️ **More than one note** ({' '.join(names)}): matched at the lowest, {names[0]}. "
                  f"For a closer match, upload a clip of one note.")
    return (f"### Detected note: {a.note_name()}\n"
            f"MIDI {a.note} ({hz}pitch confidence {a.confidence:.2f}); key held {a.note_seconds:.2f} s, "
            f"{a.render_seconds:.2f} s in all.{extra}")


DISTANCE_WORDS = "spectral distance, lower is closer"
DISTANCE_DETAILS = ("**Spectral distance** is the multi-resolution STFT loss (auraloss `MultiResolutionSTFTLoss`, "
                    "MRSTFT) between your note and a render, after the render is cut to your note's length and "
                    "scaled to its loudness. Identical sounds score about 0; two renders of the same preset "
                    "differ by a little (Vital's voices are not bit-identical).")


#: candidates built from the clip itself (predict's resynthesis sources), in a musician's words
CLIP_WORDS = {
    "resynthesis": "a sound built from your clip itself (its own wavetable, under a fitted envelope)",
    "resynthesis+noise": "a sound built from your clip itself (its own wavetable and noise, fitted envelope)",
    "mixed": "the model's best guess playing your clip's own wavetable",
    "resynthesis+width": "a sound built from your clip itself (its own wavetable, two voices spread as wide as your clip)",
    "noise": "noise through a filter, shaped like your clip",
    "drum": "a drum built for your clip (a sine whose pitch falls as your clip's does)",
}


def _candidate_words(c) -> str:
    """What a candidate is, in a musician's words (its technical label goes to the details)."""
    source = getattr(c, "source", "network")
    if source == "retrieval":
        return "a preset from our library (one that sounds much like your note)"
    if source in CLIP_WORDS:
        return CLIP_WORDS[source]
    if source == "generative":
        return "a sketch from the model's generative head"
    if not c.changes:
        return "the model's best guess"
    from vital_inverse.params import default_space

    space = default_space()
    changed = [f"{space[n].display_name if n in space else n} set to {v}" for n, v in c.changes.items()]
    return "the model's guess with " + ", ".join(changed)


def _analysis_status(m: session.MatchState) -> str:
    c = m.candidates[m.best_index]
    return (f"**Closest of {len(m.candidates)} candidates:** {_candidate_words(c)}. "
            f"Distance to your note **{m.predicted_loss:.2f}** ({DISTANCE_WORDS}). "
            f"Press **Refine** to bring it closer.")


def _analysis_details(m: session.MatchState) -> str:
    rows = ["| # | candidate | technical label | spectral distance |", "|---|---|---|---|"]
    for i, (c, x) in enumerate(zip(m.candidates, m.candidate_losses)):
        mark = " ✔ kept" if i == m.best_index else ""
        rows.append(f"| {i + 1}{mark} | {_candidate_words(c)} | {html.escape(c.label)} | {x:.3f} |")
    times = ", ".join(f"{k} {v:.2f} s" for k, v in m.timings.items())
    return (f"{DISTANCE_DETAILS}\n\n" + "\n".join(rows)
            + f"\n\nCandidates: the network's most probable presets, then the nearest presets of its training "
              f"library, then presets sampled from its generative head (when the checkpoint has one). "
              f"Timings: {times or '—'}.")


def _refine_status(m: session.MatchState, ev, budget_text: str) -> str:
    reasons = {"budget": "budget used", "time": "time is up", "converged": "no further improvement found",
               "stopped": "stopped"}
    head = f"**Refined** ({reasons.get(ev.reason, ev.reason)})" if ev.done else "**Refining…**"
    return (f"{head}: {ev.renders} tries of {budget_text}, {ev.elapsed:.0f} s. "
            f"Distance **{ev.best_loss:.2f}**, from {m.predicted_loss:.2f} ({DISTANCE_WORDS}).")


def _counted(kept: session.MatchState, m: session.MatchState, pending: bool) -> session.MatchState:
    """``kept`` (the best on screen) with ``m``'s render counts; its loss history too unless ``m`` holds a
    better best not yet on screen (the plot's best line must not run below the kept best)."""
    return replace(kept, refine_renders=m.refine_renders, refine_generations=m.refine_generations,
                   refine_runs=m.refine_runs, refine_reason=m.refine_reason, timings=m.timings,
                   history=kept.history if pending else m.history)


def _refine_details(m: session.MatchState, ev, locked: frozenset[str] = frozenset()) -> str:
    searched = getattr(ev, "searched", ()) or ()
    lines = [DISTANCE_DETAILS, "",
             (f"Refinement: CMA-ES over the preset's continuous settings; generation {ev.generation}, "
              f"{ev.renders} renders this run ({m.refine_renders} for this clip), {ev.elapsed:.1f} s. "
              f"Best loss {ev.best_loss:.4f}; predicted {m.predicted_loss:.4f}."),
             f"Searched {len(searched)} settings" + (f": {', '.join(searched)}." if searched else ".")]
    if locked:
        lines.append(f"Locked (left exactly as they were): {', '.join(sorted(locked))}.")
    return "\n".join(lines)


def _table(rows: list[list[str]]):
    return gr.Dataframe(value=rows, headers=list(TABLE_COLUMNS))


# --------------------------------------------------------------------------
# Errors: a notice, never a traceback
# --------------------------------------------------------------------------


def _error(message: str, title: str) -> gr.Error:
    """A notice for the user. gradio renders the message as HTML: escape it (it can hold a file name)."""
    return gr.Error(html.escape(message, quote=False), title=title, print_exception=False)


def _notice(exc: BaseException, service: Service) -> gr.Error:
    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, UserError):
        log.info("user error: %s", exc)
        return _error(str(exc), "That did not work")
    if service.recover(exc):
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
    """A ``Handlers`` method whose every exception becomes a gr.Error notice (UserError messages are
    shown as they are; a dead render pool is replaced first)."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            return fn(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise _notice(e, self.service) from None
    return wrapper


def _user_errors_gen(fn):
    """``_user_errors`` for a streaming (generator) handler."""
    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        try:
            yield from fn(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise _notice(e, self.service) from None
    return wrapper


# --------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------


def check_clip(clip):
    """On upload or recording: read the clip now, so an empty, damaged, silent, too long or too short
    file is refused at once (a notice, and the player is cleared) instead of failing on Analyze.
    Its outputs (note, spectrogram, status) also clear any Error badges an earlier action left."""
    if not clip:
        return gr.skip(), "", gr.skip(), ""
    a, problem = read_clip(clip)
    if problem:
        gr.Warning(html.escape(problem, quote=False), title="File refused")
        return None, "", gr.skip(), f"⛔ **File refused:** {html.escape(problem, quote=False)}"
    pitch = a.note_name() if a.pitched else "no steady pitch"
    return (gr.skip(), "", gr.skip(),
            (f"Loaded **{html.escape(a.source_name, quote=False)}**: a note of {a.render_seconds:.1f} s "
             f"({pitch}). Press **Analyze**."))


def buttons_busy():
    """While a refinement runs: Refine is off (a second click would do nothing), Stop is on."""
    return gr.Button(interactive=False), gr.Button(interactive=True)


def buttons_idle(user: UserSession | None):
    """No refinement runs: Refine is on when there is a match to refine, Stop is off."""
    return gr.Button(interactive=user is not None), gr.Button(interactive=False)


def stop(user: UserSession | None):
    """Stop a running refinement; the best preset so far stays in the players and the download."""
    if user is None:
        return "Nothing is running."
    user.match.stop.set()  # the refinement ends after its current generation (the cancel ends the stream now)
    m = user.match
    if m.refined is None:
        return (f"**Stopped** before the first result. The predicted preset (distance {m.predicted_loss:.2f}) "
                f"is in the download.")
    return (f"**Stopped.** Kept the best so far: distance **{m.refined_loss:.2f}** "
            f"(from {m.predicted_loss:.2f}; {DISTANCE_WORDS}). **Download .vital** has it.")


def after_stop(user: UserSession | None):
    """Runs after Stop in the browser: waits until the cancelled refinement has really ended
    (the generation in flight finishes), then shows the final status again. The re-output also
    replaces what gradio 6.31 sometimes shows on a cancelled stream's outputs (an "Error" badge,
    or a last "Refining…" update arriving after the Stop message)."""
    if user is None:
        return ("Nothing is running.", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(),
                *buttons_idle(user))
    user.wait_idle(timeout=30)
    return (stop(user), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), *buttons_idle(user))


MORPH_SOURCES = ("Current match", "A .vital file", "Another clip")
MORPH_MAX_STEPS = 9


def _morph_table(result) -> str:
    s = result.smooth
    if not s["steps"]:
        return ""
    even = 1 / (len(result.presets) - 1)
    rows = [f"| step | how far from A (0 = A, 1 = B) | step size (an even step is {even:.2f}) |", "|---|---|---|"]
    for i, far in enumerate(s["from_a"]):
        size = f"{s['steps'][i - 1]:.2f}" if i else "—"
        rows.append(f"| {i + 1} | {far:.2f} | {size} |")
    return "\n".join(rows)


def morph_source(kind: str):
    """Show the input that the chosen source needs."""
    return gr.File(visible=kind == "A .vital file"), gr.Audio(visible=kind == "Another clip")


def budget_control(kind: str):
    _, hi, default, step = BUDGETS.get(kind, BUDGETS["renders"])
    label = "Budget: renders" if kind == "renders" else "Budget: seconds"
    return gr.Slider(minimum=SLIDER_MIN, maximum=hi, value=default, step=step, label=label)


class Handlers:
    """The event handlers that use the shared service (the model, the render workers, the display Synth)."""

    def __init__(self, service: Service) -> None:
        self.service = service

    @_user_errors
    def analyze(self, clip, old: UserSession | None, progress=gr.Progress()):  # noqa: B008 - gradio's progress bar
        """Analyze a clip: detected note, predicted preset rendered for A/B, spectrograms, parameters."""
        if not clip:
            raise _error("Upload or record a clip of one note first (or pick an example).", "No clip")
        t0 = time.perf_counter()
        progress(0.0, desc="Starting")
        m = self.service.analyze_clip(clip, progress=lambda f, msg: progress(0.8 * f, desc=msg))
        problem = too_short(m.analysis)
        if problem:
            raise _error(problem, "Clip too short")
        progress(0.85, desc="Drawing spectrograms")
        user = open_session(m)
        original = session.write_wav(m.analysis.audio, user.file("original"))
        predicted = session.write_wav(m.predicted_audio, user.file("predicted"))
        image = plots.spectrogram_figure(m.analysis.audio, m.predicted_audio)
        progress(0.95, desc="Reading the preset's settings")
        rows = self.service.parameter_table(m.predicted)
        preset_path = session.export(m, user.folder)
        retire(old)
        log.info("analyze %s: %.2f s in all (%s)", m.analysis.source_name, time.perf_counter() - t0,
                 ", ".join(f"{k} {v:.2f}" for k, v in m.timings.items()))
        return (user, _note_markdown(m), str(original), str(predicted), None, image, _table(rows), None,
                _analysis_status(m), gr.DownloadButton(value=str(preset_path), interactive=True),
                gr.Button(interactive=True), gr.Button(interactive=False), _analysis_details(m))

    @_user_errors_gen
    def refine(self, user: UserSession | None, kind: str, amount, lock_modules=None, lock_settings=None,
               progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress bar
        """Refine the match with CMA-ES; streams the loss plot and the best sound so far.
        ``lock_modules``/``lock_settings``: what refinement must leave exactly as it is."""
        from vital_inverse.refine import RefineConfig

        if user is None:
            raise _error("Analyze a clip first, then refine it.", "Nothing to refine")
        budget, budget_text = clamp_budget(kind, amount)
        locked = locked_names(lock_modules, lock_settings)
        progress(0.0, desc="Starting the refinement")
        last_display = 0.0
        pending = False
        updates = session.refine_stream(user.match, budget, seed=0, renderer=self.service.renderer,
                                        config=RefineConfig(locked=locked))
        # Closed when Stop cancels this stream (gradio closes the generator once the generation in
        # flight is done): the refinement then sends no more renders to the shared workers.
        with contextlib.closing(updates), refining(user):
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
                details = _refine_details(m, ev, locked)
                plot = plots.loss_plot_data(m.history)
                if pending and (ev.done or time.monotonic() - last_display >= DISPLAY_EVERY_SECONDS):
                    # The stored state advances only together with what is on screen, so a Stop (which
                    # cancels this stream) keeps a best that the player and the download both hold.
                    user = replace(user, match=m)
                    refined = session.write_wav(m.refined_audio, user.file("refined"))
                    image = plots.spectrogram_figure(m.analysis.audio, m.predicted_audio, m.refined_audio)
                    rows = self.service.parameter_table(m.best_preset, locked)
                    preset_path = session.export(m, user.folder)
                    last_display, pending = time.monotonic(), False
                    yield (user, str(refined), image, _table(rows), plot, status,
                           gr.DownloadButton(value=str(preset_path)), details)
                elif ev.done:  # nothing new to show: store the final state (same best, full history)
                    user = replace(user, match=m)
                    yield (user, gr.skip(), gr.skip(), gr.skip(), plot, status, gr.skip(), details)
                else:
                    # the shown best stays, but the renders spent so far are counted (a Stop keeps them, and
                    # the next run's count and plot start after them)
                    user = replace(user, match=_counted(user.match, m, pending))
                    yield (user, gr.skip(), gr.skip(), gr.skip(), plot, status, gr.skip(), details)

    def _morph_end(self, which: str, kind: str, vital, clip, user: UserSession | None):
        """Preset A or B of a morph, with the analysis it came from (or None): the current match, an
        uploaded .vital, or the best candidate for another clip."""
        from vital_inverse.preset import load_vital

        if kind == "A .vital file":
            if not vital:
                raise _error(f"Choose a .vital file for {which}, or pick another source.", f"No preset for {which}")
            path = Path(vital if isinstance(vital, str) else getattr(vital, "name", str(vital)))
            return load_vital(path), None
        if kind == "Another clip":
            if not clip:
                raise _error(f"Upload or record a clip for {which}, or pick another source.", f"No clip for {which}")
            m = self.service.analyze_clip(clip)
            return m.predicted.with_meta(name=m.stem), m.analysis
        if user is None:
            raise _error(f"There is no current match for {which}: analyze a clip on the Match tab first, or pick "
                         "another source.", f"No match for {which}")
        return user.match.best_preset.with_meta(name=user.match.stem), user.match.analysis

    @_user_errors
    def make_morph(self, user: UserSession | None, a_kind: str, a_vital, a_clip, b_kind: str, b_vital, b_clip,
                   steps, progress=gr.Progress()):  # noqa: B008 - gradio's way to ask for a progress bar
        """A row of presets from A to B, each rendered with a player and a download, and how smooth the path is."""
        from vital_inverse.morph import morph, render_morph, write_morph

        try:
            n = int(min(max(int(float(steps)), 2), MORPH_MAX_STEPS))
        except (TypeError, ValueError):
            n = 5
        progress(0.0, desc="Reading A and B")
        a, a_analysis = self._morph_end("A", a_kind, a_vital, a_clip, user)
        b, b_analysis = self._morph_end("B", b_kind, b_vital, b_clip, user)
        analysis = a_analysis or b_analysis
        note = int(analysis.note) if analysis is not None else 60
        note_s, render_s = ((analysis.note_seconds, analysis.render_seconds) if analysis is not None else (1.5, 2.0))
        progress(0.2, desc=f"Rendering {n} steps")
        result = render_morph(morph(a, b, n), note=note, note_seconds=max(note_s, 0.1),
                              render_seconds=max(render_s, 0.2), renderer=self.service.renderer)
        folder = Path(tempfile.mkdtemp(prefix="vital-inverse-morph-", dir=user.folder if user is not None else None))
        files = write_morph(result, folder)
        status = (f"**Morph from {html.escape(a.name)} to {html.escape(b.name)}**, rendered at MIDI {note}. "
                  f"{result.summary()}\n\n{_morph_table(result)}")
        players, downloads = [], []
        for i in range(MORPH_MAX_STEPS):
            if i < n:
                label = f"Step {i + 1} of {n}" + (" (A)" if i == 0 else " (B)" if i == n - 1 else "")
                players.append(gr.Audio(value=str(folder / f"step_{i:02d}.wav"), visible=True, label=label))
                downloads.append(gr.DownloadButton(f"Step {i + 1} .vital", value=str(files[i]), visible=True))
            else:
                players.append(gr.Audio(value=None, visible=False))
                downloads.append(gr.DownloadButton(value=None, visible=False))
        return (status, *players, *downloads)

    @_user_errors_gen
    def write_tutorial(self, user: UserSession | None, progress=gr.Progress()):  # noqa: B008 - gradio's progress bar
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
   modulation routes. {candidates} are rendered with [Vita](https://github.com/DBraun/Vita) (Vital's engine
   as a Python library) and the closest to your clip is kept.
2. **Refine** searches around that preset with CMA-ES, rendering each try through Vita and comparing its spectrum
   with your clip (the *spectral distance*: a multi-resolution STFT loss; lower is closer). Tick the settings
   you want to keep under **Keep these as they are** and refinement leaves them untouched.
3. **Morph** (its own tab) makes a row of presets that glide from one sound to another.
4. **Download .vital** gives you the best preset so far, ready to open in Vital. The **Tutorial** tab explains
   how to build it by hand.

## Limits
- **Custom wavetables can only be approximated**: the preset uses the closest tables of a built-in bank.
- **Modulation beyond 8 fixed routes is not inferred** (envelope 2 → filter cutoff, LFO → pitch, and so on).
- **One note at a time**: only the first note of a clip is used; chords, melodies and drums are not matched.
- Uploads are limited to one clip of 20 MB and 30 seconds per upload (the first 4 seconds of the first note are
  analysed); a note must sound for at least {min_note:.1f} s.

## Credits
- **Vital** by Matt Tytel (GPL-3.0); **Vita**, Vital's engine as a Python module (GPL-3.0).
- Example clips rendered from presets by **instatetragrammaton**
  ([instatetragrammaton/Patches](https://github.com/instatetragrammaton/Patches), folder "Matt Tytel Vital"),
  licensed [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/).
- Vital Inverse is free software under the GPL-3.0-or-later.
"""


def _retrieval_count() -> int:
    """How many library presets the predictor adds to the network's candidates (its default)."""
    import inspect

    from vital_inverse.predict import PresetPredictor

    return int(inspect.signature(PresetPredictor.predict).parameters["retrieval"].default)


def _generative_count() -> int:
    """How many presets the checkpoint's generative head adds (0 when it has none)."""
    import inspect

    from vital_inverse import checkpoint as ckpt
    from vital_inverse.flow import FLOW_WEIGHTS
    from vital_inverse.predict import PresetPredictor

    try:
        has_flow = (ckpt.resolve(ckpt.default_source()) / FLOW_WEIGHTS).exists()
    except ckpt.CheckpointError:
        has_flow = False
    return int(inspect.signature(PresetPredictor.predict).parameters["generative"].default) if has_flow else 0


def about_text() -> str:
    """The About tab; it names the kinds of candidate the status line counts."""
    r, g = _retrieval_count(), _generative_count()
    library = f", the {r} presets of its training library that sound most like your note" if r else ""
    sampled = f", {g} presets sampled from its generative head" if g else ""
    candidates = (f"Several candidates (the network's {K_CANDIDATES} most probable presets{library}{sampled}, and "
                  f"presets built from your clip itself: its own wavetable, swept in time, under a fitted envelope)")
    return ABOUT.format(candidates=candidates, min_note=MIN_NOTE_SECONDS)


def _examples() -> list[list[str]]:
    return [[str(p)] for p in sorted(EXAMPLES_DIR.glob("*.wav"))]


def build_demo(service: Service) -> gr.Blocks:
    """The app's Blocks, queued, with its handlers bound to ``service`` (built and started by the caller)."""
    from vital_inverse import locks
    from vital_inverse.params import default_space

    space = default_space()
    h = Handlers(service)
    with _Blocks(title="Vital Inverse", delete_cache=(3600, 7200)) as demo:
        user = gr.State(None, time_to_live=STATE_TTL_SECONDS, delete_callback=delete_session)
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
                        status = gr.Markdown("Upload or record one note (or pick an example), then press "
                                             "**Analyze**.", elem_id="status")
                        with gr.Accordion("Details (for the technically minded)", open=False, elem_id="details-box"):
                            details = gr.Markdown(DISTANCE_DETAILS, elem_id="details")
                spectrogram = gr.Image(label="Spectrograms", show_label=False, type="pil", format="png", interactive=False,
                                       elem_id="spectrogram", buttons=["download", "fullscreen"],
                                       placeholder="The spectrograms of your note and its match appear here "
                                                   "after **Analyze**.")
                with gr.Row():
                    with gr.Column(scale=2, min_width=320), gr.Row():
                        budget_kind = gr.Radio(["renders", "seconds"], value="renders", label="Refine for",
                                               elem_id="budget-kind", scale=1, min_width=120)
                        _, hi, default, step = BUDGETS["renders"]
                        budget = gr.Slider(SLIDER_MIN, hi, value=default, step=step, label="Budget: renders",
                                           elem_id="budget", scale=2)
                    with gr.Column(scale=1, min_width=200):
                        refine_btn = gr.Button("Refine", variant="primary", interactive=False, elem_id="refine")
                        stop_btn = gr.Button("Stop", variant="stop", interactive=False, elem_id="stop")
                    with gr.Column(scale=1, min_width=200):
                        download = gr.DownloadButton("Download .vital", value=None, interactive=False,
                                                     elem_id="download")
                        gr.Markdown("The best preset so far, named after your clip. Open it in Vital.",
                                    elem_classes=["hint"])
                with gr.Accordion("Keep these as they are (Refine leaves them untouched)", open=False,
                                  elem_id="locks-box"):
                    lock_modules = gr.CheckboxGroup(locks.module_choices(space), value=[], label="Whole modules",
                                                    elem_id="lock-modules")
                    lock_settings = gr.Dropdown(locks.setting_choices(space), value=[], multiselect=True,
                                                label="Single settings (e.g. Oscillator 2 Wavetable)",
                                                elem_id="lock-settings")
                gr.Markdown("**Refinement progress.** When you press **Refine**, the plot below draws the distance "
                            "to your note try by try: the red line is the best so far (what the Refined player "
                            "plays), the light blue one each generation's best try.", elem_id="loss-hint",
                            elem_classes=["hint"])
                # no initial value: a LinePlot that starts from an empty DataFrame draws no lines later (gradio 6.31)
                loss_plot = gr.LinePlot(x="renders", y="loss", color="series",
                                        title="Refinement: distance to your note, try by try (lower is closer)",
                                        x_title="tries (renders)", y_title="spectral distance", height=280,
                                        label="Refinement progress",
                                        caption="Press Refine: a line per generation of tries appears here, "
                                                "the best so far in red (what the Refined player plays).",
                                        color_map={plots.SERIES_BEST: "#d62728", plots.SERIES_GENERATION: "#9ecae1"},
                                        elem_id="loss-plot")
                table = gr.Dataframe(headers=list(TABLE_COLUMNS), label="Preset settings (as Vital shows them; "
                                     "modules that are off are not listed)", interactive=False, wrap=True,
                                     max_height=520, elem_id="table")
            with gr.Tab("Morph", id="morph"):
                gr.Markdown("Glide from one sound to another: a row of presets from **A** to **B**, each one you can "
                            "play and download. Settings move on Vital's own scales, a part that plays at one end "
                            "only fades in or out, different wavetables are blended frame by frame, and other "
                            "choices switch half-way. The table shows how evenly the sound moves.")
                ends = {}
                with gr.Row():
                    for which, default in (("A", "Current match"), ("B", "A .vital file")):
                        with gr.Column(min_width=300):
                            kind = gr.Radio(list(MORPH_SOURCES), value=default, label=f"{which}: start" if which == "A"
                                            else f"{which}: end", elem_id=f"morph-{which.lower()}-kind")
                            vital = gr.File(label=f"{which}: a .vital preset", file_types=[".vital"], type="filepath",
                                            visible=default == "A .vital file", elem_id=f"morph-{which.lower()}-vital")
                            other = gr.Audio(type="filepath", sources=["upload", "microphone"],
                                             label=f"{which}: a clip of one note (its best match is used)",
                                             visible=default == "Another clip", elem_id=f"morph-{which.lower()}-clip")
                            kind.change(morph_source, [kind], [vital, other], queue=False, api_visibility="private")
                            ends[which] = (kind, vital, other)
                morph_steps = gr.Slider(2, MORPH_MAX_STEPS, value=5, step=1, label="Steps (A and B included)",
                                        elem_id="morph-steps")
                morph_btn = gr.Button("Morph", variant="primary", elem_id="morph-btn")
                morph_status = gr.Markdown(elem_id="morph-status")
                morph_players, morph_downloads = [], []
                for i in range(MORPH_MAX_STEPS):
                    with gr.Row(equal_height=True):
                        morph_players.append(gr.Audio(label=f"Step {i + 1}", interactive=False, visible=False,
                                                      elem_id=f"morph-step-{i}", scale=4))
                        morph_downloads.append(gr.DownloadButton(f"Step {i + 1} .vital", visible=False,
                                                                 elem_id=f"morph-download-{i}", scale=1))
            with gr.Tab("Tutorial", id="tutorial"):
                gr.Markdown("Step-by-step instructions to build the best preset so far in Vital, starting from "
                            "its Init preset. Written by Claude when the server has an API key, by Vital Inverse's "
                            "own offline writer otherwise.")
                tutorial_btn = gr.Button("Write the tutorial", variant="primary", elem_id="tutorial-btn")
                tutorial_notice = gr.Markdown(elem_id="tutorial-notice")
                tutorial_md = gr.Markdown(elem_id="tutorial")
            with gr.Tab("About", id="about"):
                gr.Markdown(about_text(), elem_id="about")

        # Refine is off while it runs and Stop only on then (set at once in the browser, not queued); the
        # busy step also re-outputs the note, which clears an Error badge an earlier action left there.
        refine_evt = refine_btn.click(
            buttons_busy, None, [refine_btn, stop_btn], queue=False, api_visibility="private",
        ).then(
            h.refine, [user, budget_kind, budget, lock_modules, lock_settings],
            [user, refined, spectrogram, table, loss_plot, status, download, details],
            api_name="refine", concurrency_limit=REFINE_CONCURRENCY, concurrency_id="refine",
            show_progress="minimal", show_progress_on=[status], time_limit=BUDGETS["seconds"][1] + 120,
        )
        refine_evt.then(buttons_idle, [user], [refine_btn, stop_btn], queue=False, api_visibility="private")
        # Stop: the cancel ends the stream in the browser at once (and removes a Refine still waiting in
        # the queue); stop() also sets the refinement's stop flag, so a stream driven through the API
        # ends after its current generation with a final "stopped" update.
        stop_btn.click(stop, [user], [status], api_name="stop", cancels=[refine_evt], concurrency_limit=None).then(
            after_stop, [user], [status, refined, spectrogram, table, loss_plot, download, refine_btn, stop_btn],
            show_progress="hidden",
            api_visibility="private", concurrency_limit=None)
        # a new analysis ends this tab's refinement (its updates would overwrite the new state)
        analyze_btn.click(
            h.analyze, [clip, user],
            [user, note_md, original, predicted, refined, spectrogram, table, loss_plot, status, download, refine_btn,
             stop_btn, details],
            api_name="analyze", concurrency_limit=ANALYZE_CONCURRENCY, concurrency_id="analyze",
            show_progress_on=[note_md, spectrogram], cancels=[refine_evt],
        )
        for trigger in (clip.upload, clip.stop_recording):
            trigger(check_clip, [clip], [clip, note_md, spectrogram, status], api_visibility="private",
                    concurrency_limit=None, show_progress="hidden")
        budget_kind.change(budget_control, [budget_kind], [budget], api_visibility="private", queue=False)
        morph_btn.click(h.make_morph, [user, *ends["A"], *ends["B"], morph_steps],
                        [morph_status, *morph_players, *morph_downloads], api_name="morph",
                        concurrency_limit=ANALYZE_CONCURRENCY, concurrency_id="analyze",
                        show_progress_on=[morph_status])
        tutorial_btn.click(h.write_tutorial, [user], [tutorial_notice, tutorial_md], api_name="tutorial",
                           concurrency_limit=TUTORIAL_CONCURRENCY, concurrency_id="tutorial",
                           show_progress_on=[tutorial_notice])
    demo.queue(default_concurrency_limit=ANALYZE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
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


class _UploadTooLarge(Exception):
    pass


class UploadCap:
    """ASGI middleware: an upload request may bring at most ``max_bytes`` in all, however many files.

    gradio's ``max_file_size`` is per file; without this one request with ten 19 MB files fills the
    cache with 190 MB. A declared Content-Length over the cap is refused before the body is read;
    a body without one is counted as it arrives and refused once it passes the cap. 413 either way."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, int(max_bytes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or not scope.get("path", "").rstrip("/").endswith(
                "/upload"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, int(length))
            return
        seen = 0
        started = False

        async def counted():
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _UploadTooLarge
            return message

        async def watched(message):
            nonlocal started
            started = started or message.get("type") == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _UploadTooLarge:
            if not started:
                await self._refuse(send, seen)
        if seen > self.max_bytes:
            log.info("refused an upload request of more than %d bytes", self.max_bytes)

    async def _refuse(self, send, size: int) -> None:
        mb = 1024 * 1024
        body = (f"The upload is too large ({size / mb:.0f} MB or more in one request); one upload may bring "
                f"at most {self.max_bytes / mb:.0f} MB (one clip of up to {LIMITS.max_bytes // mb} MB).").encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def server_address(env=None) -> tuple[str, int]:
    """Where to serve: gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (``PORT`` is still read as a
    fallback for the port). Locally only this machine (127.0.0.1); the Space's Dockerfile sets 0.0.0.0."""
    env = os.environ if env is None else env
    name = env.get("GRADIO_SERVER_NAME", "").strip() or "127.0.0.1"
    port = env.get("GRADIO_SERVER_PORT", "").strip() or env.get("PORT", "").strip() or "7860"
    try:
        number = int(port)
    except ValueError:
        raise UserError(f"GRADIO_SERVER_PORT must be a port number, not {port!r}.") from None
    if not 0 < number < 65536:
        raise UserError(f"GRADIO_SERVER_PORT must be between 1 and 65535, not {number}.")
    return name, number


def launch(demo: gr.Blocks, **kwargs):
    """Launch ``demo`` with this app's serving settings (keyword arguments override them)."""
    name, port = server_address()
    settings = {"server_name": name, "server_port": port,
                "max_file_size": MAX_UPLOAD, "allowed_paths": [str(EXAMPLES_DIR)], "show_error": False,
                "footer_links": ["api", "gradio"],
                # a session holds ~3 MB of audio: cap the sessions kept in memory (oldest dropped first)
                "state_session_capacity": STATE_SESSIONS,
                "app_kwargs": {"middleware": [Middleware(UploadCap, max_bytes=MAX_REQUEST_BYTES)]}}
    settings.update(kwargs)
    return demo.launch(**settings)


def main() -> None:
    """Serve the app: build the service, warm it, build the UI over it, serve until Ctrl+C or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _pool_workers_skip_main()
    # SIGTERM (docker stop, a Space restart) ends like Ctrl+C: gradio closes the server, we close the workers
    signal.signal(signal.SIGTERM, _interrupt)
    clips = sorted(EXAMPLES_DIR.glob("*.wav"))
    service = Service(warm_clip=clips[0] if clips else None)
    t0 = time.perf_counter()
    try:
        service.start()
        log.info("warm-up done in %.1f s; starting the server", time.perf_counter() - t0)
        launch(build_demo(service))
    except KeyboardInterrupt:
        pass
    except UserError as e:  # e.g. no checkpoint: say what to do, without a traceback
        log.error("cannot start: %s", e)
        sys.exit(2)
    finally:
        service.close()


if __name__ == "__main__":
    main()
