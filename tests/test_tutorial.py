# SPDX-License-Identifier: GPL-3.0-or-later
"""Tutorial writer: the readable report, the offline tutorial and the streamed LLM tutorial.

The LLM path talks to a fake of the remote service only (an httpx2
MockTransport, the HTTP library of the anthropic 2.x SDK); the SDK and our
code run for real.
"""

from __future__ import annotations

import json
import logging
import re

import pytest

from vital_inverse.params import EFFECT_SWITCH
from vital_inverse.preset import Preset, load_vital, with_custom_wavetable
from vital_inverse.tutorial import (
    DEFAULT_MODEL,
    MODEL_ENV,
    TutorialError,
    build_report,
    offline_tutorial,
    report_text,
    stream_tutorial,
)
from vital_inverse.tutorial import tidy_value_text as tidy

httpx2 = pytest.importorskip("httpx2")

HUMAN = ["SalmoBass", "PS-20-Accordion", "BullfrogsOnNeptune", "FunkyTown", "Progwank", "AgeOfLove"]
KEY = "sk-ant-test-0123456789-SECRET-KEY-abcdef"


# --------------------------------------------------------------------------
# Helpers: what Vita says, independently of the module under test
# --------------------------------------------------------------------------


def _switch(space, group: str) -> str | None:
    for name in (f"{group}_on", EFFECT_SWITCH.get(group, "")):
        if name in space and space[name].group == group:
            return name
    return None


def _off_groups(space, values) -> dict[str, str]:
    """Switched-off module group -> its title (as the report names it)."""
    out = {}
    for group in space.groups():
        sw = _switch(space, group)
        if sw is not None and space[sw].index_of(values[sw]) == 0:
            out[group] = re.sub(r" Switch$", "", space[sw].display_name)
    return out


def _dest_group(dest: str) -> str | None:
    m = re.match(r"^(osc_\d|filter_\d)_", dest)
    return m.group(1) if m else None


def _expected(space, preset: Preset) -> set[str]:
    """Audible parameters the tutorial must state.

    ``space.audible`` also lists the switches of switched-off modules and
    routes of zero amount or into switched-off modules; those are not shown
    (a switched-off module is not named, an unconnected route is nothing in
    Vital's UI).
    """
    values = preset.values
    off = _off_groups(space, values)
    out = set()
    for name in space.audible(values):
        p = space[name]
        if p.group in off:
            continue
        if p.route is not None:
            if values[name] == 0.0:
                continue
            if all(_dest_group(d) in off for d in p.route.destinations):
                continue
        out.add(name)
    return out


def _slot(doc: dict, source: str, destinations) -> int:
    for i, m in enumerate(doc["settings"]["modulations"]):
        if m.get("source") == source and m.get("destination") in destinations:
            return i + 1
    raise AssertionError(f"no modulation slot for {source} -> {destinations}")


def _states(text: str, name: str, value: str) -> bool:
    """Whether some line of ``text`` names the setting ``name`` with ``value`` (quoted in backticks)."""
    return any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", ln) and f"`{value}`" in ln for ln in text.splitlines())


def _lines(text: str, *words: str) -> list[str]:
    """The lines of ``text`` that hold every one of ``words``."""
    return [ln for ln in text.splitlines() if all(w in ln for w in words)]


def _expected_lines(space, preset: Preset, synth) -> dict[str, tuple[str, str]]:
    """Parameter -> (Vital's display name, value text), read from a separately loaded Synth."""
    doc = preset.to_vital_dict(space)
    out = {}
    for name in _expected(space, preset):
        p = space[name]
        if p.route is not None:
            live = [d for d in p.route.destinations if _dest_group(d) not in _off_groups(space, preset.values)]
            text = tidy(synth.get_control_text(f"modulation_{_slot(doc, p.route.source, live)}_amount"))
            out[name] = (p.route.label, text)
        elif name.endswith("_wavetable"):
            out[name] = (p.display_name, preset.wavetable_name(int(name[4]), space))
        elif name.endswith("_shape"):
            continue  # checked by name below: imported LFOs keep their own shape name
        else:
            d = synth.get_control_details(p.control)
            out[name] = (d.display_name, tidy(synth.get_control_text(p.control)))
    return out


