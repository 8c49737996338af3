# SPDX-License-Identifier: GPL-3.0-or-later
"""Pitch of one note: the YIN tracker, chords, and drums that only look pitched.

`detect_pitch(mono, sr) -> (f0 Hz | None, confidence 0-1)`: YIN's cumulative-mean-normalised
difference (`yin_cmndf`, shared with the f0 metric) on up to 24 frames of 40 ms, two period
picks per frame, a vote across frames and an octave check on the mean spectrum; range
20 Hz - 5 kHz (every fundamental of MIDI 16-111). Pure NumPy: no JIT to warm.
`detect_chord` tells one note from several sounding as one period; `_is_drum_hit` unpitches a
short hit that drops into its pitch (kicks, toms). Accuracy: BENCHMARKS.md, "Audio intake" and
"Bad input and the edges of pitch".
"""

from __future__ import annotations

import math

import numpy as np

from ..constants import SAMPLE_RATE

#: Pitch search range: every fundamental a Vital note of MIDI 16-111 has (20 Hz .. 5 kHz),
#: covering the piano's A0-C8 (MIDI 21-108) with room for detune.
FMIN = 20.0
FMAX = 5000.0
#: Above this a period is under ~30 samples at 44.1 kHz: YIN's dips at whole-sample lags
#: get shallow, so a multiple of the period can win; the spectrum then decides (see
#: `_octave_up_from_spectrum`).
SHORT_PERIOD_HZ = 1500.0
#: Chords (`detect_chord`): spectral peaks count as partials when they stand this far
#: above the spectrum around them, and within CHORD_FLOOR_DB of the loudest; the notes
#: are found among the partials within CHORD_STRONG_DB of the loudest; at most this many.
CHORD_PEAK_DB = 15.0
CHORD_FLOOR_DB = 50.0
CHORD_STRONG_DB = 30.0
CHORD_MAX_NOTES = 6
#: ... and one note (not a chord) when its harmonics from the lowest heard up to 4x it are
#: at least this complete.
CHORD_GAPLESS = 0.9
#: Drums (`_is_drum_hit`): a sound held within 12 dB of its peak this long keeps its
#: pitch; a shorter one is unpitched if it glides into its pitch from this far above.
DRUM_HELD_SECONDS = 0.4
DRUM_GLIDE_SEMITONES = 1.5
#: ... measured only when the onset has a clear period (YIN d' at most this; a gliding
#: kick's onset has ~0.16).
GLIDE_MAX_DIP = 0.35
#: A note whose key is released sooner than this after the onset (a hit, a sound that decays at once) has no
#: held part: its pitch is taken over its loud part (within 25 dB of the peak) rather than up to the release,
#: as a listener hears the whole hit (a hit's pitch can drift as it decays: BENCHMARKS.md section 7, session 5).
HIT_SECONDS = 0.15
#: `confidence` at or above this -> pitched.
PITCHED_CONFIDENCE = 0.5
#: YIN "first" period: the shortest lag whose d' dip is within this of the deepest dip.
DIP_TOLERANCE = 0.1
#: YIN "exact" period: the shortest lag whose dip is within this of the deepest dip.
EXACT_TOLERANCE = 0.02
#: Harmonic check: the lower ("exact") pitch, 2-4x below the higher ("first") one, wins
#: when its extra partials hold at least this fraction of the energy of the higher
#: one's partials (-23 dB): audible partials between them put the pitch at the period.
SUBHARMONIC_RATIO = 0.005
MAX_SUBHARMONIC = 4


def midi_name(note: int) -> str:
    """'C4' for MIDI 60, 'C#4' for 61 (ASCII sharps). For display only, off `analyze`'s path."""
    import librosa

    return librosa.midi_to_note(int(note), unicode=False)


