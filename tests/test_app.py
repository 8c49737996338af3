# SPDX-License-Identifier: GPL-3.0-or-later
"""The Gradio app in-process, driven through gradio_client as a remote user would.

One server for the module (start-up warms the model and two render
workers); small clips and tiny refinement budgets. Covers: analyze ->
refine -> stop -> download (the file loads in Vita and sounds like the
refined player), notices instead of tracebacks, and several users at once
each getting their own results.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT))

from conftest import free_port
from test_session import use_checkpoint


@pytest.fixture(scope="module")
def served(shipped_predictor, render_pool):
    """The app as ``app.main`` builds it: a started Service handed to the UI, served in-process."""
    use_checkpoint()
    saved_key = os.environ.pop("ANTHROPIC_API_KEY", None)  # the tutorial must not call the API from tests
    import app
    from vital_inverse.service import Service

    service = Service(warm_clip=sorted(EXAMPLES.glob("*.wav"))[0])
    service.start(shipped_predictor, render_pool)  # the session's model and workers (each costs seconds)
    demo = app.build_demo(service)
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield SimpleNamespace(app=app, url=f"http://127.0.0.1:{port}/", demo=demo, service=service)
    demo.close()
    service.close()
    if saved_key is not None:
        os.environ["ANTHROPIC_API_KEY"] = saved_key


@pytest.fixture(scope="module")
def server(served):
    return served.app, served.url


def _client(url: str, folder: Path):
    from gradio_client import Client

    folder.mkdir(parents=True, exist_ok=True)
    return Client(url, verbose=False, download_files=str(folder), analytics_enabled=False)


def _value(x):
    """A component's value from a client result (updates come back as dicts)."""
    if isinstance(x, dict) and x.get("__type__") == "update":
        return x.get("value")
    if isinstance(x, dict) and "value" in x and "headers" in x:
        return x["value"]
    return x


def _find(outputs, predicate):
    return [v for v in (_value(x) for x in outputs) if predicate(v)]


def _note_text(outputs) -> str:
    return _find(outputs, lambda v: isinstance(v, str) and v.startswith("### Detected note"))[0]


def _vital(outputs) -> str | None:
    found = _find(outputs, lambda v: isinstance(v, str) and v.endswith(".vital"))
    return found[0] if found else None


def _status(outputs) -> str:
    return _find(outputs, lambda v: isinstance(v, str) and v.startswith(("**Refin", "**Closest", "**Stopped")))[-1]


def _plot_points(outputs) -> int:
    plots = _find(outputs, lambda v: isinstance(v, dict) and v.get("mark") == "line")
    return len(plots[0]["data"]) if plots else 0


def _refined_wav(outputs) -> str | None:
    found = _find(outputs, lambda v: isinstance(v, str) and Path(v).name.startswith("refined-") and v.endswith(".wav"))
    return found[0] if found else None