def _check_tutorial(space, preset: Preset, renderer, note=None) -> str:
    text = offline_tutorial(preset, note=note)
    renderer.load_json(preset.to_vital_json(space))  # a Synth of its own, not the tutorial's
    for name, (display, value) in _expected_lines(space, preset, renderer.synth).items():
        assert _states(text, display, value), f"{preset.name}: {name} should be stated as {display} = {value!r}"
    for name in _expected(space, preset):
        if name.endswith("_shape"):
            assert _lines(text, space[name].display_name, "`")
    # No switched-off module is named, except in the step that switches it off (on in Init, off here).
    # Values in backticks are Vital's exact text and may name one ("FILTER 2", "FM <- Sample").
    for group, title in _off_groups(space, preset.values).items():
        names = [title] + [p.display_name for p in space.groups()[group]]
        for line in (re.sub(r"`[^`]*`", "``", ln) for ln in text.splitlines()):
            for n in names:
                if re.search(rf"(?<!\d ){re.escape(n)}\b", line):
                    assert re.match(r"^\d+\. ", line) and re.search(r"\boff\b", line), (
                        f"{preset.name}: switched-off {title} named in {line!r}"
                    )
    return text


# --------------------------------------------------------------------------
# Readable report and offline tutorial
# --------------------------------------------------------------------------


@pytest.mark.parametrize("stem", HUMAN)
def test_offline_tutorial_states_every_audible_value_human(space, renderer, human_preset_dir, stem):
    preset = load_vital(human_preset_dir / f"{stem}.vital", space)
    _check_tutorial(space, preset, renderer, note=45)


@pytest.mark.parametrize("seed, index", [(7, 0), (7, 1), (7, 2), (7, 3), (0, 1), (3, 4)])
def test_offline_tutorial_states_every_audible_value_sampled(space, renderer, seed, index):
    from vital_inverse.data.sampling import PresetSampler

    preset = PresetSampler(space, seed).preset(index)
    _check_tutorial(space, preset, renderer, note=60)


def test_init_tutorial_has_nothing_to_change(space, renderer):
    text = _check_tutorial(space, Preset.init(space), renderer)
    steps = re.findall(r"^\d+\. ", text, flags=re.MULTILINE)
    assert len(steps) == 2  # start from Init, and nothing else to change
    assert "Initialize Preset" in text  # Vital's own menu item


def test_steps_only_change_what_differs_from_init(space):
    preset = Preset.from_values(
        {"filter_1_on": "On", "filter_1_cutoff": 69.0, "osc_1_transpose": -12.0, "env_1_release": 1.2}, space
    )
    text = offline_tutorial(preset, note=40)
    headings = re.findall(r"^## .*$", text, flags=re.MULTILINE)
    assert len(headings) == 3  # steps, variations, all settings
    steps = text.split(headings[1])[0]
    assert _states(steps, "Oscillator 1 Transpose", "-12")
    assert any(re.search(r"\bswitch it on\b|\bon\b", ln) for ln in _lines(steps, "**Filter 1**"))
    assert _states(steps, "Filter 1 Cutoff", "9 semitones")
    assert _lines(steps, "Filter 1 Cutoff", "440 Hz")  # raw 69 = A4
    assert _lines(steps, "Envelope 1 Release")
    assert "Oscillator 1 Level" not in steps and "Envelope 1 Attack" not in steps
    assert _lines(steps, "E2", "40")  # the detected note, by name and MIDI number
    variations = text.split(headings[1])[1].split(headings[2])[0]
    assert _lines(variations, "Filter 1 Cutoff")
    assert text == offline_tutorial(preset, note=40)  # deterministic


def test_character_line(space):
    pluck = Preset.from_values({"env_1_sustain": 0.0, "env_1_decay": 0.5}, space)
    pad = Preset.from_values({"env_1_attack": 0.9, "env_1_release": 1.5, "osc_1_unison_voices": 7.0}, space)
    assert "plucked bass" in offline_tutorial(pluck, note=36).splitlines()[2]
    line = offline_tutorial(pad, note=64).splitlines()[2]
    assert "pad" in line and "E4" in line and "7-voice unison" in line
    assert "noise / FX" in offline_tutorial(pad, pitched=False).splitlines()[2]


