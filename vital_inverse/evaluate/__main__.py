# SPDX-License-Identifier: GPL-3.0-or-later
"""``python -m vital_inverse.evaluate ...``: the same command as ``vital-inverse evaluate``."""

from .cli import main

raise SystemExit(main())
