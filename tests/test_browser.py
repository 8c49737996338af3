# SPDX-License-Identifier: GPL-3.0-or-later
"""The app in a real browser: Debian's Chromium (headless) driven by Python Playwright.

Starts ``python app.py`` as a separate process (the way a Space runs it, on
GRADIO_SERVER_PORT), then goes through a musician's session: upload a clip,
Analyze, Refine with a locked module until the loss plot has points, Stop,
Refine again, download the .vital, Morph to a preset file, write the
tutorial; and a refused file (its Error badges clear on the next action).
Screenshots go to ``test-artifacts/`` (and, with UPDATE_DOCS_SCREENSHOTS=1,
to ``docs/`` for the README). ``playwright install`` is not used: Chromium
comes from Debian (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import free_port
from test_session import use_checkpoint

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server():
    use_checkpoint()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}  # offline tutorial in tests
    env.pop("PORT", None)  # the port comes from gradio's own variable (README: GRADIO_SERVER_PORT)
    env.update(GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False",
               PYTHONUNBUFFERED="1")
    ARTIFACTS.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}/"
    with open(ARTIFACTS / "browser-app.log", "w") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"app.py exited with code {proc.returncode} during start-up "
                                f"(see {ARTIFACTS / 'browser-app.log'})")
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() - t0 > 120:
                    pytest.fail("app.py was not ready after 120 s")
                time.sleep(0.25)
            print(f"\napp.py start-up to ready: {time.monotonic() - t0:.1f} s (loaded machine)")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
                    "(Debian's build; `playwright install` is not used)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1700}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server)
    page.wait_for_selector("#analyze")
    yield page
    context.close()


def _line_points(page) -> int:
    """Points drawn in the loss plot's line marks (vega renders SVG paths: M x,y L x,y ...)."""
    paths = page.locator("#loss-plot g.mark-line path")
    return sum(len(re.findall(r"[ML]", paths.nth(i).get_attribute("d") or "")) for i in range(paths.count()))


def _upload(page, path: Path) -> None:
    page.locator("#clip input[type=file]").set_input_files(str(path))


DOCS = ROOT / "docs"
HUMAN_PRESETS = ROOT / "tests" / "data" / "human-presets"


def _shot(page, name: str, docs: bool = False) -> None:
    """A full-page screenshot into test-artifacts/; with UPDATE_DOCS_SCREENSHOTS=1 also into docs/ (the README's)."""
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"), full_page=True)
    if docs and os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        page.screenshot(path=str(DOCS / f"app-{name}.png"), full_page=True)


def _text(page, selector: str) -> str:
    return page.inner_text(selector)


def _wait_text(page, selector: str, text: str, timeout: int = 60_000) -> None:
    page.wait_for_function(f"document.querySelector({selector!r})?.innerText.includes({text!r})", timeout=timeout)


def _error_badges(page) -> int:
    """Visible red "Error" badges of gradio's status trackers."""
    return page.locator("[data-testid=status-tracker] span.error").filter(has_text="Error").count()