def test_modulation_route_is_explained(space):
    preset = Preset.from_values({"filter_1_on": "On", "mod_env2_filter1_cutoff": 0.35}, space)
    report = build_report(preset)
    assert [s.kind for s in report.sections] == ["oscillator", "filter", "envelope", "envelope", "modulation"]
    item = report.item("mod_env2_filter1_cutoff")
    assert item.display_name == "Envelope 2 -> Filter 1 Cutoff" and item.text_value == "0.35"
    assert item.hint == "35%" and "ENV 2" in item.how_to and "Filter 1 Cutoff" in item.how_to
    assert _lines(offline_tutorial(preset), "Envelope 2 -> Filter 1 Cutoff", "`0.35`", "35%")


def test_extracted_wavetable_says_how_to_get_it(space):
    from vital_inverse.wavetables import Wavetable, bank_wavetable

    table = Wavetable("Extracted", bank_wavetable("Basic Shapes").frames)
    preset = with_custom_wavetable(Preset.init(space), 1, table)
    item = build_report(preset).item("osc_1_wavetable")
    assert item.text_value == "Extracted" and item.changed
    assert "PITCH SPLICE" in item.how_to and "Save to Wavetables" in item.how_to
    assert _states(offline_tutorial(preset), "Oscillator 1 Wavetable", "Extracted")


def test_tempo_synced_lfo_shows_its_tempo(space, human_preset_dir):
    preset = load_vital(human_preset_dir / "SalmoBass.vital", space)
    report = build_report(preset)
    assert report.item("lfo_1_sync").text_value == "Tempo"
    assert report.item("lfo_1_tempo").text_value == "1/4"
    assert "used only when" in report.item("lfo_1_frequency").hint


def test_bad_note_is_refused(space):
    with pytest.raises(TutorialError, match="MIDI note"):
        offline_tutorial(Preset.init(space), note=200)


# --------------------------------------------------------------------------
# LLM writer against a fake Anthropic Messages API
# --------------------------------------------------------------------------

CANNED = ["# Build", " this", " sound\n\n", "1. Open", " Vital's Init preset.", "\n2. Done."]


def _sse(events: list[tuple[str, dict]]) -> bytes:
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def _answer(model: str, parts=CANNED, error_after: int | None = None) -> bytes:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 900, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
    ]
    for n, part in enumerate(parts):
        if error_after is not None and n == error_after:
            events.append(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
            return _sse(events)
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": part}}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": 20}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return _sse(events)


@pytest.fixture()
def clean_env(monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS", MODEL_ENV):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def preset(space):
    return Preset.init(space, name="My Secret Song")


def _client(handler):
    return httpx2.Client(transport=httpx2.MockTransport(handler))


def _collect(preset, **kw):
    return list(stream_tutorial(preset, note=45, **kw))


def _assert_no_key(chunks):
    for c in chunks:
        assert KEY not in c.text and KEY not in (c.notice or "")


def _auth_problems(request) -> list[str]:
    """The key must travel only in the SDK's auth header, nowhere else.

    anthropic 2.x sends an API key as ``Authorization: Bearer <key>`` (1.x
    used ``x-api-key``); either is accepted, nothing else.
    """
    problems = []
    carriers = {k.lower(): v for k, v in request.headers.items() if KEY in v}
    if carriers not in ({"x-api-key": KEY}, {"authorization": f"Bearer {KEY}"}):
        problems.append(f"key carried by headers {sorted(carriers)}")
    if KEY.encode() in request.content or KEY in str(request.url):
        problems.append("key in the body or URL")
    return problems


def test_llm_streams_the_answer_token_by_token(space, preset, clean_env):
    report = report_text(build_report(preset))
    problems, seen = [], []

    def handler(request):
        # Failures are collected, not raised: the SDK would turn an exception here into a connection error.
        body = json.loads(request.content)
        seen.append(body)
        problems.extend(_auth_problems(request))
        if request.method != "POST" or request.url.path != "/v1/messages":
            problems.append(f"{request.method} {request.url.path}")
        if body.get("model") != DEFAULT_MODEL or body.get("stream") is not True:
            problems.append(f"model {body.get('model')!r}, stream {body.get('stream')!r}")
        prompt = body["messages"][0]["content"]
        if report not in prompt or "A2 (MIDI note 45" not in prompt:
            problems.append("the prompt lacks the report or the note")
        if "My Secret Song" in request.content.decode() or "/work" in request.content.decode():
            problems.append("the prompt carries the preset name or a path")
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=_answer(DEFAULT_MODEL))

    chunks = _collect(preset, api_key=KEY, http_client=_client(handler))
    assert problems == [] and len(seen) == 1
    assert [c.text for c in chunks] == CANNED
    assert all(c.source == "llm" for c in chunks)
    assert chunks[0].notice == f"Written by Claude (model {DEFAULT_MODEL})"
    assert all(c.notice is None for c in chunks[1:])


