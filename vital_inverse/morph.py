# SPDX-License-Identifier: GPL-3.0-or-later
"""Morphing: a row of presets that glides from preset A to preset B, each step rendered.

    path = morph(a, b, steps=7)               # Presets, t = 0, 1/6, ..., 1 (the ends are A and B)
    result = render_morph(path, note=60)      # audio per step + how smooth the path sounds
    write_morph(result, "out/")               # step_00.vital/.wav ... morph.json

How each setting travels (``interpolate``):
- continuous and stepped settings move linearly on Vital's own raw scale
  (ParamSpace ranges read from Vita; Vital's raw values are already skewed
  to be perceptual, e.g. cutoff in semitones); steps are rounded;
- a module on at one end and off at the other (an oscillator, the sample,
  an effect with a mix) stays on and fades its level or mix to zero, with
  the rest of its settings taken from the end where it plays, so it fades
  in or out instead of popping;
- other switches and choices (filter models, LFO shapes, ...) and whatever
  lies outside the ParamSpace switch at the midpoint;
- two different wavetables are crossfaded: each step plays a custom table
  whose keyframes blend A's frames into B's at the same positions, with
  Vital's own frequency-domain keyframe interpolation.

Smoothness (as preset-gen-vae / SPINVAE measure interpolations): spectral
features of every step's render (log centroid, roll-off and bandwidth,
flatness, RMS, MFCCs 1-12, averaged over the note; ``morph_features``);
then the feature distance between neighbours against the
distance between the ends. An even path has every step ``1/(N-1)`` of the
ends' distance (``max_step_ratio`` 1) and no detour (``path_ratio`` 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .constants import RENDER_VELOCITY, SAMPLE_RATE
from .errors import UserError
from .params import N_OSCILLATORS, ParamSpace, default_space
from .preset import Preset, with_custom_wavetable

__all__ = ["FADES", "MorphError", "MorphResult", "interpolate", "morph", "morph_features", "render_morph",
           "smoothness", "write_morph"]

#: module -> (its on/off switch, the level or mix that fades it in or out)
FADES: dict[str, tuple[str, str]] = {
    **{f"osc_{i}": (f"osc_{i}_on", f"osc_{i}_level") for i in range(1, N_OSCILLATORS + 1)},
    "sample": ("sample_on", "sample_level"),
    "chorus": ("chorus_on", "chorus_dry_wet"),
    "delay": ("delay_on", "delay_dry_wet"),
    "reverb": ("reverb_on", "reverb_dry_wet"),
    "phaser": ("phaser_on", "phaser_dry_wet"),
    "flanger": ("flanger_on", "flanger_dry_wet"),
    "distortion": ("distortion_on", "distortion_mix"),
    "compressor": ("compressor_on", "compressor_mix"),
}
MAX_STEPS = 33
MAX_BLEND_KEYFRAMES = 64


class MorphError(UserError):
    """A morph cannot be made with these inputs; the message says why."""


# --------------------------------------------------------------------------
# Interpolation
# --------------------------------------------------------------------------


def _on(space: ParamSpace, values, switch: str) -> bool:
    return space[switch].index_of(values[switch]) != 0


def _module_of(space: ParamSpace) -> dict[str, str]:
    return {p.name: group for group, ps in space.groups().items() for p in ps}


def interpolate(a: Preset, b: Preset, t: float, space: ParamSpace | None = None) -> Preset:
    """The preset a fraction ``t`` (0 = A, 1 = B) of the way from A to B (see the module docstring)."""
    space = space or default_space()
    t = float(t)
    if not 0.0 <= t <= 1.0:
        raise MorphError(f"t must be between 0 and 1, got {t}")
    if t == 0.0:
        return a
    if t == 1.0:
        return b
    near = a if t < 0.5 else b
    va, vb = a.values, b.values
    module = _module_of(space)
    # a module playing at only one end: all its settings from that end, its level fading
    one_sided: dict[str, Preset] = {}
    for group, (switch, _) in FADES.items():
        if switch in space and _on(space, va, switch) != _on(space, vb, switch):
            one_sided[group] = a if _on(space, va, switch) else b
    out: dict[str, float] = {}
    for p in space.params:
        side = one_sided.get(module.get(p.name, ""))
        if side is not None:
            out[p.name] = float(side.values[p.name])
        elif p.kind == "categorical":
            out[p.name] = float(near.values[p.name])
        else:
            x = (1.0 - t) * float(va[p.name]) + t * float(vb[p.name])
            out[p.name] = float(round(x)) if p.kind == "ordinal" else float(np.clip(x, p.min, p.max))
    for group, side in one_sided.items():
        switch, level = FADES[group]
        weight = (1.0 - t) if side is a else t
        out[switch] = float(side.values[switch])
        out[level] = float(side.values[level]) * weight
    preset = near.with_values(out).with_meta(name=f"{a.name} > {b.name} {round(100 * t)}%", comments=(
        f"Morph by Vital Inverse: {round(100 * t)}% of the way from '{a.name}' to '{b.name}'."))
    return _blend_wavetables(preset, a, b, t, space, skip={int(g[4]) for g in one_sided if g.startswith("osc_")})


def _table(preset: Preset, osc: int):
    """The Wavetable oscillator ``osc`` plays, or None when it cannot be read as keyframes."""
    from .wavetables import Wavetable, WavetableError, bank_wavetable

    try:
        if osc in preset.custom_wavetables:
            return Wavetable.from_vital(dict(preset.custom_wavetables[osc]))
        if not preset.has_bank_wavetable(osc):
            return Wavetable.from_vital(preset.base["settings"]["wavetables"][osc - 1])
        return bank_wavetable(preset.option(f"osc_{osc}_wavetable"))
    except (WavetableError, KeyError, IndexError, TypeError):
        return None


def _blend_wavetables(preset: Preset, a: Preset, b: Preset, t: float, space: ParamSpace, skip: set[int]) -> Preset:
    """Oscillators whose tables differ play a table whose keyframes blend A's into B's by ``t``."""
    from .wavetables import Wavetable, frequency_interpolate

    for osc in range(1, N_OSCILLATORS + 1):
        if osc in skip or not (_on(space, a.values, f"osc_{osc}_on") and _on(space, b.values, f"osc_{osc}_on")):
            continue
        ta, tb = _table(a, osc), _table(b, osc)
        if ta is None or tb is None:
            continue  # a table we cannot read: it switches at the midpoint with the rest
        if ta.fingerprint() == tb.fingerprint():
            continue
        positions = sorted(set(ta.keyframe_positions()) | set(tb.keyframe_positions()))
        if len(positions) > MAX_BLEND_KEYFRAMES:
            positions = sorted({round(float(x)) for x in np.linspace(0, 256, MAX_BLEND_KEYFRAMES)})
        frames = np.stack([frequency_interpolate(ta.frame_at(p), tb.frame_at(p), t) for p in positions])
        peak = float(np.max(np.abs(frames))) or 1.0
        table = Wavetable(f"{ta.name} > {tb.name} {round(100 * t)}%", (frames / max(peak, 1.0)).astype(np.float32),
                          tuple(int(p) for p in positions))
        preset = with_custom_wavetable(preset, osc, table)
    return preset


def morph(a: Preset, b: Preset, steps: int = 7, space: ParamSpace | None = None) -> list[Preset]:
    """``steps`` presets from A to B at evenly spaced t (the first is A, the last B)."""
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or not 2 <= int(steps) <= MAX_STEPS:
        raise MorphError(f"the number of steps must be a whole number from 2 to {MAX_STEPS}, got {steps!r}")
    space = space or default_space()
    for p in (a, b):
        p.check_space(space)
    return [interpolate(a, b, float(t), space) for t in np.linspace(0.0, 1.0, int(steps))]


# --------------------------------------------------------------------------
# Rendering and smoothness
# --------------------------------------------------------------------------


def morph_features(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Spectral features of one render (17,), averaged over the frames that sound (within 60 dB of
    the loudest): log centroid, log roll-off, log bandwidth (natural log of Hz: 0.1 is about 10%),
    then flatness, RMS and MFCCs 1-12 in dB/10 (MFCC 0, the level, is the RMS already). One unit
    per feature, so a feature that barely moves weighs little."""
    import librosa

    x = np.asarray(audio, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    n_fft, hop = 2048, 1024
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    s = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop))
    rms = librosa.feature.rms(S=s, frame_length=n_fft)[0]
    db = 20 * np.log10(np.maximum(rms, 1e-9))
    keep = db > db.max() - 60.0
    feats = [
        np.log(np.maximum(librosa.feature.spectral_centroid(S=s, sr=sr)[0], 1.0)),
        np.log(np.maximum(librosa.feature.spectral_rolloff(S=s, sr=sr)[0], 1.0)),
        np.log(np.maximum(librosa.feature.spectral_bandwidth(S=s, sr=sr)[0], 1.0)),
        2 * np.log10(np.maximum(librosa.feature.spectral_flatness(S=s)[0], 1e-9)),
        db / 10.0,
    ]
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=s ** 2, sr=sr)), n_mfcc=13)
    rows = [f[keep].mean() for f in feats] + [m[keep].mean() / 10.0 for m in mfcc[1:]]
    return np.asarray(rows, dtype=np.float64)


