# SPDX-License-Identifier: GPL-3.0-or-later
"""Where intake's pitch leaves the carrier: tones amplitude-modulated at 18-41 Hz (growl, croak, fast tremolo).

Synthetic sine and saw carriers at C2/C3/C4/C5, held 1.2 s, modulated in amplitude by a sine at 18, 28 or 41 Hz
(depth 0.5 or 1.0): 48 clips. A listener hears the carrier's note, rough; the signal's period is often a
subharmonic (the carrier and its sidebands as harmonics of a low common f0). Prints, for intake's detector
and for ``librosa.yin`` (30-2000 Hz, median of all frames), how many clips each reads within 50 cents of the
carrier, and every clip intake misses (its note; yin's f0). A known limit (BENCHMARKS.md section 7, session 5).

    python benchmarks/bench_pitch_modulated.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vital_inverse.intake import analyze  # noqa: E402

SR = 44100
SECONDS = 1.2
CARRIERS = (65.41, 130.81, 261.63, 523.25)
RATES = (18.0, 28.0, 41.0)
DEPTHS = (0.5, 1.0)


def modulated(f: float, rate: float, depth: float, kind: str) -> np.ndarray:
    """A sine or band-limited saw at ``f`` Hz times (1 + depth sin(2 pi rate t)) / 2, 5 ms attack, 50 ms release."""
    t = np.arange(int(SECONDS * SR)) / SR
    ks = [1] if kind == "sine" else [k for k in range(1, 40) if f * k < 16000]
    carrier = sum(np.sin(2 * np.pi * f * k * t) / k for k in ks)
    x = carrier * (1 + depth * np.sin(2 * np.pi * rate * t)) / 2
    return x * np.minimum(1, t / 0.005) * np.clip((SECONDS - t) / 0.05, 0, 1)


def main() -> None:
    import librosa

    rows, ok_intake, ok_yin = [], 0, 0
    for f in CARRIERS:
        for rate in RATES:
            for depth in DEPTHS:
                for kind in ("sine", "saw"):
                    x = modulated(f, rate, depth, kind)
                    a = analyze(x, SR)
                    yin = float(np.median(librosa.yin(x, fmin=30, fmax=2000, sr=SR, frame_length=4096, hop_length=512)))
                    hit = bool(a.f0_hz) and not a.chord and abs(1200 * np.log2(a.f0_hz / f)) < 50
                    ok_intake += hit
                    ok_yin += abs(1200 * np.log2(yin / f)) < 50
                    if not hit:
                        rows.append(f"| {kind} | {f:.2f} | {rate:.0f} | {depth} | {a.note_name()} | {yin:.1f} |")
    n = len(CARRIERS) * len(RATES) * len(DEPTHS) * 2
    print(f"within 50 cents of the carrier: intake {ok_intake}/{n}, librosa.yin {ok_yin}/{n}\n")
    print("| carrier | Hz | AM rate Hz | depth | intake | yin Hz |\n|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
