# SPDX-License-Identifier: GPL-3.0-or-later
"""The app in a real browser: Debian's Chromium (headless) driven by Python Playwright.

Starts ``python app.py`` as a separate process (the way a Space runs it),
then: upload a clip, Analyze, Refine until the loss plot has points, Stop,
download the .vital, write the tutorial, and upload a file that is not
audio. Screenshots go to ``test-artifacts/``. ``playwright install`` is not
used: Chromium comes from Debian (``apt-get install -y chromium``).
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


def test_analyze_refine_stop_download_tutorial(page, tmp_path):
    import vita

    _upload(page, EXAMPLES / "pad-lexapro.wav")
    page.wait_for_selector("#clip audio", state="attached")
    t = time.monotonic()
    page.click("#analyze")
    page.wait_for_function("document.querySelector('#note')?.innerText.includes('Detected note')")
    print(f"Analyze in the browser: {time.monotonic() - t:.1f} s (loaded machine)")
    assert "C4" in page.inner_text("#note")
    page.wait_for_selector("#predicted audio", state="attached")
    assert page.locator("#spectrogram img").count() == 1
    page.wait_for_function("document.querySelector('#table')?.innerText.includes('Oscillator')")
    assert int(page.get_attribute("#table [role=grid]", "aria-rowcount")) > 5  # rows are virtualised
    page.screenshot(path=str(ARTIFACTS / "browser-1-analyzed.png"), full_page=True)

    page.click("#refine")
    page.wait_for_function("document.querySelector('#status')?.innerText.includes('Refining')")
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
    page.screenshot(path=str(ARTIFACTS / "browser-2-refining.png"), full_page=True)

    t = time.monotonic()
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status')?.innerText.includes('Stopped')", timeout=10_000)
    stop_seconds = time.monotonic() - t
    print(f"Stop -> 'Stopped' shown: {stop_seconds:.2f} s")
    assert stop_seconds < 3.0
    points = _line_points(page)
    time.sleep(3)
    assert _line_points(page) == points, "the plot still moves after Stop"
    page.screenshot(path=str(ARTIFACTS / "browser-3-stopped.png"), full_page=True)

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "pad-lexapro.vital"
    saved = ARTIFACTS / "browser-pad-lexapro.vital"
    download.value.save_as(str(saved))
    assert vita.Synth().load_preset(str(saved)) is True

    page.get_by_role("tab", name="Tutorial").click()
    page.click("#tutorial-btn")
    page.wait_for_function("document.querySelector('#tutorial-notice')?.innerText.includes('Offline tutorial')")
    page.wait_for_function("document.querySelector('#tutorial')?.innerText.includes('Init')")
    page.screenshot(path=str(ARTIFACTS / "browser-4-tutorial.png"), full_page=True)


def test_a_file_that_is_not_audio_gives_a_notice(page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are my notes, not a recording\n")
    _upload(page, bad)
    time.sleep(1.0)
    page.click("#analyze")
    toast = page.locator(".toast-body, [data-testid='toast-body']").first
    toast.wait_for(state="visible", timeout=30_000)
    text = page.locator(".toast-body, [data-testid='toast-body']").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "browser-5-bad-file.png"), full_page=True)
    assert "not audio" in text and "Traceback" not in text
