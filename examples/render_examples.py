# SPDX-License-Identifier: GPL-3.0-or-later
"""Re-create the example clips in this folder from instatetragrammaton's presets (CC BY 4.0).

    python examples/render_examples.py [PRESET_FOLDER]

Each clip is one note rendered with Vita (velocity 0.8, 2.5 s), peak-normalised
to -1 dBFS, trailing silence trimmed, written as 44.1 kHz 16-bit stereo WAV.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from vital_inverse.preset import load_vital
from vital_inverse.synth import Renderer

HERE = Path(__file__).resolve().parent
DEFAULT_PRESETS = HERE.parent.parent / "shared" / "data" / "human-presets"
SECONDS = 2.5

#: clip file stem -> (preset file stem, MIDI note played, seconds the key is held)
CLIPS = {
    "pad-lexapro": ("LexaproPad", 60, 1.8),
    "bass-nier": ("NierBassLayerOne", 48, 1.5),
    "lead-umbra": ("UmbraLead", 69, 1.8),
    "keys-vibraphone": ("PS-20-Vibraphone", 64, 1.2),
    "strings-ps20": ("PS-20-Strings", 55, 1.8),
}


def main(argv: list[str]) -> int:
    presets = Path(argv[0]) if argv else DEFAULT_PRESETS
    renderer = Renderer()
    for stem, (preset, note, held) in CLIPS.items():
        audio = renderer.render(load_vital(presets / f"{preset}.vital"), note, 0.8, held, SECONDS)
        peak = float(np.max(np.abs(audio)))
        audio = audio * (10 ** (-1 / 20) / peak) if peak > 0 else audio
        # drop trailing silence (below -70 dB of the peak), keeping 50 ms: smaller files
        loud = np.nonzero(np.max(np.abs(audio), axis=0) > 10 ** (-71 / 20))[0]
        audio = audio[:, : min(audio.shape[1], int(loud[-1]) + 1 + int(0.05 * 44100))]
        sf.write(HERE / f"{stem}.wav", audio.T, 44100, subtype="PCM_16")
        print(f"{stem}.wav  <- {preset}.vital at MIDI note {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