def feature_distances(features: np.ndarray) -> np.ndarray:
    """(N, N) Euclidean distances between the steps' feature vectors (``morph_features`` units)."""
    f = np.asarray(features, dtype=np.float64)
    return np.sqrt(((f[:, None, :] - f[None, :, :]) ** 2).sum(axis=-1))


def smoothness(features: np.ndarray) -> dict[str, float | list[float]]:
    """How evenly the path moves: neighbour distances against the ends' distance (see the module docstring).

    ``steps``: each neighbour distance as a fraction of the ends' distance;
    ``max_step_ratio``: the largest step against an even step (1 = even);
    ``path_ratio``: the path's length against the ends' distance (1 = no detour);
    ``from_a``: each step's distance from A as a fraction of the ends' distance."""
    d = feature_distances(features)
    n = len(d)
    ends = float(d[0, -1])
    if n < 2 or ends <= 0:
        return {"ends": ends, "steps": [], "max_step_ratio": math.nan, "path_ratio": math.nan, "from_a": []}
    neighbours = np.array([d[i, i + 1] for i in range(n - 1)])
    return {
        "ends": ends,
        "steps": (neighbours / ends).round(4).tolist(),
        "max_step_ratio": float(neighbours.max() / (ends / (n - 1))),
        "path_ratio": float(neighbours.sum() / ends),
        "from_a": (d[0] / ends).round(4).tolist(),
        "to_b": (d[-1] / ends).round(4).tolist(),
    }


