# SPDX-License-Identifier: GPL-3.0-or-later
"""The terminal progress bar of the long offline commands (generate, importance, evaluate)."""

from __future__ import annotations

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, *, unit: str, enabled: bool = True, smoothing: float = 0.3):
    """A tqdm bar over ``total`` units (``update(n)``, ``close()``); a silent one when not ``enabled``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, smoothing=smoothing, dynamic_ncols=True)
