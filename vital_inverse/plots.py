# SPDX-License-Identifier: GPL-3.0-or-later
"""Pictures for the app: spectrograms to compare sounds by eye, and the data of
the refinement loss plot.

``spectrogram_figure`` returns a PIL image (drawn off-screen with Matplotlib's
Agg canvas, no pyplot, so it is safe in a web server's worker threads and
streams to ``gr.Image`` as one small PNG). ``loss_plot_data`` returns the
long-format pandas DataFrame a ``gr.LinePlot`` draws (x ``renders``, y
``loss``, colour ``series``); a few hundred rows re-sent on every generation
stream fine.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

import librosa
import numpy as np

from .constants import SAMPLE_RATE
from .features import mel_power

__all__ = [
    "LOSS_COLUMNS",
    "SERIES_BEST",
    "SERIES_GENERATION",
    "log_mel_db",
    "loss_plot_data",
    "mel_axis_hz",
    "mono_mel_power",
    "power_db",
    "spectrogram_figure",
]

N_FFT = 2048
HOP = 512
N_MELS = 128
FMAX = 16000.0
#: Dynamic range shown, below the loudest bin of the three spectrograms.
TOP_DB = 80.0

LOSS_COLUMNS = ("renders", "loss", "series")
SERIES_BEST = "best so far"
SERIES_GENERATION = "best of generation"


def _mono(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=0) if a.shape[0] <= 8 else a.mean(axis=1)
    return np.ascontiguousarray(a.reshape(-1))


def mono_mel_power(audio: np.ndarray, sr: int) -> np.ndarray:
    """Mel power (n_mels, frames) of the mono mix (`features.mel_power`: periodic Hann, centred frames)."""
    x = _mono(audio)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    return mel_power(x, N_FFT, HOP, N_MELS, sr, 20.0, min(FMAX, sr / 2))


def power_db(power: np.ndarray, ref: float) -> np.ndarray:
    """Power in dB re `ref`, floored at -TOP_DB."""
    return np.maximum(librosa.power_to_db(power, ref=max(ref, 1e-12), amin=1e-12, top_db=None), -TOP_DB)


def log_mel_db(audio: np.ndarray, sr: int = SAMPLE_RATE, ref: float | None = None) -> np.ndarray:
    """Log-mel power in dB re ``ref`` (default: the signal's own maximum), floored at -TOP_DB."""
    p = mono_mel_power(audio, sr)
    return power_db(p, float(p.max()) if ref is None else float(ref))


def spectrogram_figure(original: np.ndarray, predicted: np.ndarray | None, refined: np.ndarray | None = None,
                       sr: int = SAMPLE_RATE, titles: Sequence[str] = ("Original", "Predicted", "Refined")):
    """Three log-mel spectrograms side by side on one dB scale (0 dB = the loudest bin of the three).

    ``predicted``/``refined`` may be None: that panel says what to press.
    Returns a PIL RGB image.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    sounds = [original, predicted, refined]
    powers = [None if s is None else mono_mel_power(s, sr) for s in sounds]
    ref = max(float(p.max()) for p in powers if p is not None)
    ref = ref if ref > 0 else 1.0
    from matplotlib.ticker import MaxNLocator

    # Drawn at about the app's page width (1300 px) so text stays readable unscaled; fixed margins
    # (a layout engine doubles the drawing time), room at the top for a title above the panels.
    fig = Figure(figsize=(13, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3, sharey=True, gridspec_kw={"left": 0.06, "right": 0.93, "bottom": 0.13,
                                                         "top": 0.82, "wspace": 0.08})
    fig.suptitle("Log-mel spectrograms, one dB scale (brighter = louder)", fontsize=13, y=0.975)
    image = None
    mel_hz = mel_axis_hz(sr)
    empty = {1: "Press Analyze", 2: "Press Refine"}
    for i, (ax, p, title) in enumerate(zip(axes, powers, titles)):
        ax.set_title(title, fontsize=13)
        ax.set_xlabel("seconds", fontsize=11)
        ax.tick_params(labelsize=10)
        # no tick at a panel's right edge: it would collide with the next panel's "0"
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, prune="upper"))
        if p is None:
            ax.set_facecolor("#f2f2f2")
            ax.text(0.5, 0.5, empty.get(i, "—"), ha="center", va="center", transform=ax.transAxes, color="#777777")
            ax.set_xticks([])
            continue
        db = power_db(p, ref)
        seconds = db.shape[1] * HOP / sr
        image = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-TOP_DB, vmax=0.0,
                          extent=(0.0, seconds, 0, N_MELS), interpolation="nearest")
    ticks = [100, 300, 1000, 3000, 10000]
    axes[0].set_yticks([float(np.interp(t, mel_hz, np.arange(N_MELS))) for t in ticks])
    axes[0].set_yticklabels(["100", "300", "1k", "3k", "10k"])
    axes[0].set_ylabel("Hz (mel scale)", fontsize=11)
    if image is not None:
        fig.colorbar(image, cax=fig.add_axes((0.945, 0.13, 0.012, 0.69)), label="dB")
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return Image.fromarray(rgba[..., :3].copy())


@functools.lru_cache(maxsize=4)
def mel_axis_hz(sr: int) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of ``mono_mel_power``, (N_MELS,)."""
    return librosa.mel_frequencies(n_mels=N_MELS, fmin=20.0, fmax=min(FMAX, sr / 2))


def _point(p) -> tuple[float, float, float | None]:
    if hasattr(p, "renders"):
        return float(p.renders), float(p.best_loss), getattr(p, "generation_loss", None)
    renders, best, *rest = p
    return float(renders), float(best), (float(rest[0]) if rest and rest[0] is not None else None)


def loss_plot_data(history: Iterable) -> pandas.DataFrame:  # noqa: F821
    """Long-format DataFrame for ``gr.LinePlot(x="renders", y="loss", color="series")``.

    ``history``: (renders, best_loss[, generation_loss]) tuples or objects with
    those attributes, in order. Two series: the best loss so far (what the
    refined player plays) and each generation's best single render (noisier:
    it is one lucky draw, not re-scored). Non-finite losses are dropped.
    """
    import pandas as pd

    rows = []
    for p in history:
        renders, best, gen = _point(p)
        if np.isfinite(best):
            rows.append((renders, best, SERIES_BEST))
        if gen is not None and np.isfinite(gen):
            rows.append((renders, gen, SERIES_GENERATION))
    return pd.DataFrame(rows, columns=list(LOSS_COLUMNS))
