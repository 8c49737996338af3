# SPDX-License-Identifier: GPL-3.0-or-later
"""Re-create the acoustic-instrument notes in examples/recordings/ with FluidSynth and the Fluid R3 GM
SoundFont (MIT licence; Debian: ``apt-get install fluidsynth fluid-soundfont-gm``).

    python examples/render_recordings.py [SOUNDFONT]

Each clip is one note of a sampled instrument (recordings of real
instruments, not a synth), played at velocity 100 for HOLD seconds, rendered
at 44.1 kHz with FluidSynth's reverb and chorus off, cut to SECONDS,
peak-normalised to -1 dBFS and written as 16-bit stereo WAV.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
OUT = HERE / "recordings"
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SECONDS = 2.5
PEAK = 10 ** (-1 / 20)

#: clip stem -> (General MIDI program, 0-based; MIDI note; seconds held)
CLIPS = {
    "guitar-nylon": (24, 52, 1.5),  # plucked string
    "organ-church": (19, 60, 1.8),  # sustained pipe organ
    "epiano-rhodes": (4, 57, 1.5),  # electric piano
    "clarinet": (71, 67, 1.8),  # wind
    "cello": (42, 48, 1.8),  # bowed string
}


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def midi_file(program: int, note: int, hold: float, velocity: int = 100) -> bytes:
    """A one-track standard MIDI file: program change, one note held ``hold`` seconds (120 bpm, 480 ticks)."""
    ticks = round(hold * 960)  # 480 ticks per beat at 0.5 s per beat
    track = (
        _vlq(0) + bytes([0xC0, program])
        + _vlq(0) + bytes([0x90, note, velocity])
        + _vlq(ticks) + bytes([0x80, note, 0])
        + _vlq(0) + b"\xff\x2f\x00"
    )
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track


def render(soundfont: Path, program: int, note: int, hold: float) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        mid, wav = Path(tmp) / "note.mid", Path(tmp) / "note.wav"
        mid.write_bytes(midi_file(program, note, hold))
        subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "1.0", "-r", "44100",
                        "-F", str(wav), str(soundfont), str(mid)], check=True, capture_output=True)
        audio, sr = sf.read(wav, dtype="float32", always_2d=True)
    assert sr == 44100
    audio = audio[: round(SECONDS * sr)]
    return audio * (PEAK / max(float(np.abs(audio).max()), 1e-9))


def main(argv: list[str]) -> None:
    soundfont = Path(argv[0]) if argv else DEFAULT_SOUNDFONT
    if not soundfont.exists():
        sys.exit(f"{soundfont} not found: install Debian's fluid-soundfont-gm or pass a .sf2 path")
    OUT.mkdir(exist_ok=True)
    for stem, (program, note, hold) in CLIPS.items():
        sf.write(OUT / f"{stem}.wav", render(soundfont, program, note, hold), 44100, subtype="PCM_16")
        print(f"{stem}.wav: GM program {program + 1}, MIDI note {note}, held {hold} s")


if __name__ == "__main__":
    main(sys.argv[1:])
