# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: the real ParamSpace, a reused Renderer, the human presets, and (once per session,
since each costs seconds) one pool of two render workers and one loaded shipped checkpoint."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A copy of the 32 human presets (CC BY 4.0, see ATTRIBUTION.md there) so that a fresh clone tests alone.
HUMAN_PRESETS = ROOT / "tests" / "data" / "human-presets"


def free_port() -> int:
    """A free TCP port on the loopback interface, for a test server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def human_preset_paths() -> list[Path]:
    return sorted(HUMAN_PRESETS.glob("*.vital"))


@pytest.fixture(scope="session")
def space():
    from vital_inverse.params import default_space

    return default_space()


@pytest.fixture(scope="session")
def renderer():
    from vital_inverse.synth import Renderer

    return Renderer()


@pytest.fixture(scope="session")
def render_pool():
    """One ParallelRenderer (two warmed workers) for every test that needs one. Tests must leave it
    working (a test that breaks or closes a pool makes its own)."""
    from vital_inverse.synth import ParallelRenderer

    with ParallelRenderer(workers=2) as pr:
        pr.warm()
        yield pr


@pytest.fixture(scope="session")
def shipped_predictor():
    """The shipped checkpoint (or $VITAL_INVERSE_CHECKPOINT), loaded once."""
    from vital_inverse.checkpoint import CONFIG, DEFAULT_DIR
    from vital_inverse.predict import PresetPredictor

    if not ((DEFAULT_DIR / CONFIG).exists() or os.environ.get("VITAL_INVERSE_CHECKPOINT")):
        pytest.fail(f"no checkpoint at {DEFAULT_DIR}: the shipped default checkpoint is missing")
    return PresetPredictor.load()


@pytest.fixture(scope="session")
def human_preset_dir() -> Path:
    """The in-repo copy of the human presets (tests/data/human-presets, CC BY 4.0)."""
    assert HUMAN_PRESETS.is_dir(), f"the human presets are missing from {HUMAN_PRESETS}"
    return HUMAN_PRESETS


@pytest.fixture(scope="session")
def human_presets(human_preset_dir) -> list[Path]:
    paths = human_preset_paths()
    assert len(paths) == 32, f"expected the 32 human presets in {HUMAN_PRESETS}"
    return paths