@dataclass
class MorphResult:
    """The presets of a morph, their renders (float32 (2, n) at 44.1 kHz) and the path's smoothness."""

    presets: list[Preset]
    audio: list[np.ndarray] = field(repr=False)
    note: int
    smooth: dict
    features: np.ndarray = field(repr=False)

    def summary(self) -> str:
        """One line a musician can read."""
        s = self.smooth
        if not s["steps"]:
            return "A and B sound the same: nothing to morph."
        return (f"{len(self.presets)} steps. Largest step {s['max_step_ratio']:.1f}x an even step; the path is "
                f"{s['path_ratio']:.2f}x as long as a straight line from A to B (1.0 = perfectly even).")


def render_morph(presets: Sequence[Preset], note: int = 60, note_seconds: float = 1.0, render_seconds: float = 1.5,
                 renderer=None) -> MorphResult:
    """Render every step and measure the path's smoothness. ``renderer``: a ``synth.Renderer`` (one Synth,
    settled after each load; the default makes one) or a ``ParallelRenderer`` (the steps in parallel)."""
    from .synth import Renderer

    renderer = renderer or Renderer()
    if hasattr(renderer, "render_many"):
        audio = list(renderer.render_many(list(presets), int(note), RENDER_VELOCITY, float(note_seconds), float(render_seconds)))
    else:
        audio = [renderer.render(p, int(note), RENDER_VELOCITY, float(note_seconds), float(render_seconds)) for p in presets]
    features = np.stack([morph_features(x) for x in audio])
    return MorphResult(list(presets), audio, int(note), smoothness(features), features)


def write_morph(result: MorphResult, folder: str | Path) -> list[Path]:
    """``step_NN.vital`` and ``step_NN.wav`` per step and ``morph.json`` (smoothness) in ``folder``."""
    import soundfile as sf

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MorphError(f"{folder} is a file, not a folder: choose a folder for the morph")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (p, x) in enumerate(zip(result.presets, result.audio)):
        written.append(p.save(folder / f"step_{i:02d}.vital"))
        sf.write(folder / f"step_{i:02d}.wav", np.asarray(x, dtype=np.float32).T, SAMPLE_RATE, subtype="PCM_16")
    info = {"steps": len(result.presets), "note": result.note, "smoothness": result.smooth,
            "summary": result.summary(), "presets": [p.name for p in result.presets]}
    (folder / "morph.json").write_text(json.dumps(info, indent=1))
    return written
