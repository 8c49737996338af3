# SPDX-License-Identifier: GPL-3.0-or-later
"""The small set of LFO shapes the system predicts.

Vital stores an LFO's shape as a list of (x, y) points with per-segment
curve powers in ``settings["lfos"][i]`` (not as a control), so the shapes
are data here. y = 1 is the bottom of the LFO range in Vital's editor,
y = 0 the top, which is why a rising saw goes from 1 to 0.
"""

from __future__ import annotations

# name -> (points as flat [x0, y0, x1, y1, ...], powers per point, smooth)
_SHAPES: dict[str, tuple[tuple[float, ...], tuple[float, ...], bool]] = {
    "Triangle": ((0.0, 1.0, 0.5, 0.0, 1.0, 1.0), (0.0, 0.0, 0.0), False),
    "Sine": ((0.0, 1.0, 0.5, 0.0, 1.0, 1.0), (0.0, 0.0, 0.0), True),
    "Saw Up": ((0.0, 1.0, 1.0, 0.0), (0.0, 0.0), False),
    "Saw Down": ((0.0, 0.0, 1.0, 1.0), (0.0, 0.0), False),
    "Square": ((0.0, 0.0, 0.5, 0.0, 0.5, 1.0, 1.0, 1.0), (0.0, 0.0, 0.0, 0.0), False),
}

SHAPE_NAMES: tuple[str, ...] = tuple(_SHAPES)


def shape_json(name: str) -> dict:
    """The ``settings["lfos"][i]`` dict Vital expects for a named shape."""
    points, powers, smooth = _SHAPES[name]
    return {
        "name": name,
        "num_points": len(points) // 2,
        "points": list(points),
        "powers": list(powers),
        "smooth": smooth,
    }


def shape_index(lfo_json: dict) -> int:
    """Closest named shape for an LFO dict read from a .vital file.

    Exact point matches win; otherwise the shape whose sampled curve is
    nearest (so hand-drawn LFOs map onto something sensible).
    """
    for i, name in enumerate(SHAPE_NAMES):
        points, _, smooth = _SHAPES[name]
        if list(points) == list(lfo_json.get("points", [])) and bool(lfo_json.get("smooth")) == smooth:
            return i
    target = _sample(lfo_json.get("points", []))
    if target is None:
        return 0
    best, best_d = 0, float("inf")
    for i, name in enumerate(SHAPE_NAMES):
        cand = _sample(list(_SHAPES[name][0]))
        d = sum(abs(a - b) for a, b in zip(cand, target))
        if d < best_d:
            best, best_d = i, d
    return best


def _sample(points: list[float], n: int = 32) -> list[float] | None:
    """Piecewise-linear evaluation of a Vital point list at n phases."""
    if len(points) < 4:
        return None
    xs, ys = points[0::2], points[1::2]
    out = []
    for k in range(n):
        x = k / (n - 1)
        j = 0
        while j < len(xs) - 2 and xs[j + 1] < x:
            j += 1
        x0, x1 = xs[j], xs[j + 1]
        t = 0.0 if x1 <= x0 else min(1.0, max(0.0, (x - x0) / (x1 - x0)))
        out.append(ys[j] + t * (ys[j + 1] - ys[j]))
    return out