def nearest_note(f_hz: float) -> tuple[int, float]:
    """(MIDI note 0-127 nearest to `f_hz`, the offset from it in cents, -50..50).

    librosa.hz_to_midi's formula, written out: `analyze` is on the request path, and the
    first use of librosa in a process imports scipy.signal and numba (2-4 s here)."""
    m = 69.0 + 12.0 * math.log2(f_hz / 440.0)
    midi = int(np.clip(round(m), 0, 127))
    return midi, float(np.clip((m - midi) * 100.0, -50.0, 50.0))


def _fast_len(n: int) -> int:
    """Smallest 2^a * 3^b >= n (a fast FFT size for numpy's pocketfft). Not scipy.fft.next_fast_len:
    importing scipy.fft costs ~0.35 s, and intake is on the request path of a fresh process."""
    best = 1 << max(0, int(n - 1).bit_length())
    p3 = 1
    while p3 < best:
        p2 = p3
        while p2 < n:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best



def yin_cmndf(frames: np.ndarray, w: int, tau_max: int) -> np.ndarray:
    """YIN cumulative-mean-normalised difference d'(tau), tau = 0..tau_max, per frame.

    frames: (F, n) float64 with n >= w + tau_max; w: the integration window in samples.
    Difference function via FFT correlation: d(tau) = E(x[0:w]) + E(x[tau:tau+w]) - 2 sum
    x[j] x[j+tau]. Returns (F, tau_max + 1); d'(0) = 1, and 1 where d' is undefined (silence).
    One YIN for the package: `detect_pitch` and the f0 metric (`metrics.f0_error_cents`).
    """
    n = frames.shape[1]
    nfft = _fast_len(n + w)
    fx = np.fft.rfft(frames, nfft, axis=1)
    fw = np.fft.rfft(frames[:, :w], nfft, axis=1)
    r = np.fft.irfft(fx * np.conj(fw), nfft, axis=1)[:, : tau_max + 1]
    c = np.concatenate([np.zeros((frames.shape[0], 1)), np.cumsum(frames * frames, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    e_tau = c[:, taus + w] - c[:, taus]
    d = c[:, w : w + 1] + e_tau - 2.0 * r
    d = np.maximum(d, 0.0)
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1)
    out = np.ones_like(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 1:] = np.where(cum > 0, d[:, 1:] * taus[1:] / cum, 1.0)
    return out


def refine_dip(cm: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parabolic interpolation of d' (F, lags) around integer lags k (F,), one per frame:
    (fractional lags, d' at them), each (F,)."""
    k = np.clip(k, 1, cm.shape[1] - 2)
    rows = np.arange(cm.shape[0])
    a, b, c = cm[rows, k - 1], cm[rows, k], cm[rows, k + 1]
    den = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(den > 0, 0.5 * (a - c) / den, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    val = b - 0.25 * (a - c) * shift
    return k + shift, np.clip(val, 0.0, 1.0)


def _pick_periods(cm: np.ndarray, tau_min: int):
    """Two period choices per frame from d' over lags [tau_min, end):

    - "first": the shortest lag whose dip is within DIP_TOLERANCE of the deepest dip
      (a period and all its multiples dip; so does a pitch an octave or a twelfth
      above the period when it carries nearly all the energy);
    - "exact": the shortest lag within EXACT_TOLERANCE of the deepest dip (the exact
      period of a periodic signal even when most energy sits in a formant, a hard-sync
      peak or another partial periodicity).
    Returns (first_period, first_d, exact_period, exact_d), periods in samples."""
    seg = cm[:, tau_min - 1 :]  # one extra lag on the left for the local-minimum test
    inner = seg[:, 1:-1]
    is_min = (inner <= seg[:, :-2]) & (inner <= seg[:, 2:])
    depth = np.where(is_min, inner, np.inf)
    deepest = depth.min(axis=1, keepdims=True)
    none = ~np.isfinite(deepest[:, 0])
    k_first = np.argmax(depth <= deepest + DIP_TOLERANCE, axis=1)
    k_exact = np.argmax(depth <= deepest + EXACT_TOLERANCE, axis=1)
    if none.any():
        k_first[none] = k_exact[none] = np.argmin(inner[none], axis=1)
    p1, d1 = refine_dip(cm, k_first + tau_min)
    p2, d2 = refine_dip(cm, k_exact + tau_min)
    return p1, d1, p2, d2


def _cluster(logf: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """Group frame pitches (in semitones) within a semitone; the group with the largest
    summed weight wins. Returns (its weighted median in semitones, its summed weight)."""
    score = np.array([weight[np.abs(logf - lf) < 1.0].sum() for lf in logf])
    best = int(np.argmax(score))
    members = np.abs(logf - logf[best]) < 1.0
    vals, wts = logf[members], weight[members]
    order = np.argsort(vals)
    cdf = np.cumsum(wts[order])
    if cdf[-1] <= 0:
        return float(np.median(vals)), 0.0
    return float(vals[order][int(np.searchsorted(cdf, 0.5 * cdf[-1]))]), float(score[best])


def _series_energy(power: np.ndarray, bin_hz: float, f: float, half: float) -> float:
    """Power within +-`half` Hz of f, 2f, 3f ... up to 10 kHz."""
    top = min(10000.0, (len(power) - 1) * bin_hz)
    h = np.arange(f, top, f)
    if len(h) == 0:
        return 0.0
    cs = np.concatenate([[0.0], np.cumsum(power)])
    lo = np.clip(np.floor((h - half) / bin_hz).astype(np.int64), 0, len(power))
    hi = np.clip(np.ceil((h + half) / bin_hz).astype(np.int64) + 1, 0, len(power))
    return float((cs[hi] - cs[lo]).sum())


def _lower_pitch_needed(x: np.ndarray, sr: int, f_hi: float, f_lo: float) -> bool:
    """f_hi = m * f_lo (m integer >= 2): do the partials of f_lo that are not partials
    of f_hi hold >= SUBHARMONIC_RATIO of the energy of the partials of f_hi? Both series
    are measured with the same narrow bands (+-max(2 bins, f_lo/8)), so detune smear
    and noise count alike for both."""
    power, bin_hz = _mean_power_spectrum(x, sr)
    half = max(2.0 * bin_hz, f_lo / 8.0)
    e_hi = _series_energy(power, bin_hz, f_hi, half)
    e_all = _series_energy(power, bin_hz, f_lo, half)
    if e_hi <= 0:
        return True
    return (e_all - e_hi) >= SUBHARMONIC_RATIO * e_hi


def _octave_up_from_spectrum(x: np.ndarray, sr: int, f0: float) -> float:
    """A high f0's true pitch when YIN settled on a multiple of the period.

    For pitches above SHORT_PERIOD_HZ the period is a few samples: the dip at the true
    (fractional) lag is shallow and a 2-4x longer lag can win. If m * f0 (m = 4, 3, 2,
    highest first) stays within FMAX and the partials of f0 outside m * f0's series
    are inaudible (the same test as the octave check in `detect_pitch`), the pitch is m * f0."""
    for m in range(MAX_SUBHARMONIC, 1, -1):
        f_hi = m * f0
        if f_hi < SHORT_PERIOD_HZ or f_hi > FMAX * 1.03:
            continue
        if not _lower_pitch_needed(x, sr, f_hi, f0):
            return f_hi
    return f0


def _spectral_peaks(power: np.ndarray, bin_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Partials of a mean power spectrum: (frequencies in Hz, powers), ascending in frequency.

    A partial is a local maximum between FMIN and 10 kHz that stands CHORD_PEAK_DB above
    the median of the spectrum around it (+-1/3 octave, at least +-40 bins) and within CHORD_FLOOR_DB of the
    loudest partial. Maxima closer than a third of a semitone (unison voices, detune
    smear) are merged into the loudest. Frequencies by parabolic interpolation in dB."""
    lo = max(2, int(FMIN / bin_hz))
    hi = min(len(power) - 2, int(10000.0 / bin_hz))
    if hi <= lo:
        return np.zeros(0), np.zeros(0)
    db = 10.0 * np.log10(np.maximum(power, 1e-30))
    k = np.arange(lo, hi)
    is_max = (db[k] > db[k - 1]) & (db[k] >= db[k + 1])
    k = k[is_max & (db[k] >= db[lo:hi].max() - CHORD_FLOOR_DB)]
    if len(k) == 0:
        return np.zeros(0), np.zeros(0)
    keep = []
    for i in k:
        a, b = max(0, min(int(i / 1.26), i - 40)), min(len(db), max(int(i * 1.26), i + 40) + 1)
        if db[i] >= np.median(db[a:b]) + CHORD_PEAK_DB:
            keep.append(i)
    k = np.array(keep, dtype=np.int64)
    if len(k) == 0:
        return np.zeros(0), np.zeros(0)
    a, b, c = db[k - 1], db[k], db[k + 1]
    den = a - 2 * b + c
    shift = np.where(den < 0, 0.5 * (a - c) / np.where(den < 0, den, -1.0), 0.0)
    freqs, pw = (k + np.clip(shift, -0.5, 0.5)) * bin_hz, power[k]
    merged_f, merged_p = [freqs[0]], [pw[0]]
    for f, pv in zip(freqs[1:], pw[1:]):
        if f / merged_f[-1] < 2.0 ** (1.0 / 36.0):
            if pv > merged_p[-1]:
                merged_f[-1], merged_p[-1] = f, pv
        else:
            merged_f.append(f)
            merged_p.append(pv)
    return np.array(merged_f), np.array(merged_p)


def detect_chord(mono: np.ndarray, sample_rate: int, f0: float | None) -> tuple[float, ...]:
    """The notes of a clip that holds more than one, lowest first, in Hz; () for one note.

    Several notes sound together as one period (C-E-G = 4:5:6 repeats at C two octaves
    down), so YIN (`f0`, the common period) reports a low note that is not there. Here
    the partials of the mean spectrum (`_spectral_peaks`) decide:
    - one note when f0 itself is a partial (within 50 dB of the loudest);
    - else the partials within 30 dB of the loudest are explained greedily from the
      bottom: the lowest partial that is not a harmonic (within 3 %) of a note found so
      far starts a new note (one note, or more than CHORD_MAX_NOTES: not a chord);
    - one note when a "note" brings none of its own harmonics while other partials are
      there (a single note's uneven spectrum), or when the notes share no common period
      (`_common_period`; unison detune smears a note into peaks that share none);
    - still one note when the partials are harmonics d, d+1, d+2 ... of one pitch
      without gaps (`CHORD_GAPLESS`; a note whose fundamental is filtered away), where
      a chord leaves gaps: C-E-G holds harmonics 4, 5, 6, 8, 10, 12 of C two octaves
      down, not 7, 9, 11.
    An octave doubling cannot be told from timbre and counts as one note. Never raises."""
    if f0 is not None and not f0 > 0:
        return ()
    try:
        x = np.asarray(mono, dtype=np.float64).reshape(-1)
        sr = int(sample_rate)
        if x.size < 1024 or sr <= 0 or not np.isfinite(x).all() or not np.abs(x).max() > 0:
            return ()
        power, bin_hz = _mean_power_spectrum(x / np.abs(x).max(), sr)
    except (TypeError, ValueError, OverflowError):
        return ()
    freqs, pw = _spectral_peaks(power, bin_hz)
    if len(freqs) < 2 or (f0 is not None and np.any(np.abs(np.log2(freqs / f0)) < 0.04)):
        return ()  # no partials to speak of, or the period's own fundamental is heard: one note
    strong = freqs[pw >= pw.max() * 10.0 ** (-CHORD_STRONG_DB / 10.0)]
    notes: list[float] = []
    for f in strong:
        if any(abs(f / r - round(f / r)) < 0.03 * round(f / r) for r in notes if f / r > 0.97):
            continue
        notes.append(float(f))
        if len(notes) > CHORD_MAX_NOTES:
            return ()
    if len(notes) < (2 if f0 is not None else 3):
        return ()  # without a confident common period only three notes or more make a chord (a short low
        # pluck's smear can look like two)
    if len(strong) > len(notes):
        # Notes of rich tones each bring their own harmonics; "notes" that are lone partials
        # among many are a single note's uneven spectrum (random partial amplitudes, formants).
        for r in notes:
            k = strong / r
            if np.count_nonzero((k > 1.5) & (np.abs(k - np.round(k)) < 0.03 * np.round(k))) == 0:
                return ()
    if not _common_period(np.array(notes), f0):
        return ()  # not one common period: a detuned (unison) note's smear, not notes played together
    for d in range(2, CHORD_MAX_NOTES + 1):  # the lowest partial as harmonic d of one note
        k = strong / (notes[0] / d)
        kr = np.round(k)
        if np.all(np.abs(k - kr) <= 0.02 * k):
            weak = freqs / (notes[0] / d)  # gaps are counted over every partial (a decaying pluck's weak ones too)
            ks = {int(v) for v in np.round(weak[np.abs(weak - np.round(weak)) <= 0.02 * weak])}
            span = range(d, min(4 * d, int(kr.max())) + 1)
            if len(span) >= 3 and len(ks & set(span)) >= CHORD_GAPLESS * len(span):
                return ()  # harmonics d, d+1, d+2 ... all there: one note without its fundamental
    return tuple(notes) if len(notes) >= 2 else ()


def _common_period(notes: np.ndarray, f0: float | None) -> bool:
    """Do the notes sound together as one period, as notes of a chord do?

    With YIN's f0: every note a harmonic of f0 or of f0 / 2 (C-E-G's common period, C two
    octaves below C, can lie below FMIN) within 2 %. Without one (the period too weak or
    too long for YIN, e.g. a low triad of detuned voices): the notes are harmonics d, ...
    of notes[0] / d for some d <= 10 (a minor triad is 10:12:15) within 1 %."""
    if f0 is not None:
        periods, tol = (f0, f0 / 2), 0.02
    else:
        periods, tol = tuple(notes[0] / d for d in range(1, 11)), 0.01
    for p in periods:
        k = notes / p
        if np.all(np.abs(k - np.round(k)) <= tol * k):
            return True
    return False


def _mean_power_spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Mean Hann-windowed power spectrum over up to 6 frames of ~0.37 s."""
    n = 1 << round(math.log2(max(256, 0.37 * sr)))
    if len(x) < n:
        n = 1 << max(8, math.floor(math.log2(max(len(x), 256))))
        x = np.pad(x, (0, max(0, n - len(x))))
    count = min(6, max(1, (len(x) - n) // (n // 2) + 1))
    starts = np.linspace(0, len(x) - n, count).astype(np.int64)
    frames = x[starts[:, None] + np.arange(n)[None, :]] * np.hanning(n)[None, :]
    power = np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0)
    return power, sr / n


def detect_pitch(mono: np.ndarray, sample_rate: int, *, n_frames: int = 24) -> tuple[float | None, float]:
    """Pitch of one steady note: (f0_hz, confidence); f0 is None when unpitched.

    YIN (de Cheveigne & Kawahara 2002) on up to `n_frames` frames of 40 ms spread over
    the signal (lags for 27.5 Hz..4.2 kHz); frames 20 dB below the loudest are skipped.
    Per frame, two periods with their periodicity 1 - d': "first" (shortest lag whose
    d' dip is within 0.1 of the deepest) and "exact" (within 0.02). Frame pitches are
    grouped within a semitone; the group with the largest summed periodicity wins
    (weighted median). When "first" is above "exact" (octave/harmonic choice):
    - not an integer multiple of it: a formant or partial periodicity -> "exact";
    - 2-4x above: "exact" if its in-between partials hold >= -23 dB of the energy of
      "first"'s partials in the mean spectrum (hard sync, a formant at the 2nd or 3rd
      harmonic: the pitch stays the period), else "first" (only even harmonics, a lone
      high harmonic: the pitch really is higher);
    - 5x or more above: "first" (the long "period" is an aliasing or beating pattern).
    confidence = winning group's summed periodicity / frames used (0..1): low for
    noise (no deep dip) and for sounds whose period wanders (drums, sweeps).
    Never raises: bad input gives (None, 0.0).
    """
    try:
        x = np.asarray(mono, dtype=np.float64)
    except Exception:  # noqa: BLE001
        return None, 0.0
    if x.ndim > 1:
        x = x.reshape(-1, x.shape[-1]).mean(axis=0)
    if x.size == 0 or not np.isfinite(x).all():
        return None, 0.0
    try:
        sr = int(sample_rate)
    except (TypeError, ValueError, OverflowError):
        return None, 0.0
    if sr <= 0:
        return None, 0.0
    peak = np.max(np.abs(x))
    if peak <= 0:
        return None, 0.0
    x = x / peak
    tau_min = max(2, math.floor(sr / FMAX))
    tau_max = math.ceil(sr / FMIN)
    w = max(round(0.04 * sr), 2 * tau_min + 2, tau_max)  # integration window: >= 40 ms and >= the longest period
    if len(x) < w + tau_max + 1:
        # short signal: shrink the lag range (raises the lowest detectable pitch)
        tau_max = (len(x) - 1) // 2
        w = tau_max
        if tau_max < 2 * tau_min + 2:
            return None, 0.0
    n = w + tau_max + 1
    count = int(min(n_frames, max(1, (len(x) - n) // max(1, w // 4) + 1)))
    starts = np.linspace(0, len(x) - n, count).astype(np.int64)
    frames = x[starts[:, None] + np.arange(n)[None, :]]
    frames = frames - frames.mean(axis=1, keepdims=True)
    rms = np.sqrt(np.mean(frames[:, :w] ** 2, axis=1))
    if not rms.max() > 0:
        return None, 0.0
    frames = frames[rms > 0.1 * rms.max()]
    cm = yin_cmndf(frames, w, tau_max)
    p_first, d_first, p_exact, d_exact = _pick_periods(cm, tau_min)
    st_first, score_first = _cluster(12.0 * np.log2(sr / p_first), 1.0 - d_first)
    st_exact, score_exact = _cluster(12.0 * np.log2(sr / p_exact), 1.0 - d_exact)
    # Agreeing picks: either vote may be the steadier one (a frame whose "first" pick
    # jumps to an octave of a layered or detuned sound can still have its exact period).
    st, score = st_first, max(score_first, score_exact) if abs(st_first - st_exact) < 0.5 else score_first
    if st_first - st_exact >= 0.5:
        # "first" is above the exact period. Not a harmonic of it (a formant or partial
        # periodicity): take the period. 2-4x above: take the period if the partials in
        # between are audible (hard sync, formants). 5x or more above: keep "first" (the
        # long "period" is then an aliasing or beating pattern, not a pitch).
        ratio = 2.0 ** ((st_first - st_exact) / 12.0)
        m = round(ratio)
        f_hi, f_lo = 2.0 ** (st_first / 12.0), 2.0 ** (st_exact / 12.0)
        harmonic = abs(ratio / m - 1.0) < (0.03 if m <= MAX_SUBHARMONIC else 0.01)
        if not harmonic or (m <= MAX_SUBHARMONIC and _lower_pitch_needed(x, sr, f_hi, f_lo)):
            st, score = st_exact, score_exact
    f0 = float(2.0 ** (st / 12.0))
    f0 = _octave_up_from_spectrum(x, sr, f0)
    confidence = float(np.clip(score / len(frames), 0.0, 1.0))
    if confidence < PITCHED_CONFIDENCE or not FMIN <= f0 <= FMAX * 1.03:
        return None, confidence
    return f0, confidence


def _onset_glide(x: np.ndarray, sr: int, f0: float) -> float:
    """Semitones by which the note's first ~2 periods (from the onset) lie above f0.

    One YIN frame (window one period of f0, lags a quarter to 1.2 periods): the deepest
    dip is the period at the onset. A steady note gives ~0; a kick or tom that drops into
    its pitch gives several semitones."""
    period = sr / f0
    w = max(int(period), int(0.01 * sr))
    tau_lo, tau_hi = max(2, int(period / 4)), int(1.2 * period) + 1
    n = w + tau_hi + 1
    if len(x) < n:
        return 0.0
    cm = yin_cmndf(x[None, :n] - x[:n].mean(), w, tau_hi)[0]
    k = tau_lo + int(np.argmin(cm[tau_lo : tau_hi + 1]))
    if cm[k] > GLIDE_MAX_DIP:
        return 0.0  # no clear period at the onset (a click, a filter's transient): no evidence of a glide
    return 12.0 * math.log2(period / max(k, 1))


def _is_drum_hit(x: np.ndarray, e: np.ndarray, hop_s: float, f0: float, confidence: float) -> bool:
    """A percussive hit whose pitch is not held: unpitched although YIN found a period.

    Held = the level stays within 12 dB of its peak for DRUM_HELD_SECONDS (an 808 or a
    held synth note). A shorter sound is a drum when it drops into its pitch from more
    than DRUM_GLIDE_SEMITONES above (kicks, toms, a snare's body). Noise-like drums
    (snares, hats, claps) have no steady period and are unpitched by YIN already."""
    held = float(np.count_nonzero(e >= e.max() - 12.0)) * hop_s
    if held >= DRUM_HELD_SECONDS:
        return False
    return _onset_glide(x, SAMPLE_RATE, f0) > DRUM_GLIDE_SEMITONES


def note_pitch(note: np.ndarray, e: np.ndarray, note_seconds: float, hop: int) -> tuple[float | None, float, tuple[float, ...]]:
    """(f0 Hz or None when unpitched, confidence, chord notes in Hz or ()) of an analysed note.

    note: (2, n) at 44.1 kHz from the onset; e: its smoothed block envelope in dB, one value
    per `hop` samples; note_seconds: when the key was released. A chord is matched at its
    lowest note; a drum hit that only looks pitched gives None."""
    hop_s = hop / SAMPLE_RATE
    # Pitch on the steady part: after the first 30 ms, while the level is within 25 dB
    # of the peak, before the release (a hit: no release, HIT_SECONDS), at most 1.5 s.
    p0 = min(int(0.03 * SAMPLE_RATE), note.shape[1] // 4)
    loud = np.nonzero(e >= e.max() - 25.0)[0]
    p1 = min(note.shape[1], (int(loud[-1]) + 1) * hop)
    if note_seconds >= HIT_SECONDS:
        p1 = min(p1, int(note_seconds * SAMPLE_RATE) + 2048)
    p1 = min(p1, p0 + int(1.5 * SAMPLE_RATE))
    if p1 - p0 < 4096:
        p0, p1 = 0, min(note.shape[1], max(p1, 4096))
    steady = note[:, p0:p1].mean(axis=0)
    f0, confidence = detect_pitch(steady, SAMPLE_RATE)
    chord = detect_chord(steady, SAMPLE_RATE, f0)
    if chord:  # more than one note: matched at the lowest
        f0, confidence = chord[0], max(confidence, PITCHED_CONFIDENCE)
    elif f0 is not None and _is_drum_hit(note.mean(axis=0), e, hop_s, f0, confidence):
        f0 = None
    return f0, confidence, chord

