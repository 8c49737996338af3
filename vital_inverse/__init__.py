# SPDX-License-Identifier: GPL-3.0-or-later
"""Vital Inverse: predict a Vital synth preset from a clip of one synth note."""
