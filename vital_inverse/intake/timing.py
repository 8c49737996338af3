# SPDX-License-Identifier: GPL-3.0-or-later
"""Note timing from level envelopes: where the note starts and ends, where a second note
begins, and when the key was released (the render's note length).

Envelopes are block powers in dB over 5.8 ms blocks (256 samples at 44.1 kHz), shaped
(n_blocks,). `_release_start` fits the 100 ms-smoothed envelope with straight lines in dB:
the end of the last flat line before lines that only fall is the release; with no plateau
(plucks, percussion) the key is taken as held until the sound is 40 dB below its peak.
"""

from __future__ import annotations

import numpy as np

from ..constants import SAMPLE_RATE

#: Leading/trailing silence: blocks this far below the clip's loudest block.
ONSET_REL_DB = -50.0
TAIL_REL_DB = -60.0
#: A later note is split off after a gap this quiet (re peak) and this long.
GAP_REL_DB = -45.0
GAP_SECONDS = 0.10


def _block_power(x: np.ndarray, hop: int) -> np.ndarray:
    """Mean power over channels of non-overlapping blocks of `hop` samples (last block partial)."""
    n = x.shape[-1]
    nb = -(-n // hop)
    p = np.zeros(nb * hop)
    p[:n] = np.mean(x * x, axis=0)
    out = p.reshape(nb, hop).sum(axis=1)
    tail = n - (nb - 1) * hop
    out[:-1] /= hop
    out[-1] /= tail
    return out


def _smooth(p: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average of `p` over k blocks (shrinking at the edges)."""
    if k <= 1 or len(p) < 2:
        return p.copy()
    c = np.concatenate([[0.0], np.cumsum(p)])
    i = np.arange(len(p))
    lo = np.clip(i - k // 2, 0, len(p))
    hi = np.clip(i + k // 2 + 1, 0, len(p))
    return (c[hi] - c[lo]) / (hi - lo)


def _db(p: np.ndarray) -> np.ndarray:
    """Power -> dB re 1, floored at -200 dB: `librosa.power_to_db(p, amin=1e-20, top_db=None)`
    written out, as librosa's first use in a process costs seconds of imports (see `pitch.nearest_note`)."""
    return 10.0 * np.log10(np.maximum(p, 1e-20))


def find_onset_and_end(y: np.ndarray, sr: int) -> tuple[int, int]:
    """Onset sample and end sample (after trailing silence is trimmed) of (2, n) audio.

    Relative to the loudest 5.8 ms block: the onset is the first sample of the first
    block above -50 dB (raised to 10 dB over a steady leading noise floor if there is one);
    the end is the last block above -60 dB.
    """
    hop = max(1, round(sr * 256 / SAMPLE_RATE))
    e = _db(_block_power(y, hop))
    peak = float(e.max())
    thr = peak + ONSET_REL_DB
    n_head = max(1, round(0.02 * sr / hop))
    head = e[:n_head]
    if len(e) > 4 * n_head and head.max() - head.min() < 6.0 and head.mean() < peak - 20.0:
        thr = max(thr, float(np.median(head)) + 10.0)
    above = np.nonzero(e > thr)[0]
    first_block, last_block = int(above[0]), int(above[-1])
    tail_thr = max(peak + TAIL_REL_DB, thr - 10.0)
    above_tail = np.nonzero(e > tail_thr)[0]
    last_block = max(last_block, int(above_tail[-1]))
    # sample-precise onset: first sample above the threshold's RMS level near that block
    lo = max(0, (first_block - 1) * hop)
    hi = min(y.shape[-1], (first_block + 1) * hop)
    amp_thr = 10.0 ** (thr / 20.0)
    seg = np.max(np.abs(y[:, lo:hi]), axis=0)
    idx = np.nonzero(seg > amp_thr)[0]
    onset = lo + int(idx[0]) if len(idx) else first_block * hop
    end = min(y.shape[-1], (last_block + 1) * hop)
    return onset, max(end, onset + 1)


def _find_gap_split(e: np.ndarray, hop_s: float) -> int | None:
    """Block index where a second note begins after a quiet gap, or None.

    A gap is >= GAP_SECONDS below peak + GAP_REL_DB that is followed by sound above
    peak - 30 dB; the first note is cut where the gap first falls below the tail
    threshold (or at the gap's end)."""
    peak = e.max()
    quiet = e < peak + GAP_REL_DB
    need = max(1, round(GAP_SECONDS / hop_s))
    i = int(np.argmax(e >= peak - 30.0))  # inside the first note
    n = len(e)
    while i < n:
        if quiet[i]:
            j = i
            while j < n and quiet[j]:
                j += 1
            if j - i >= need and j < n and (e[j:] > peak - 30.0).any():
                run = e[i:j]
                below = np.nonzero(run < peak + TAIL_REL_DB)[0]
                return i + (int(below[0]) if len(below) else j - i)
            i = j
        else:
            i += 1
    return None


def _segment_lines(y: np.ndarray, n_seg: int, min_len: int) -> tuple[list[int], np.ndarray]:
    """Segmented least squares: y fitted by `n_seg` straight lines (discontinuous), each
    at least `min_len` points, optimal breakpoints by dynamic programming (O(n_seg n^2)).

    Returns (segment start indices, slope of each line per index step)."""
    n = len(y)
    t = np.arange(n, dtype=np.float64)

    def pref(v):
        return np.concatenate([[0.0], np.cumsum(v)])

    s1, st, stt, sy, sty, syy = pref(np.ones(n)), pref(t), pref(t * t), pref(y), pref(t * y), pref(y * y)
    lo = np.arange(n + 1)[:, None]
    hi = np.arange(n + 1)[None, :]
    ok = hi - lo >= min_len
    c = np.where(ok, s1[hi] - s1[lo], 1.0)
    ct, ctt = st[hi] - st[lo], stt[hi] - stt[lo]
    cy, cty, cyy = sy[hi] - sy[lo], sty[hi] - sty[lo], syy[hi] - syy[lo]
    vt = ctt - ct * ct / c
    cov = cty - ct * cy / c
    vy = cyy - cy * cy / c
    slope = np.where(vt > 1e-12, cov / np.maximum(vt, 1e-12), 0.0)
    cost = np.where(ok, np.maximum(vy - slope * cov, 0.0), np.inf)  # cost[i, j]: line on y[i:j]
    best = cost[0].copy()  # best[j]: 1 line on y[:j]
    back = []
    for _ in range(n_seg - 1):
        total = best[:, None] + cost  # split at i: (k lines on y[:i]) + line on y[i:j]
        arg = np.argmin(total, axis=0)
        best = total[arg, np.arange(n + 1)]
        back.append(arg)
    starts = [0] * n_seg
    j = n
    for k in range(n_seg - 1, 0, -1):
        j = int(back[k - 1][j])
        starts[k] = j
    ends = starts[1:] + [n]
    slopes = np.array([slope[a, b] for a, b in zip(starts, ends)])
    return starts, slopes


def _timing_envelope(x: np.ndarray, hop: int) -> np.ndarray:
    """Block envelope in dB for note timing: the mean, in dB, of the plain RMS and the
    RMS of the first difference of the signal.

    The plain RMS rests on the fundamental, so unison detune makes it beat by several
    dB; differencing tilts the spectrum by +6 dB/octave, so each harmonic beats at its
    own rate and the beats average out - but then filter movement (an LFO or envelope
    on the cutoff) moves the level instead. Their mean in dB halves both effects."""
    d = np.diff(x, axis=-1, prepend=x[:, :1])
    plain = _db(_smooth(_block_power(x, hop), 4))
    tilted = _db(_smooth(_block_power(d, hop), 4))
    return 0.5 * (plain + tilted)


def _hinge(e: np.ndarray, lo: int, hi: int, level: float) -> int:
    """Index r in (lo, hi) best splitting e[lo:hi] into 'constant `level`' then 'a
    straight fall starting from `level` at r' (least squares)."""
    y = e[lo:hi] - level
    n = len(y)
    if n < 4:
        return lo
    rs = np.arange(1, n - 1)
    flat = np.concatenate([[0.0], np.cumsum(y * y)])[rs]
    dt = np.arange(n)[None, :] - rs[:, None]
    dtp = np.maximum(dt, 0).astype(np.float64)
    den = (dtp * dtp).sum(axis=1)
    m = (y[None, :] * dtp).sum(axis=1) / np.maximum(den, 1e-12)
    fall = (((y[None, :] - m[:, None] * dtp) ** 2) * (dt >= 0)).sum(axis=1)
    return lo + int(rs[int(np.argmin(flat + fall))])


def _release_start(e: np.ndarray, hop_s: float) -> tuple[float, str]:
    """Seconds from the onset (block 0) to the start of the release, and the rule used.

    e: block envelope in dB (RMS over ~29 ms every 5.8 ms). Unison detune makes this
    envelope beat by several dB, so the structure is found on a 100 ms-smoothed copy:
    from the end of the attack (smoothed level within 1.5 dB of its maximum) to where
    the sound stays 40 dB below its peak, it is fitted by four straight lines in dB
    (segmented least squares): typically decay / sustain / release (x2).
    - "sustain": the last flat line (net change < 4 dB, |slope| < 15 dB/s, >= 30 ms,
      and at least a quarter of the time the fall after it takes to lose 20 dB)
      followed only by lines falling > 10 dB/s: the release start is then placed by a
      hinge fit (constant sustain level, then a straight fall) on the unsmoothed
      envelope around that breakpoint.
    - "held": the sound does not fall lastingly 20 dB below its peak within the
      analysed audio (key held throughout, or release cut off): the whole length.
    - "decay": no sustain plateau (plucks, percussive sounds, notes released while
      still in their attack or decay): the key is taken to be held until the sound has
      decayed 40 dB below its peak. A sustain-0 preset held that long renders the same
      decay; only the quiet tail below -40 dB is treated as release.
    """
    n = len(e)
    total = n * hop_s
    if n < 16:
        return total, "held"
    peak = float(e.max())
    i_peak = int(np.argmax(e))
    suffix_max = np.maximum.accumulate(e[::-1])[::-1]
    if not (suffix_max < peak - 20.0).any():
        return total, "held"
    es = _db(_smooth(10.0 ** (e / 10.0), max(1, round(0.1 / hop_s))))
    i_att = int(np.argmax(es >= es.max() - 1.5))
    gone = np.nonzero(suffix_max[i_att:] < peak - 40.0)[0]
    b = i_att + int(gone[0]) if len(gone) else n
    step = 2  # fit every second block (11.6 ms): enough resolution, a quarter of the work
    y = es[i_att:b:step]
    min_len = max(2, round(0.03 / (hop_s * step)))
    if len(y) >= 3 * min_len:
        n_seg = min(4, len(y) // min_len)
        starts, slopes = _segment_lines(y, n_seg, min_len)
        ends = starts[1:] + [len(y)]
        dur = np.diff(starts + [len(y)]) * hop_s * step
        slopes = slopes / (hop_s * step)  # dB/s
        for k in range(n_seg - 2, -1, -1):
            flat = abs(slopes[k]) < 15.0 and abs(slopes[k]) * dur[k] < 4.0
            falling = (slopes[k + 1 :] < -10.0).all() and (slopes[k + 1 :] * dur[k + 1 :]).sum() < -6.0
            p0 = i_att + starts[k] * step
            r0 = i_att + starts[k + 1] * step
            if flat and falling:
                # A short flat top before a long, slow fall is the start of a natural
                # decay (vibraphone, tines), not a held note: the plateau must last at
                # least a quarter of the time the fall takes to lose 20 dB.
                level = float(np.median(e[p0:r0])) if r0 > p0 else float(e[r0])
                fell = np.nonzero(suffix_max[r0:] < level - 20.0)[0]
                t20 = (int(fell[0]) if len(fell) else n - r0) * hop_s
                if (r0 - p0) * hop_s < 0.25 * t20:
                    continue
                lo = max(p0, r0 - round(0.2 / hop_s))
                hi = min(b, r0 + round(0.3 / hop_s), i_att + ends[k + 1] * step + 1)
                r = _hinge(e, lo, max(hi, lo + 4), level)
                return r * hop_s, "sustain"
    after = np.nonzero(e[i_peak:] < peak - 40.0)[0]
    if len(after) == 0:
        return total, "decay"
    return (i_peak + int(after[0])) * hop_s, "decay"


def first_note(y: np.ndarray, analysis_seconds: float, hop: int) -> tuple[int, int]:
    """(onset, stop) samples of the first note of (2, n) audio at 44.1 kHz.

    From the onset, at most `analysis_seconds`; cut at a quiet gap followed by another
    sound (`_find_gap_split`), with the first note's trailing silence trimmed."""
    hop_s = hop / SAMPLE_RATE
    onset, end = find_onset_and_end(y, SAMPLE_RATE)
    stop = min(end, onset + round(analysis_seconds * SAMPLE_RATE))
    e_raw = _db(_block_power(y[:, onset:stop], hop))
    split = _find_gap_split(e_raw, hop_s)
    if split is not None:
        stop = min(stop, onset + split * hop)
        e_raw = e_raw[:split]
        # trailing silence of the first note
        keep = np.nonzero(e_raw > e_raw.max() + TAIL_REL_DB)[0]
        stop = min(stop, onset + (int(keep[-1]) + 1) * hop)
    return onset, stop


def level_envelope(x: np.ndarray, hop: int) -> np.ndarray:
    """(n_blocks,) level in dB of (channels, n) audio: block power over `hop` samples, 4 blocks smoothed."""
    return _db(_smooth(_block_power(x, hop), 4))


def key_held_seconds(note: np.ndarray, hop: int) -> float:
    """Seconds from the onset to the start of the release (`_release_start`) of a (2, n) note
    at 44.1 kHz, at least one block and at most the note's length."""
    hop_s = hop / SAMPLE_RATE
    seconds, _rule = _release_start(_timing_envelope(note, hop), hop_s)
    return float(min(max(seconds, hop_s), note.shape[1] / SAMPLE_RATE))