def test_llm_model_and_key_from_environment(preset, clean_env):
    clean_env.setenv(MODEL_ENV, "claude-test-model")
    clean_env.setenv("ANTHROPIC_API_KEY", KEY)

    problems = []

    def handler(request):
        problems.extend(_auth_problems(request))
        model = json.loads(request.content)["model"]
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=_answer(model))

    chunks = _collect(preset, http_client=_client(handler))
    assert problems == []
    assert "".join(c.text for c in chunks) == "".join(CANNED)
    assert chunks[0].notice == "Written by Claude (model claude-test-model)"


def _error(status: int, kind: str):
    def handler(request):
        body = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
        return httpx2.Response(status, json=body, headers={"x-should-retry": "false"})
    return handler


def _raise(exc_type):
    def handler(request):
        raise exc_type("fake network failure", request=request)
    return handler


@pytest.mark.parametrize(
    "handler, reason",
    [
        (_error(401, "authentication_error"), "the API key was rejected (401)"),
        (_error(429, "rate_limit_error"), "rate limited (429)"),
        (_error(500, "api_error"), "server error (500)"),
        (_error(529, "overloaded_error"), "the service is overloaded (529)"),
        (_raise(httpx2.ReadTimeout), "timed out"),
        (_raise(httpx2.ConnectError), "could not connect"),
    ],
    ids=["401", "429", "500", "529", "timeout", "connect"],
)
def test_llm_failures_fall_back_to_offline(preset, clean_env, caplog, handler, reason):
    caplog.set_level(logging.DEBUG)
    chunks = _collect(preset, api_key=KEY, http_client=_client(handler), max_retries=0)
    assert chunks and all(c.source == "offline" for c in chunks)
    assert chunks[0].notice == f"Offline tutorial: the LLM request failed ({reason})"
    assert "\n" not in chunks[0].notice
    assert all(c.notice is None for c in chunks[1:])
    assert "".join(c.text for c in chunks) == offline_tutorial(preset, note=45)
    _assert_no_key(chunks)
    assert KEY not in caplog.text


def test_no_key_falls_back_without_a_request(preset, clean_env):
    def handler(request):
        raise AssertionError("no request may be made without a key")

    chunks = _collect(preset, http_client=_client(handler))
    assert chunks[0].notice == "Offline tutorial: no ANTHROPIC_API_KEY configured"
    assert all(c.source == "offline" for c in chunks)
    assert "".join(c.text for c in chunks) == offline_tutorial(preset, note=45)


def test_rate_limit_is_retried_before_falling_back(preset, clean_env):
    calls = []

    def handler(request):
        calls.append(1)
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
        return httpx2.Response(429, json=body, headers={"retry-after-ms": "1"})

    chunks = _collect(preset, api_key=KEY, http_client=_client(handler), max_retries=2)
    assert len(calls) == 3
    assert chunks[0].notice == "Offline tutorial: the LLM request failed (rate limited (429))"
    _assert_no_key(chunks)


def test_stream_breaking_off_continues_offline(preset, clean_env):
    def handler(request):
        model = json.loads(request.content)["model"]
        return httpx2.Response(200, headers={"content-type": "text/event-stream"},
                               content=_answer(model, error_after=3))

    chunks = _collect(preset, api_key=KEY, http_client=_client(handler), max_retries=0)
    llm = [c for c in chunks if c.source == "llm"]
    assert [c.text for c in llm] == CANNED[:3]
    rest = chunks[len(llm):]
    assert rest[0].notice.startswith("The LLM stream broke off (the service is overloaded (529))")
    assert "".join(c.text for c in rest).strip() == offline_tutorial(preset, note=45).strip()
    _assert_no_key(chunks)


def test_value_text_reads_like_a_knob():
    assert tidy("0.000500 secs") == "0.0005 secs"
    assert tidy("-12.000000") == "-12"
    assert tidy("25.000000%") == "25%"
    assert tidy("12543.853516 Hz") == "12544 Hz"
    assert tidy("123.456789 ms") == "123.5 ms"
    assert tidy("0.000000 semitones") == "0 semitones"
    assert tidy("Seconds") == "Seconds" and tidy("Extracted") == "Extracted"