def test_analyze_refine_stop_download(server, served, tmp_path):
    import soundfile as sf
    import vita
    from gradio_client import handle_file

    from vital_inverse import session
    from vital_inverse.intake import analyze_file
    from vital_inverse.metrics import mrstft
    from vital_inverse.preset import load_vital
    from vital_inverse.synth import Renderer

    app, url = server
    client = _client(url, tmp_path / "client")
    t = time.monotonic()
    out = client.predict(handle_file(str(EXAMPLES / "lead-umbra.wav")), api_name="/analyze")
    analyze_seconds = time.monotonic() - t
    assert _note_text(out).startswith("### Detected note: A4")
    assert Path(_vital(out)).name == "lead-umbra.vital"
    status = _status(out)
    # in a musician's words: how many candidates, the kept one, what the number means; jargon in the details
    n = int(status.split("Closest of ")[1].split(" candidates")[0])
    assert n >= 6 and "lower is closer" in status  # 4 from the network, 2 from the library, the clip's own
    assert not any(w in status for w in ("MRSTFT", "log-mel", "p=", "loss"))
    details = _find(out, lambda v: isinstance(v, str) and "MRSTFT" in v)
    assert details and "technical label" in details[0]
    assert details[0].count("\n| ") == n + 1  # a row per candidate counted (and the table's rule)
    assert "network's 4 most probable" in app.about_text() and "clip itself" in app.about_text()
    print(f"analyze through the API: {analyze_seconds:.2f} s (loaded machine)")

    job = client.submit("renders", 1200, api_name="/refine")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any(_plot_points(o) >= 4 for o in job.outputs()):
        time.sleep(0.2)
    assert any(_plot_points(o) >= 4 for o in job.outputs()), "the loss plot received no points"
    assert not job.done()
    t = time.monotonic()
    stop_text = client.predict(api_name="/stop")
    assert "Stopped" in stop_text
    while not job.done() and time.monotonic() - t < 30:
        time.sleep(0.05)
    stop_seconds = time.monotonic() - t
    assert job.done(), "refinement did not end after Stop"
    print(f"refinement ended {stop_seconds:.2f} s after Stop (the generation in flight finishes; loaded machine)")
    outputs = job.outputs()
    assert "stopped" in _status(outputs[-1])
    # the pool is free again: nothing of this refinement is left in the workers' queue
    renderer = served.service.renderer
    deadline = time.monotonic() + 10
    while renderer.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not renderer.pending()

    shown = [o for o in outputs if _refined_wav(o)]
    assert shown, "the refined player never updated"
    refined_wav, preset_file = _refined_wav(shown[-1]), _vital(shown[-1])
    assert Path(preset_file).name == "lead-umbra.vital"
    assert vita.Synth().load_preset(preset_file) is True

    # a new Refine continues from the kept best; the plot keeps the earlier points. Filter 1 and
    # oscillator 1's level are locked: they stay exactly as they were, the table says so
    job2 = client.submit("renders", 24, ["filter_1"], ["osc_1_level"], api_name="/refine")
    out2 = job2.result()
    assert "Refined" in _status(out2) and _plot_points(out2) > _plot_points(outputs[-1])
    shown2 = [o for o in job2.outputs() if _vital(o)]
    assert shown2, "the locked refinement never showed a result"
    before, after = load_vital(preset_file).values, load_vital(_vital(shown2[-1])).values
    for name in ("filter_1_on", "filter_1_cutoff", "filter_1_resonance", "osc_1_level"):
        assert after[name] == pytest.approx(before[name], abs=1e-9), name
    table = next(v["data"] for v in map(_value, shown2[-1]) if isinstance(v, dict) and "data" in v
                 and v.get("headers") == ["Module", "Setting", "Value", "Note"])
    assert next(row for row in table if row[0] == "Oscillator 1" and row[1] == "Level")[3].startswith("locked")

    # the file sounds like the refined player (within Vita's run-to-run noise)
    a = analyze_file(EXAMPLES / "lead-umbra.wav")
    player, _ = sf.read(refined_wav, dtype="float32", always_2d=True)
    player = session.match_audio(player.T, a.audio)
    r = Renderer()
    raw = r.render(Path(preset_file).read_text(), a.note, 0.8, a.note_seconds, a.render_seconds)
    from_file = session.match_audio(raw, a.audio)
    level = 20 * np.log10(max(float(np.sqrt(np.mean(np.square(raw, dtype=np.float64)))), 1e-12))
    assert level > -60, f"the refined preset is inaudible ({level:.0f} dBFS RMS)"
    noise = max(mrstft(session.match_audio(r.render(load_vital(preset_file), a.note, 0.8, a.note_seconds,
                                                    a.render_seconds), a.audio), from_file) for _ in range(2))
    distance = mrstft(from_file, player)
    assert distance <= 2.0 * noise + 0.1, "the downloaded preset does not sound like the refined player"


def test_bad_upload_shows_the_message_not_a_traceback(server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    _, url = server
    client = _client(url, tmp_path / "client")
    bad = tmp_path / "notes.wav"
    bad.write_text("these are my notes, not a recording\n")
    with pytest.raises(AppError) as info:
        client.predict(handle_file(str(bad)), api_name="/analyze")
    message = str(info.value)
    assert "not audio" in message and "Traceback" not in message
    with pytest.raises(AppError, match="Analyze a clip first"):
        client.predict("renders", 24, api_name="/refine")
    with pytest.raises(AppError, match="Analyze a clip first"):
        client.predict(api_name="/tutorial")
    assert client.predict(api_name="/stop") == "Nothing is running."


def test_an_unpitched_clip_is_flagged(server, tmp_path):
    from gradio_client import handle_file
    from test_session import noise_clip

    _, url = server
    client = _client(url, tmp_path / "client")
    out = client.predict(handle_file(str(noise_clip(tmp_path / "hit.wav"))), api_name="/analyze")
    assert "unpitched, rendered at C4" in _note_text(out)


def test_tutorial_is_offline_without_a_key(server, tmp_path):
    from gradio_client import handle_file

    _, url = server
    client = _client(url, tmp_path / "client")
    client.predict(handle_file(str(EXAMPLES / "keys-vibraphone.wav")), api_name="/analyze")
    notice, text = client.predict(api_name="/tutorial")
    assert "Offline tutorial" in notice and "ANTHROPIC_API_KEY" in notice
    assert text.startswith("# ") and "Init" in text


def test_several_users_at_once_each_get_their_own_results(server, tmp_path):
    from gradio_client import handle_file

    _, url = server
    clips = {"pad-lexapro": "C4", "bass-nier": "C2", "keys-vibraphone": "E4"}
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def user(stem: str) -> None:
        try:
            client = _client(url, tmp_path / stem)
            t = time.monotonic()
            out = client.predict(handle_file(str(EXAMPLES / f"{stem}.wav")), api_name="/analyze")
            analyzed = time.monotonic() - t
            refined = client.predict("renders", 24, api_name="/refine")
            results[stem] = {"note": _note_text(out), "analyze_vital": _vital(out), "seconds": analyzed,
                             "refine_status": _status(refined), "refine_vital": _vital(refined),
                             "tutorial": client.predict(api_name="/tutorial")[1]}
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=user, args=(stem,)) for stem in clips]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=240)
    assert not errors, errors
    assert set(results) == set(clips), "not every user was served"
    for stem, note in clips.items():
        r = results[stem]
        assert r["note"].startswith(f"### Detected note: {note}"), (stem, r["note"])
        assert Path(r["analyze_vital"]).name == f"{stem}.vital"
        assert "Refined" in r["refine_status"]
        if r["refine_vital"]:
            assert Path(r["refine_vital"]).name == f"{stem}.vital"
        assert stem in r["tutorial"].splitlines()[0]  # the tutorial is about this user's own preset
    print("analyze with 3 users at once: " + ", ".join(f"{s} {r['seconds']:.1f} s" for s, r in results.items()))


