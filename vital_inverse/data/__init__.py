# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline dataset tools: preset sampling, sharded storage, generation, importance weights."""
