# SPDX-License-Identifier: GPL-3.0-or-later
"""Vital Inverse: hear a synth sound, get the Vital preset that makes it.

Data flow, one module per step:
intake (clip -> Analysis) -> predict (Analysis -> candidate Presets) ->
synth (Preset -> audio) -> refine (CMA-ES over the ParamSpace) ->
preset (.vital export) -> tutorial (text).
"""

__version__ = "0.1.0"