def test_uploads_are_capped(server, served):
    app, _ = server
    assert app.LIMITS.max_seconds <= 60 and app.LIMITS.max_bytes <= 20 * 1024 * 1024
    assert served.demo.max_file_size == 20 * 1024 * 1024


def test_server_address_follows_gradio_variables():
    import app
    from vital_inverse.errors import UserError

    assert app.server_address({}) == ("127.0.0.1", 7860)  # this machine only, unless asked
    assert app.server_address({"GRADIO_SERVER_PORT": "7880"}) == ("127.0.0.1", 7880)
    assert app.server_address({"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7881", "PORT": "9"}) == \
        ("0.0.0.0", 7881)
    assert app.server_address({"PORT": "7882"}) == ("127.0.0.1", 7882)  # the older variable still works
    for bad in ("seventy", "70000"):
        with pytest.raises(UserError, match="GRADIO_SERVER_PORT"):
            app.server_address({"GRADIO_SERVER_PORT": bad})


def _sine(path: Path, seconds: float) -> Path:
    import soundfile as sf

    t = np.arange(int(44100 * seconds)) / 44100
    sf.write(path, (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100)
    return path


def test_a_too_short_clip_is_refused(server, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    app, url = server
    client = _client(url, tmp_path / "client")
    with pytest.raises(AppError, match="lasts only 0.05 s"):
        client.predict(handle_file(str(_sine(tmp_path / "blip.wav", 0.05))), api_name="/analyze")
    # on upload already (what the browser runs when a file is dropped): the player is cleared, the status says why
    cleared, _, _, status = app.check_clip(str(_sine(tmp_path / "blip2.wav", 0.05)))
    assert cleared is None and "File refused" in status and "0.05 s" in status
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    cleared, _, _, status = app.check_clip(str(empty))
    assert cleared is None and "File refused" in status
    _, _, _, status = app.check_clip(str(EXAMPLES / "keys-vibraphone.wav"))
    assert "Loaded" in status and "Press **Analyze**" in status


def test_one_upload_request_is_capped_in_all(server, tmp_path):
    import httpx

    app, url = server
    mb = 1024 * 1024
    chunk = tmp_path / "chunk.wav"
    chunk.write_bytes(b"\0" * (12 * mb))  # each file under the 20 MB per-file limit
    endpoint = url + "gradio_api/upload"
    with httpx.Client(timeout=60) as http:
        with open(chunk, "rb") as f1, open(chunk, "rb") as f2:
            two = http.post(endpoint, files=[("files", ("a.wav", f1)), ("files", ("b.wav", f2))])
        assert two.status_code == 413 and "too large" in two.text
        with open(chunk, "rb") as f1:
            one = http.post(endpoint, files=[("files", ("a.wav", f1))])
        assert one.status_code == 200, one.text
    assert app.MAX_REQUEST_BYTES < 2 * 12 * mb


def test_morph_from_the_current_match_to_a_vital_file(server, tmp_path, human_preset_dir):
    import vita
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    app, url = server
    client = _client(url, tmp_path / "client")
    with pytest.raises(AppError, match="analyze a clip"):
        client.predict("Current match", None, None, "A .vital file", handle_file(str(human_preset_dir /
                       "PS-20-Oboe.vital")), None, 3, api_name="/morph")
    client.predict(handle_file(str(EXAMPLES / "keys-vibraphone.wav")), api_name="/analyze")
    out = client.predict("Current match", None, None, "A .vital file",
                         handle_file(str(human_preset_dir / "PS-20-Oboe.vital")), None, 3, api_name="/morph")
    status = _value(out[0])
    assert status.startswith("**Morph from keys-vibraphone to PS-20 Oboe**") and "even step" in status
    n = app.MORPH_MAX_STEPS
    players, downloads = [_value(x) for x in out[1:1 + n]], [_value(x) for x in out[1 + n:]]
    assert [bool(p) for p in players] == [True] * 3 + [False] * (n - 3)
    assert all(Path(d).suffix == ".vital" for d in downloads[:3])
    assert vita.Synth().load_preset(downloads[1]) is True
    import soundfile as sf

    middle, _ = sf.read(players[1], dtype="float32")
    assert 20 * np.log10(np.sqrt(np.mean(np.square(middle))) + 1e-12) > -60  # the middle step sounds
    # B may be the match of another clip
    out = client.predict("Current match", None, None, "Another clip", None,
                         handle_file(str(EXAMPLES / "bass-nier.wav")), 2, api_name="/morph")
    assert _value(out[0]).startswith("**Morph from keys-vibraphone to bass-nier**")
