# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input, end to end: every case gets one clear message, exit code 2, no traceback, no hang.

The corpus is built here (nothing beside the repository is needed): odd audio files
(not audio, random bytes under audio names, damaged and truncated containers, silence,
too quiet, NaN, absurd scale, wrong rates, too long ...), bad .vital presets (not JSON,
too deep, too big, too many modulations or LFOs, missing parts, values Vita crashes on
...) and bad command-line values. Each goes through `vital-inverse` in this process
(`cli.main(argv)` with the process's file descriptors captured, so a C library writing
to stderr is caught too) and a few through a real subprocess; the audio corpus also goes
through the app's API, which must answer with a readable message and stay healthy.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vital_inverse import cli
from vital_inverse.intake import IntakeError, analyze_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SR = 44100
#: Seconds any one in-process case may take (a bad input must be refused fast).
CASE_SECONDS = 10.0
SUBPROCESS_SECONDS = 90.0


@dataclass(frozen=True)
class Case:
    """One input. ``words``: what the one-line message (or notice) must say."""

    name: str
    path: Path
    ok: bool = False
    words: tuple[str, ...] = ()


# --------------------------------------------------------------------------- corpus: audio


def _wav(x: np.ndarray, sr: int = SR, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.asarray(x, dtype=np.float64), sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def _note(seconds: float = 1.0, f0: float = 220.0, amp: float = 0.5, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    env = np.minimum(1.0, t / 0.005) * np.clip((seconds - t) / 0.05, 0.0, 1.0)
    return amp * x * env / np.max(np.abs(x))


def build_audio_corpus(folder: Path) -> list[Case]:
    """At least 40 audio inputs, each with what must be said about it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    good = _wav(_note())
    flac = _wav(_note(), subtype="PCM_16", fmt="FLAC")
    ogg = _wav(_note(), subtype="VORBIS", fmt="OGG")
    aiff = _wav(_note(), subtype="PCM_16", fmt="AIFF")
    n = len(_note())
    cases: list[tuple[str, bytes | None, bool, tuple[str, ...]]] = [
        ("empty.wav", b"", False, ("empty", "0 bytes")),
        ("notes.wav", b"these are my notes, not a recording\n" * 30, False, ("not audio", "text")),
        ("image.wav", b"\x89PNG\r\n\x1a\n" + rng.bytes(2000), False, ("not audio", "PNG")),
        ("photo.mp3", b"\xff\xd8\xff\xe0" + rng.bytes(2000), False, ("not audio", "JPEG")),
        ("paper.flac", b"%PDF-1.4\n" + rng.bytes(2000), False, ("not audio", "PDF")),
        ("archive.ogg", b"PK\x03\x04" + rng.bytes(2000), False, ("not audio", "ZIP")),
        ("page.mp3", b"<!DOCTYPE html><html><body>hi</body></html>\n" * 20, False, ("not audio", "HTML")),
        ("preset.wav", json.dumps({"preset_name": "x", "settings": {}}).encode() * 20, False, ("not audio", "JSON")),
        ("random.mp3", rng.bytes(5000), False, ("matches none",)),
        ("random.wav", rng.bytes(5000), False, ("matches none",)),
        ("random.flac", rng.bytes(5000), False, ("matches none",)),
        ("random.ogg", rng.bytes(20000), False, ("matches none",)),
        ("id3-then-garbage.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + rng.bytes(5000), False, ("MP3", "damaged")),
        ("sync-then-garbage.mp3", b"\xff\xfb\x90\x64" + bytes(5000), False, ("MP3",)),
        ("header-only.wav", good[:44], False, ("no audio samples",)),
        ("header-cut.wav", good[:30], False, ("damaged or truncated",)),
        ("garbled.wav", good[:12] + rng.bytes(3000), False, ("damaged",)),
        ("cut.flac", flac[:120], False, ("FLAC", "damaged")),
        ("cut.ogg", ogg[:200], False, ("OGG", "damaged")),
        ("cut.aiff", aiff[:40], False, ("AIFF", "damaged")),
        ("music.wav", b"\x00\x00\x00\x20ftypM4A " + bytes(400), False, ("M4A", "not supported")),
        ("video.wav", b"\x1aE\xdf\xa3" + bytes(400), False, ("WebM", "not supported")),
        ("zero-frames.wav", _wav(np.zeros((0, 2))), False, ("no audio samples",)),
        ("one-sample.wav", _wav(np.zeros((1, 2))), False, ("1 sample",)),
        ("ten-ms.wav", _wav(_note(0.01)), False, ("long", "at least")),
        ("silent.wav", _wav(np.zeros(SR)), False, ("silent",)),
        ("quiet-90dB.wav", _wav(rng.standard_normal(SR) * 10 ** (-90 / 20), subtype="FLOAT"), False,
         ("too quiet", "dBFS")),
        ("quiet-75dB-note.wav", _wav(_note(amp=10 ** (-75 / 20)), subtype="FLOAT"), False, ("too quiet", "-75 dBFS")),
        ("offset-only.wav", _wav(np.full(SR, 0.25), subtype="FLOAT"), False, ("constant offset",)),
        ("nan.wav", _wav(np.where(np.arange(n) % 97 == 0, np.nan, _note()), subtype="FLOAT"), False, ("NaN",)),
        ("inf.wav", _wav(np.where(np.arange(n) == 999, np.inf, _note()), subtype="FLOAT"), False, ("infinite",)),
        ("scaled-1e30.wav", _wav(_note() * 1e30, subtype="FLOAT"), False, ("full scale", "damaged")),
        ("rate-4k.wav", _wav(_note(sr=4000), sr=4000), False, ("sample rate", "4000 Hz")),
        ("rate-384k.wav", _wav(_note(0.1, sr=384000), sr=384000), False, ("sample rate",)),
        ("seventy-seconds.wav", _wav(np.zeros(8000 * 70), sr=8000), False, ("long", "limit")),
        ("click.wav", _wav(np.where(np.arange(SR) == SR // 2, 0.9, 0.0)), False, ("click",)),
        ("no-channels.wav", good[:22] + b"\x00\x00" + good[24:], False, ("damaged",)),
        ("oversized.wav", None, False, ("limit",)),  # a sparse 60 MB file, made below
        ("folder.wav", None, False, ("folder",)),
        ("missing.wav", None, False, ("not found",)),
        # decoded, but not silently: what was wrong is said
        ("cut-in-half.wav", good[: len(good) // 2], True, ("cut short", "50%")),
        ("bogus-sizes.wav", good[:4] + b"\xff\xff\xff\xff" + good[8:40] + b"\xff\xff\xff\xff" + good[44:], True,
         ("no length",)),
        ("zero-sizes.wav", good[:4] + bytes(4) + good[8:40] + bytes(4) + good[44:], True, ("no length",)),
        # fine, whatever the name says
        ("really-a-wav.txt", good, True, ()),
        ("good.flac", flac, True, ()),
        ("good.ogg", ogg, True, ()),
        ("over-full-scale.wav", _wav(_note(amp=2.0), subtype="FLOAT"), True, ()),
    ]
    out = []
    for name, content, ok, words in cases:
        path = folder / name
        if name == "oversized.wav":
            with open(path, "wb") as fh:
                fh.write(good[:44])
                fh.truncate(60 * 1024 * 1024)
        elif name == "folder.wav":
            path.mkdir(exist_ok=True)
        elif content is not None:
            path.write_bytes(content)
        out.append(Case(name, path, ok, words))
    return out


# --------------------------------------------------------------------------- corpus: presets


def build_preset_corpus(folder: Path) -> list[Case]:
    """At least 30 .vital inputs (Vital's Init read from Vita, then damaged)."""
    from vital_inverse.preset import init_json

    folder.mkdir(parents=True, exist_ok=True)
    init_text = init_json()
    rng = np.random.default_rng(3)

    def doc():
        return json.loads(init_text)

    def edit(fn):
        d = doc()
        fn(d, d["settings"])
        return json.dumps(d)

    table = doc()["settings"]["wavetables"][0]["groups"][0]["components"][0]
    frame = table["keyframes"][0]
    cases: list[tuple[str, str | bytes | None, bool, tuple[str, ...]]] = [
        ("empty.vital", "", False, ("empty",)),
        ("blank.vital", "  \n\t ", False, ("empty",)),
        ("binary.vital", rng.bytes(3000), False, ("binary",)),
        ("utf16.vital", init_text.encode("utf-16"), False, ("binary",)),
        ("prose.vital", "this is a preset, trust me", False, ("not valid .vital JSON",)),
        ("truncated.vital", init_text[: len(init_text) // 2], False, ("truncated",)),
        ("array.vital", "[1, 2, 3]", False, ("JSON object",)),
        ("number.vital", "42", False, ("JSON object",)),
        ("null.vital", "null", False, ("JSON object",)),
        ("empty-object.vital", "{}", False, ("'settings'",)),
        ("settings-list.vital", '{"settings": []}', False, ("'settings'",)),
        ("no-wavetables.vital", edit(lambda d, s: s.pop("wavetables")), False, ("3 wavetables",)),
        ("four-wavetables.vital", edit(lambda d, s: s["wavetables"].append(s["wavetables"][0])), False,
         ("3 wavetables",)),
        ("no-version.vital", edit(lambda d, s: d.pop("synth_version")), False, ("missing 'synth_version'",)),
        ("number-version.vital", edit(lambda d, s: d.update(synth_version=1.5)), False, ("'synth_version'",)),
        ("no-sample.vital", edit(lambda d, s: s.pop("sample")), False, ("missing 'settings.sample'",)),
        ("sample-string.vital", edit(lambda d, s: s.update(sample="x")), False, ("'settings.sample'",)),
        ("sample-negative.vital", edit(lambda d, s: s["sample"].update(length=-5)), False, ("sample.length",)),
        ("nine-lfos.vital", edit(lambda d, s: s["lfos"].append(s["lfos"][0])), False, ("LFOs",)),
        ("lfos-dict.vital", edit(lambda d, s: s.update(lfos={})), False, ("'settings.lfos'",)),
        ("65-modulations.vital", edit(lambda d, s: s["modulations"].append({"source": "lfo_1",
                                                                            "destination": "osc_1_level"})),
         False, ("modulation slots",)),
        ("million-modulations.vital", edit(lambda d, s: s.update(modulations=[{}] * 1_000_000)), False,
         ("1,000,000", "modulation slots")),
        ("modulations-string.vital", edit(lambda d, s: s.update(modulations="lfo")), False, ("'settings.modulations'",)),
        ("odd-component.vital", edit(lambda d, s: s["wavetables"][0]["groups"][0]["components"][0].update(type="Glitch")),
         False, ("component type",)),
        ("300-keyframes.vital", edit(lambda d, s: s["wavetables"][0]["groups"][0]["components"][0].update(
            keyframes=[dict(frame, position=i % 257) for i in range(300)])), False, ("300 keyframes", "257")),
        ("far-keyframe.vital", edit(lambda d, s: s["wavetables"][0]["groups"][0]["components"][0]["keyframes"][0].update(
            position=10**9)), False, ("position",)),
        ("short-wave.vital", edit(lambda d, s: s["wavetables"][0]["groups"][0]["components"][0]["keyframes"][0].update(
            wave_data="AAAA")), False, ("wave_data",)),
        ("nan-volume.vital", init_text.replace('"volume":', '"volume": NaN, "x_volume":', 1), False, ("finite",)),
        ("inf-cutoff.vital", edit(lambda d, s: s.update(filter_1_cutoff=float("inf"))), False, ("finite",)),
        ("loud-string.vital", edit(lambda d, s: s.update(filter_1_cutoff="loud")), False, ("must be a number",)),
        ("cutoff-999.vital", edit(lambda d, s: s.update(filter_1_cutoff=999.0)), False, ("outside",)),
        ("deep-200k.vital", "[" * 200_000 + "]" * 200_000, False, ("nests",)),
        ("deep-100.vital", '{"settings": ' + "[" * 100 + "]" * 100 + "}", False, ("'settings'",)),
        ("deep-inside.vital", edit(lambda d, s: d.update(comments=json.loads("[" * 100 + "]" * 100))), False,
         ("nests",)),
        ("many-values.vital", edit(lambda d, s: d.update(comments=[0] * 3_000_000)), False, ("JSON values",)),
        ("200MB.vital", None, False, ("MB", "at most")),  # sparse, made below
        ("folder.vital", None, False, ("folder",)),
        ("missing.vital", None, False, ("no such file",)),
        # fine, and rendered
        ("init.vital", init_text, True, ()),
        ("bom.vital", "\ufeff" + init_text, True, ()),
        ("volume-1e308.vital", edit(lambda d, s: s.update(volume=1e308)), True, ("above full scale",)),
    ]
    out = []
    for name, content, ok, words in cases:
        path = folder / name
        if name == "200MB.vital":
            with open(path, "w") as fh:
                fh.write(init_text)
                fh.truncate(200 * 1024 * 1024)
        elif name == "folder.vital":
            path.mkdir(exist_ok=True)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        out.append(Case(name, path, ok, words))
    return out


# --------------------------------------------------------------------------- corpus: arguments


def bad_arguments(preset: Path, clip: Path, tmp: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    """Command lines that must be refused with one line (argv, words in it)."""
    p, c = str(preset), str(clip)
    out_wav = str(tmp / "out.wav")
    (tmp / "a-folder.wav").mkdir(exist_ok=True)
    render = ["render", p, "--out", out_wav]
    return [
        ([], ("required",)),
        (["frobnicate"], ("invalid choice",)),
        (render + ["--note", "200"], ("--note", "0-127")),
        (render + ["--note", "-5"], ("--note", "0-127")),
        (render + ["--note", "60.5"], ("--note", "MIDI note")),
        (render + ["--note", "C4"], ("--note",)),
        (render + ["--velocity", "0"], ("--velocity", "above 0")),
        (render + ["--velocity", "nan"], ("--velocity", "finite")),
        (render + ["--velocity", "1.5"], ("--velocity", "at most 1")),
        (render + ["--velocity", "-0.2"], ("--velocity",)),
        (render + ["--seconds", "nan"], ("--seconds", "finite")),
        (render + ["--seconds", "0"], ("--seconds",)),
        (render + ["--seconds", "inf"], ("--seconds", "finite")),
        (render + ["--seconds", "1e9"], ("--seconds", "at most")),
        (render + ["--note-seconds", "-1"], ("--note-seconds", "positive")),
        (render + ["--note-seconds", "nan"], ("--note-seconds", "finite")),
        (render + ["--note-seconds", "0"], ("--note-seconds", "positive")),
        (["render", p, "--out", str(tmp / "out.mp3")], ("--out", ".wav or .flac")),
        (["render", p, "--out", str(tmp / "no" / "such" / "out.wav")], ("does not exist",)),
        (["render", p, "--out", str(tmp / "a-folder.wav")], ("folder",)),
        (["render", p], ("--out",)),
        (render + ["--loud"], ("unrecognized",)),
        (["match", c, "--refine-evals", "-1"], ("--refine-evals",)),
        (["match", c, "--refine-evals", "many"], ("--refine-evals",)),
        (["match", c, "--generative", "500"], ("--generative", "0-64")),
        (["match", c, "--generative", "some"], ("--generative",)),
        (["match", c, "--seed", "x"], ("--seed",)),
        (["match", c, "--out", str(tmp / "no" / "such" / "x.vital")], ("does not exist",)),
        (["generate", "--out", str(tmp / "ds"), "--n", "0"], ("--n",)),
        (["generate", "--out", str(tmp / "ds"), "--n", "4", "--notes", "200"], ("--notes", "0-127")),
        (["generate", "--out", str(tmp / "ds"), "--n", "4", "--note-seconds", "nan"], ("--note-seconds",)),
        (["train", "--data", str(tmp), "--out", str(tmp / "ck"), "--lr", "nan"], ("--lr", "finite")),
        (["train", "--data", str(tmp), "--out", str(tmp / "ck"), "--lr", "0"], ("--lr", "positive")),
    ]


# --------------------------------------------------------------------------- running the CLI


@contextlib.contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_cli(capfd, argv: list[str]) -> tuple[int, str, str, float]:
    """``vital-inverse ARGV`` in this process: (exit code, stdout, stderr, seconds).

    capfd captures file descriptors 1 and 2, so what a C library prints is seen too."""
    capfd.readouterr()
    t = time.monotonic()
    with deadline(CASE_SECONDS):
        try:
            code = cli.main(argv)
        except SystemExit as e:  # must not happen: main returns the code
            code = f"SystemExit({e.code})"
    seconds = time.monotonic() - t
    out, err = capfd.readouterr()
    return code, out, err, seconds


def assert_one_error_line(code, out: str, err: str, words, what: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, f"{what}: exit code {code}, stderr {err!r}"
    assert "Traceback" not in err + out, f"{what}: traceback\n{err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{what}: expected one 'error:' line, got {lines!r}"
    assert not out.strip(), f"{what}: printed on stdout: {out!r}"
    for word in words:
        assert word in lines[0], f"{what}: {word!r} not in {lines[0]!r}"
    return lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    return {"audio": build_audio_corpus(root / "audio"), "presets": build_preset_corpus(root / "presets"),
            "root": root}


def test_corpus_is_big_enough(corpus):
    assert len(corpus["audio"]) >= 40
    assert len(corpus["presets"]) >= 30


def test_bad_audio_through_match(corpus, capfd):
    """`vital-inverse match BAD` for every refused clip: exit 2, one line, nothing from the decoders, fast."""
    refused = [c for c in corpus["audio"] if not c.ok]
    for case in refused:
        code, out, err, seconds = run_cli(capfd, ["match", str(case.path), "--out", str(corpus["root"] / "x.vital")])
        assert_one_error_line(code, out, err, case.words, case.name)
        assert seconds < 5.0, f"{case.name}: refused after {seconds:.1f} s"


def test_damaged_audio_that_is_read_says_so(corpus):
    """Damaged files that are decoded anyway carry a notice naming what was wrong; intact ones none."""
    for case in (c for c in corpus["audio"] if c.ok):
        analysis = analyze_file(case.path)
        text = " ".join(analysis.notices)
        for word in case.words:
            assert word in text, f"{case.name}: {word!r} not in notices {analysis.notices!r}"
        if not case.words:
            assert analysis.notices == (), f"{case.name}: unexpected notices {analysis.notices!r}"
        assert analysis.pitched and abs(analysis.f0_hz - 220.0) < 3.0, case.name


def test_bad_presets_through_render(corpus, capfd):
    """`vital-inverse render BAD.vital` for every refused preset: exit 2, one line, fast (caps checked up front)."""
    out_wav = corpus["root"] / "render.wav"
    for case in (c for c in corpus["presets"] if not c.ok):
        code, out, err, seconds = run_cli(capfd, ["render", str(case.path), "--seconds", "0.3", "--out", str(out_wav)])
        assert_one_error_line(code, out, err, case.words, case.name)
        assert seconds < 3.0, f"{case.name}: refused after {seconds:.1f} s"


def test_good_presets_render_and_never_clip(corpus, capfd):
    """Accepted presets render; a render above full scale is written as float WAV (peak kept) with a notice."""
    for case in (c for c in corpus["presets"] if c.ok):
        target = corpus["root"] / f"{case.path.stem}.wav"
        code, out, err, _ = run_cli(capfd, ["render", str(case.path), "--seconds", "0.5", "--out", str(target)])
        assert code == 0 and "Traceback" not in err, (case.name, err)
        audio, sr = sf.read(target, dtype="float32", always_2d=True)
        peak = float(np.max(np.abs(audio)))
        assert sr == 44100 and peak > 0.01, case.name
        info = sf.info(target)
        if peak > 1.0:
            assert info.subtype == "FLOAT" and "above full scale" in err, (case.name, info.subtype, err)
        for word in case.words:
            assert word in err, (case.name, err)
    # FLAC has no float: the same render is scaled down, with a notice saying by how much
    loud = next(c for c in corpus["presets"] if c.name == "volume-1e308.vital")
    target = corpus["root"] / "loud.flac"
    code, out, err, _ = run_cli(capfd, ["render", str(loud.path), "--seconds", "0.5", "--out", str(target)])
    audio, _ = sf.read(target, dtype="float32")
    assert code == 0 and "scaled it down" in err and float(np.max(np.abs(audio))) <= 1.0


def test_bad_arguments(corpus, capfd):
    preset = next(c.path for c in corpus["presets"] if c.name == "init.vital")
    clip = next(c.path for c in corpus["audio"] if c.name == "good.flac")
    args = bad_arguments(preset, clip, corpus["root"])
    assert len(args) >= 25
    for argv, words in args:
        code, out, err, _ = run_cli(capfd, argv)
        assert_one_error_line(code, out, err, words, " ".join(argv[:1] + argv[2:]) or "(no arguments)")


def _subprocess(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "vital_inverse.cli", *argv], capture_output=True, text=True,
                          timeout=SUBPROCESS_SECONDS, cwd=cwd, env=env)


def test_real_processes_exit_2_without_traceback(corpus):
    """The exit code and the single line, end to end in fresh processes (a handful of the cases above)."""
    root = corpus["root"]
    audio = {c.name: c.path for c in corpus["audio"]}
    presets = {c.name: c.path for c in corpus["presets"]}
    runs = [
        (["render", str(presets["init.vital"]), "--note", "200", "--out", str(root / "a.wav")], ("--note",)),
        (["render", str(presets["deep-200k.vital"]), "--out", str(root / "a.wav")], ("nests",)),
        (["render", str(presets["nine-lfos.vital"]), "--out", str(root / "a.wav")], ("LFOs",)),
        (["match", str(audio["random.mp3"])], ("matches none",)),
        (["match", str(audio["id3-then-garbage.mp3"])], ("damaged",)),
    ]
    for argv, words in runs:
        t = time.monotonic()
        done = _subprocess(argv, root)
        assert_one_error_line(done.returncode, done.stdout, done.stderr, words, " ".join(argv[:2]))
        assert time.monotonic() - t < SUBPROCESS_SECONDS


def test_a_damaged_wav_is_matched_with_a_notice(corpus):
    """A WAV cut in half is matched end to end (model, renders) and the notice reaches the JSON and stderr."""
    clip = next(c.path for c in corpus["audio"] if c.name == "cut-in-half.wav")
    out = corpus["root"] / "half.vital"
    done = _subprocess(["match", str(clip), "--out", str(out), "--json"], corpus["root"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert any("cut short" in n for n in result["notices"]) and out.exists()
    assert result["note"] == 57 and result["chord"] == []
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def app_server(shipped_predictor, render_pool):
    """The app as ``app.main`` builds it (a started Service handed to the UI), served in this process."""
    from conftest import free_port

    saved_key = os.environ.pop("ANTHROPIC_API_KEY", None)
    sys.path.insert(0, str(ROOT))
    import app
    from vital_inverse.service import Service

    service = Service(warm_clip=sorted((ROOT / "examples").glob("*.wav"))[0])
    service.start(shipped_predictor, render_pool)  # the session's model and workers
    demo = app.build_demo(service)
    port = free_port()
    app.launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield app, f"http://127.0.0.1:{port}/"
    demo.close()
    service.close()
    if saved_key is not None:
        os.environ["ANTHROPIC_API_KEY"] = saved_key


def test_bad_audio_through_the_app(app_server, corpus, tmp_path):
    """Every uploadable refused clip through /analyze: a readable message (the one the CLI prints), then a
    damaged-but-readable clip and a good clip still analyse: the app stays healthy."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    app, url = app_server
    client = Client(url, verbose=False, download_files=str(tmp_path), analytics_enabled=False)
    skip = {"oversized.wav", "folder.wav", "missing.wav"}  # not uploadable (gradio's own 20 MB cap is test_app's)
    cases = [c for c in corpus["audio"] if not c.ok and c.name not in skip and c.path.stat().st_size > 0]
    assert len(cases) >= 35
    for case in cases:
        t = time.monotonic()
        with pytest.raises(AppError) as info:
            client.predict(handle_file(str(case.path)), api_name="/analyze")
        message = str(info.value)
        assert "Traceback" not in message and message.strip() not in ("", "None"), (case.name, message)
        with pytest.raises(IntakeError) as direct:
            analyze_file(case.path, app.LIMITS)
        for word in case.words:
            assert word in message, (case.name, word, message)
        assert message.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">") == str(direct.value), \
            (case.name, message)  # the same message as the CLI prints
        assert time.monotonic() - t < CASE_SECONDS, case.name
    half = next(c.path for c in corpus["audio"] if c.name == "cut-in-half.wav")
    out = client.predict(handle_file(str(half)), api_name="/analyze")
    note = next(v for v in out if isinstance(v, str) and v.startswith("### Detected note"))
    assert note.startswith("### Detected note: A3") and "cut short" in note
    out = client.predict(handle_file(str(ROOT / "examples" / "bass-nier.wav")), api_name="/analyze")
    assert any(isinstance(v, str) and v.startswith("### Detected note: C2") for v in out)


def test_a_refused_file_path_gets_a_message_and_one_log_line(app_server, capfd, caplog):
    """A request naming a server file it did not upload: the client reads why, the log has one line."""
    import httpx

    _, url = app_server
    capfd.readouterr()
    caplog.clear()
    payload = {"data": [{"path": "/etc/hostname", "meta": {"_type": "gradio.FileData"}}, None]}
    with httpx.Client(timeout=30) as http:
        event = http.post(f"{url}gradio_api/call/analyze", json=payload).json()["event_id"]
        stream = http.get(f"{url}gradio_api/call/analyze/{event}").text
    assert "event: error" in stream, stream
    data = json.loads(stream.split("event: error", 1)[1].split("data:", 1)[1].splitlines()[0])
    assert data is not None and "refused that file" in str(data), stream
    _, err = capfd.readouterr()
    assert "Traceback" not in err, err
    refused = [r for r in caplog.records if r.name == "vital_inverse.app" and "refused" in r.getMessage()]
    assert len(refused) == 1 and "\n" not in refused[0].getMessage()


def test_players_never_clip():
    """The app's players: a render above full scale is scaled, not clipped (waveform shape kept)."""
    from vital_inverse.session import write_wav

    t = np.arange(SR) / SR
    x = np.stack([2.1 * np.sin(2 * np.pi * 220 * t)] * 2).astype(np.float32)
    path = write_wav(x, Path(os.environ.get("TMPDIR", "/tmp")) / f"players-{os.getpid()}.wav")
    y, _ = sf.read(path, dtype="float32", always_2d=True)
    path.unlink()
    assert float(np.max(np.abs(y))) <= 1.0
    corr = float(np.corrcoef(y[:, 0], x[0])[0, 1])
    assert corr > 0.9999, "the player's audio is clipped or distorted"
    assert math.isclose(float(np.max(np.abs(y))), 0.999, rel_tol=1e-3)