def test_a_musicians_session(page, tmp_path):
    """Upload, Analyze, Refine (with a lock), Stop, Refine again, Download, Morph, Tutorial, a refused file."""
    import vita

    # upload: checked at once; nothing to refine or stop yet
    _upload(page, EXAMPLES / "pad-lexapro.wav")
    _wait_text(page, "#status", "Loaded")
    assert page.is_disabled("#refine") and page.is_disabled("#stop")
    t = time.monotonic()
    page.click("#analyze")
    _wait_text(page, "#note", "Detected note")
    print(f"Analyze in the browser: {time.monotonic() - t:.1f} s (loaded machine)")
    assert "C4" in _text(page, "#note")
    _wait_text(page, "#status", "Closest of")
    status = _text(page, "#status")
    assert "candidates" in status and "lower is closer" in status and "MRSTFT" not in status
    page.wait_for_selector("#predicted audio", state="attached")
    assert page.locator("#spectrogram img").count() == 1
    page.wait_for_function("document.querySelector('#table')?.innerText.includes('Oscillator')")
    assert int(page.get_attribute("#table [role=grid]", "aria-rowcount")) > 5  # rows are virtualised
    assert page.is_enabled("#refine") and page.is_disabled("#stop")
    page.get_by_text("Details (for the technically minded)").click()
    _wait_text(page, "#details", "MRSTFT")
    _shot(page, "1-analyzed", docs=True)

    # keep oscillator 1 as it is, refine: Refine is off and Stop on while it runs
    page.get_by_text("Keep these as they are").click()
    page.locator("#lock-modules").get_by_label("Oscillator 1", exact=True).check()
    page.click("#refine")
    _wait_text(page, "#status", "Refining")
    assert page.is_disabled("#refine") and page.is_enabled("#stop")
    deadline = time.monotonic() + 90
    while _line_points(page) < 4 and time.monotonic() < deadline:
        time.sleep(0.25)
    first = _line_points(page)
    assert first >= 4, "the loss plot received no points"
    deadline = time.monotonic() + 60
    while _line_points(page) <= first and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _line_points(page) > first, "the loss plot stopped receiving points"
    page.wait_for_selector("#refined audio", state="attached")
    _shot(page, "2-refining", docs=True)

    t = time.monotonic()
    page.click("#stop")
    _wait_text(page, "#status", "Stopped", timeout=10_000)
    stop_seconds = time.monotonic() - t
    print(f"Stop -> 'Stopped' shown: {stop_seconds:.2f} s")
    assert stop_seconds < 3.0
    points = _line_points(page)
    time.sleep(3)
    assert _line_points(page) == points, "the plot still moves after Stop"
    page.wait_for_function("!document.querySelector('#refine').disabled && document.querySelector('#stop').disabled",
                           timeout=30_000)
    assert "locked" in _text(page, "#table")  # oscillator 1's rows say they were kept
    _shot(page, "3-stopped")

    # refine again with a small budget: it continues from the kept best and ends by itself
    budget = page.locator("#budget input[type=number]")
    budget.fill("24")
    budget.press("Enter")
    page.click("#refine")
    _wait_text(page, "#status", "Refined", timeout=120_000)
    page.wait_for_function("!document.querySelector('#refine').disabled && document.querySelector('#stop').disabled",
                           timeout=30_000)
    assert _line_points(page) > points

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "pad-lexapro.vital"
    saved = ARTIFACTS / "browser-pad-lexapro.vital"
    download.value.save_as(str(saved))
    assert vita.Synth().load_preset(str(saved)) is True

    # morph from the match to a preset file
    page.get_by_role("tab", name="Morph").click()
    page.locator("#morph-b-vital input[type=file]").set_input_files(str(HUMAN_PRESETS / "PS-20-Oboe.vital"))
    steps = page.locator("#morph-steps input[type=number]")
    steps.fill("4")
    steps.press("Enter")
    steps.blur()
    # the slider's own state must hold 4 before Morph is pressed (under load the number box commits late)
    page.wait_for_function("document.querySelector('#morph-steps input[type=range]').value === '4'", timeout=10_000)
    page.click("#morph-btn")
    _wait_text(page, "#morph-status", "even step", timeout=120_000)
    for i in range(4):
        page.wait_for_selector(f"#morph-step-{i} audio", state="attached")
    assert page.locator("#morph-step-4").count() == 0 or not page.locator("#morph-step-4").is_visible()
    with page.expect_download() as download:
        page.click("#morph-download-1")
    step = ARTIFACTS / "browser-morph-step.vital"
    download.value.save_as(str(step))
    assert vita.Synth().load_preset(str(step)) is True
    _shot(page, "4-morph", docs=True)

    page.get_by_role("tab", name="Tutorial").click()
    page.click("#tutorial-btn")
    _wait_text(page, "#tutorial-notice", "Offline tutorial")
    _wait_text(page, "#tutorial", "Init")
    _shot(page, "5-tutorial", docs=True)

    page.get_by_role("tab", name="About").click()
    assert "candidates" in _text(page, "#about")


