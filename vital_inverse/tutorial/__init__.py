# SPDX-License-Identifier: GPL-3.0-or-later
"""Tutorial: from a Preset to step-by-step instructions for Vital.

- ``report``: the Vital display report (``build_report``): each module that is
  on, with Vital's own names and value text; also the app's settings table.
- ``offline``: the offline writer (``offline_tutorial``), deterministic Markdown.
- ``llm``: the LLM client (``stream_tutorial``), Claude streamed, falling back
  to the offline writer on any failure.
"""

from .llm import API_KEY_ENV, DEFAULT_MODEL, MAX_TOKENS, MODEL_ENV, TutorialChunk, build_prompt, stream_tutorial
from .offline import TutorialError, character, describe_note, offline_tutorial, tutorial_from_report
from .report import (
    TABLE_COLUMNS,
    Item,
    Report,
    Section,
    build_report,
    parameter_table,
    report_text,
    table_rows,
    tidy_value_text,
)

__all__ = [
    "API_KEY_ENV", "DEFAULT_MODEL", "MAX_TOKENS", "MODEL_ENV", "TABLE_COLUMNS", "Item", "Report", "Section",
    "TutorialChunk", "TutorialError", "build_prompt", "build_report", "character", "describe_note",
    "offline_tutorial", "parameter_table", "report_text", "stream_tutorial", "table_rows", "tidy_value_text",
    "tutorial_from_report",
]
