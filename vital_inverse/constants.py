# SPDX-License-Identifier: GPL-3.0-or-later
"""Constants every step shares: the rate audio is analysed and rendered at, the velocity
every render plays, and the peak below which a render is silence.

Defined once here so intake, rendering, scoring, metrics and features cannot disagree.
"""

#: Hz. Vita renders at this rate; intake resamples every clip to it; metrics and features assume it.
SAMPLE_RATE = 44100
#: Key velocity (0-1) of every render: dataset, candidates, refinement, evaluation.
RENDER_VELOCITY = 0.8
#: A render whose absolute peak is below this (-80 dBFS) is silent (a failed candidate, a muted preset).
SILENT_RENDER_PEAK = 1e-4