def test_a_refused_file_says_why_and_its_error_badges_clear(page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are my notes, not a recording\n")
    _upload(page, bad)
    toast = page.locator(".toast-body, [data-testid='toast-body']").first
    toast.wait_for(state="visible", timeout=30_000)
    text = toast.inner_text()
    assert "not audio" in text and "Traceback" not in text
    _wait_text(page, "#status", "File refused")
    assert page.locator("#clip audio").count() == 0  # the player was cleared: nothing to analyse
    _shot(page, "6-refused", docs=True)
    page.click("#analyze")  # nothing to analyse: a notice, and gradio's Error badges on the outputs
    page.wait_for_function("document.querySelectorAll('[data-testid=status-tracker] span.error').length > 0",
                           timeout=30_000)
    # the next action (a good clip) clears them
    _upload(page, EXAMPLES / "keys-vibraphone.wav")
    _wait_text(page, "#status", "Loaded")
    page.wait_for_function("document.querySelectorAll('[data-testid=status-tracker] span.error').length == 0",
                           timeout=10_000)
    assert _error_badges(page) == 0


def _details_numbers(page) -> tuple[int, int, float]:
    """(renders this run, renders for this clip, best loss) as the details accordion shows them."""
    text = _text(page, "#details")
    m = re.search(r"(\d+) renders this run \((\d+) for this clip\).*?Best loss (\d+\.\d+)", text, re.S)
    assert m, f"the details do not show the refinement's renders and best loss: {text!r}"
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def _best_line_ys(page) -> list[float]:
    """Screen y of every point of the red best-so-far line, left to right (SVG y grows downwards)."""
    paths = page.locator("#loss-plot g.mark-line path")
    for i in range(paths.count()):
        p = paths.nth(i)
        if "214, 39, 40" in (p.get_attribute("stroke") or "") + (p.get_attribute("style") or "") or \
                (p.get_attribute("stroke") or "").lower() == "#d62728":
            pts = re.findall(r"[ML]\s*([-0-9.e]+)[ ,]([-0-9.e]+)", p.get_attribute("d") or "")
            return [float(y) for _, y in pts]
    raise AssertionError("the loss plot has no red best-so-far line")


def _wait_run_end(page) -> None:
    """Wait for a refinement to start (Stop enabled) and then to end with "Refined" (Refine enabled, Stop
    disabled), then for its last details to land: an earlier status may already say "Refined"."""
    page.wait_for_function("!document.querySelector('#stop').disabled", timeout=30_000)
    page.wait_for_function("!document.querySelector('#refine').disabled && document.querySelector('#stop').disabled",
                           timeout=120_000)
    _wait_text(page, "#status", "Refined", timeout=10_000)
    time.sleep(1.0)


def test_two_refinements_never_raise_the_best_and_their_renders_add_up(page, tmp_path):
    """Refine to the end, then Refine again and Stop it early, then a short third run: the best loss shown
    (details, status, the red line, the downloaded preset's comment) never rises and the render counts add up
    across the runs (the stopped run's renders included)."""
    import soundfile as sf

    from vital_inverse.preset import load_vital
    from vital_inverse.synth import SAMPLE_RATE, Renderer

    clip = tmp_path / "oboe-short.wav"  # a short note keeps every render cheap
    sf.write(clip, Renderer().render(load_vital(HUMAN_PRESETS / "PS-20-Oboe.vital"), 60, 0.8, 0.4, 0.6).T,
             SAMPLE_RATE)
    _upload(page, clip)
    _wait_text(page, "#status", "Loaded")
    page.click("#analyze")
    _wait_text(page, "#status", "Closest of", timeout=120_000)
    page.get_by_text("Details (for the technically minded)").click()
    budget = page.locator("#budget input[type=number]")

    # run 1: a small budget, to the end
    budget.fill("30")
    budget.press("Enter")
    budget.blur()
    page.click("#refine")
    _wait_run_end(page)
    run1, total1, best1 = _details_numbers(page)
    assert run1 == total1 and 0 < run1 <= 30
    assert f"{best1:.2f}" in _text(page, "#status")  # the status shows the same best
    ys1 = _best_line_ys(page)

    # run 2: a large budget, stopped after a few generations
    budget.fill("600")
    budget.press("Enter")
    budget.blur()
    page.click("#refine")
    _wait_text(page, "#status", "Refining")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            run2, total2, _ = _details_numbers(page)
        except AssertionError:
            run2, total2 = 0, 0
        if total2 > total1 and run2 >= 30:
            break
        time.sleep(0.25)
    assert run2 >= 30, "the second refinement made no progress"
    page.click("#stop")
    _wait_text(page, "#status", "Stopped", timeout=10_000)
    page.wait_for_function("!document.querySelector('#refine').disabled && document.querySelector('#stop').disabled",
                           timeout=30_000)
    time.sleep(1.0)  # the last generation's details land
    run2, total2, best2 = _details_numbers(page)
    assert total2 == total1 + run2, (total1, run2, total2)  # every render of both runs is counted once
    assert best2 <= best1 + 1e-4, (best1, best2)  # the second run never reports a worse best
    kept = re.search(r"distance \*?\*?(\d+\.\d+)", _text(page, "#status"))
    assert kept and float(kept.group(1)) <= round(best1, 2) + 1e-9
    ys = _best_line_ys(page)
    assert len(ys) > len(ys1)
    assert all(b >= a - 0.5 for a, b in zip(ys, ys[1:])), "the red best-so-far line went up"

    # run 3: a short one to the end; it counts on from every render the stopped run spent
    budget.fill("12")
    budget.press("Enter")
    budget.blur()
    page.click("#refine")
    _wait_run_end(page)
    run3, total3, best3 = _details_numbers(page)
    assert 0 < run3 <= 24, run3  # 12 asked for; the app's minimum budget is 24 (service.BUDGETS)
    assert total3 == total2 + run3, (total2, run3, total3)
    assert best3 <= best2 + 1e-4, (best2, best3)

    # the download holds the kept best: its comment's loss is no worse than run 1's, its count within the runs
    with page.expect_download() as download:
        page.click("#download")
    saved = tmp_path / "kept.vital"
    download.value.save_as(str(saved))
    comment = load_vital(saved).comments
    m = re.search(r"refined with (\d+) renders, loss (\d+\.\d+)", comment)
    assert m, comment
    assert 0 < int(m.group(1)) <= total3  # the renders spent when this best was found
    assert float(m.group(2)) <= best1 + 1e-3
    _shot(page, "7-two-refinements")
