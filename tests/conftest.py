# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: the real ParamSpace, a reused Renderer, the human presets."""

from __future__ import annotations

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
def human_preset_dir() -> Path:
    """The in-repo copy of the human presets (tests/data/human-presets, CC BY 4.0)."""
    assert HUMAN_PRESETS.is_dir(), f"the human presets are missing from {HUMAN_PRESETS}"
    return HUMAN_PRESETS


@pytest.fixture(scope="session")
def human_presets(human_preset_dir) -> list[Path]:
    paths = human_preset_paths()
    assert len(paths) == 32, f"expected the 32 human presets in {HUMAN_PRESETS}"
    return paths
