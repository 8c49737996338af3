# SPDX-License-Identifier: GPL-3.0-or-later
"""The LLM tutorial client: the tutorial written by Claude through the Anthropic API, streamed.

The prompt holds only the readable display report and the detected note (never
the preset's name, a path or the key). Any API failure falls back to the offline
writer with a one-line, key-free notice.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ..preset import Preset
from .offline import TutorialError, check_note, describe_note, tutorial_from_report
from .report import Report, build_report, report_text

log = logging.getLogger(__name__)

MODEL_ENV = "VITAL_INVERSE_LLM_MODEL"
API_KEY_ENV = "ANTHROPIC_API_KEY"
# The newest Sonnet-class model named in the installed SDK's ``Model`` literal
# (anthropic 2.12), and the one the SDK's own examples use.
DEFAULT_MODEL = "claude-sonnet-5-5"
MAX_TOKENS = 4096


@dataclass(frozen=True)
class TutorialChunk:
    """A piece of the streamed tutorial; the first chunk's notice says which writer is used."""

    text: str
    source: Literal["llm", "offline"]
    notice: str | None = None


_SYSTEM_PROMPT = """\
You teach sound design with the Vital synthesizer. You receive a report of a Vital preset: each \
module that is switched on, with every setting as Vital's own interface shows it, marked "as in Init" \
when Vital's Init preset already has that value, plus how-to notes. Write a tutorial in Markdown that \
teaches a musician to rebuild this sound by hand:

1. One line on the sound's character (bass, pad, pluck, lead, keys, noise/FX...), judged from the \
settings and the detected note.
2. Numbered steps starting from Vital's Init preset (menu button next to the preset name -> \
Initialize Preset), in this order: oscillators and wavetables, sample, filters, envelopes, LFOs, \
modulation, effects. Include only settings that differ from Init, quote each value exactly as written \
in the report, and say briefly why each step matters for the sound. Use the how-to notes for \
wavetables and modulation.
3. Two or three variations to try.

Mention no module or setting that is not in the report and invent no values."""


def build_prompt(report: Report, note: int | None, pitched: bool = True) -> str:
    """The user message: the readable report and the detected note, nothing else."""
    note = check_note(note)
    if not pitched:
        detected = "Detected note: none (the clip is unpitched)."
    elif note is None:
        detected = "Detected note: unknown."
    else:
        detected = f"Detected note: {describe_note(note)}."
    return f"{detected}\n\nReport of the preset (Vital's own names and values):\n\n{report_text(report)}"


def _offline_chunks(report: Report, note: int | None, pitched: bool, notice: str | None) -> Iterator[TutorialChunk]:
    text = tutorial_from_report(report, note, pitched)
    blocks = re.split(r"(?<=\n\n)", text)
    for i, block in enumerate(b for b in blocks if b):
        yield TutorialChunk(block, "offline", notice if i == 0 else None)


_ERROR_STATUS = {  # Anthropic error types, by the HTTP status they stand for
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


def _failure_reason(exc: BaseException, model: str) -> str:
    """A fixed, key-free phrase for an API failure (never the exception's own message)."""
    import anthropic

    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    if kind in _ERROR_STATUS and (status is None or status < 400):  # an error event inside a 200 stream
        status = _ERROR_STATUS[kind]
    if isinstance(exc, anthropic.APITimeoutError):
        return "timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return "could not connect"
    if status == 401:
        return "the API key was rejected (401)"
    if status == 403:
        return "permission denied (403)"
    if status == 404:
        return f"model {model} not found (404)"
    if status == 429:
        return "rate limited (429)"
    if status == 529:
        return "the service is overloaded (529)"
    if isinstance(status, int) and status >= 500:
        return f"server error ({status})"
    if isinstance(status, int):
        return f"HTTP error {status}"
    return "unexpected response"


def stream_tutorial(
    preset: Preset,
    note: int | None = None,
    pitched: bool = True,
    *,
    api_key: str | None = None,
    model: str | None = None,
    http_client=None,
    timeout: float = 30.0,
    max_retries: int = 2,
) -> Iterator[TutorialChunk]:
    """Stream a tutorial written by Claude; fall back to the offline tutorial on any API failure.

    ``api_key`` defaults to ``$ANTHROPIC_API_KEY``, ``model`` to
    ``$VITAL_INVERSE_LLM_MODEL`` or ``DEFAULT_MODEL``. ``http_client`` is an
    ``httpx2.Client`` (the HTTP library of the anthropic 2.x SDK). The first
    chunk carries a notice naming the writer; if the stream breaks off after
    some text, the offline tutorial follows with a notice of its own. The
    key never appears in yielded text, notices or logs.
    """
    note = check_note(note)
    report = build_report(preset)
    model = model or os.environ.get(MODEL_ENV, "").strip() or DEFAULT_MODEL
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    key = (key or "").strip()
    if not key:
        yield from _offline_chunks(report, note, pitched, f"Offline tutorial: no {API_KEY_ENV} configured")
        return

    import anthropic
    import httpx2

    yielded = False
    client = None
    try:
        client = anthropic.Anthropic(api_key=key, http_client=http_client, timeout=timeout, max_retries=max_retries)
        with client.messages.stream(
            model=model,
            max_tokens=MAX_TOKENS,
            system=_SYSTEM_PROMPT,
            messages=[{"role": "user", "content": build_prompt(report, note, pitched)}],
        ) as stream:
            for text in stream.text_stream:
                if not text:
                    continue
                yield TutorialChunk(text, "llm", None if yielded else f"Written by Claude (model {model})")
                yielded = True
    except (anthropic.AnthropicError, httpx2.HTTPError) as e:
        reason = _failure_reason(e, model)
        log.info("tutorial: LLM request failed (%s); using the offline tutorial", reason)
        if yielded:
            yield TutorialChunk("\n\n", "offline",
                                f"The LLM stream broke off ({reason}); the offline tutorial follows")
            yield from _offline_chunks(report, note, pitched, None)
        else:
            yield from _offline_chunks(report, note, pitched, f"Offline tutorial: the LLM request failed ({reason})")
        return
    except Exception as e:
        if key in str(e) or any(key in str(a) for a in getattr(e, "args", ())):
            raise TutorialError("the LLM request failed unexpectedly (details withheld: they held the API key)") from None
        raise
    finally:
        if client is not None and http_client is None:  # a caller's http_client stays open for the caller
            client.close()
    if not yielded:
        yield from _offline_chunks(report, note, pitched, "Offline tutorial: the LLM returned no text")
