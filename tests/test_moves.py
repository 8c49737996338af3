# SPDX-License-Identifier: GPL-3.0-or-later
"""Categorical moves: proposals change one categorical each, most probable first, never twice, never a
locked one; in refinement a stalled search from the wrong wavetable finds the right one (real renders)."""

from __future__ import annotations

import numpy as np

from vital_inverse.intake import TARGET_PEAK, Analysis
from vital_inverse.moves import CategoricalMoves
from vital_inverse.preset import Preset
from vital_inverse.refine import Budget, RefineConfig, refine
from vital_inverse.synth import ParallelRenderer

NOTE_S, RENDER_S = 0.3, 0.5


def _belief(space, favour: dict[str, int]) -> list[np.ndarray]:
    """Uniform beliefs, except that ``favour`` options get most of the mass."""
    out = []
    for p in space.categorical:
        pr = np.full(p.size, 1.0)
        if p.name in favour:
            pr[favour[p.name]] = 50.0
        out.append(pr / pr.sum())
    return out


def test_proposals_are_single_changes_most_probable_first_and_not_repeated(space):
    start = Preset.from_values({"filter_1_on": 1.0})
    table = space["osc_1_wavetable"]
    want = (table.index_of(start.values[table.name]) + 5) % table.size
    moves = CategoricalMoves(space, _belief(space, {"osc_1_wavetable": want, "filter_1_model": 3}),
                             locked=frozenset({"filter_1_model"}))
    first = moves.propose(start, 4)
    assert len(first) == 4
    assert table.index_of(first[0].values[table.name]) == want  # the favoured option leads
    for p in first:
        changed = [n for n in space.names if p.values[n] != start.values[n]]
        assert len(changed) == 1 and changed[0] in {q.name for q in space.categorical}
        assert changed[0] != "filter_1_model"  # locked
    again = moves.propose(start, 4)
    assert not {tuple(sorted(p.values.items())) for p in first} & {tuple(sorted(p.values.items())) for p in again}
    # a switched-off oscillator's table is not proposed (it cannot be heard), its switch is
    names = {n for _, n, _ in moves.ranked(dict(start.values))}
    assert "osc_2_wavetable" not in names and "osc_2_on" in names


def test_a_stalled_search_takes_the_move_to_the_right_wavetable(space, renderer):
    table = space["osc_1_wavetable"]
    truth = Preset.from_values({"osc_1_wavetable": table.option_values[3]})
    wrong = truth.with_values({"osc_1_wavetable": table.option_values[0]})
    audio = renderer.render(truth, 60, 0.8, NOTE_S, RENDER_S)
    target = Analysis((audio * (TARGET_PEAK / np.abs(audio).max())).astype(np.float32), 44100, 60, 0.0, 1.0, True,
                      261.63, NOTE_S, RENDER_S, 1.0, "test")
    moves = CategoricalMoves(space, _belief(space, {"osc_1_wavetable": 3}))
    config = RefineConfig(moves=moves, stall_generations=1, move_batch=4, open_filter=False)
    with ParallelRenderer(workers=2) as pool:
        events = list(refine(target, [wrong], Budget(renders=40), seed=1, renderer=pool, popsize=4, config=config))
    best = events[-1].best
    assert table.index_of(best.values[table.name]) == 3
    assert events[-1].best_loss < events[0].best_loss
    assert events[-1].renders <= 40
    without = RefineConfig(open_filter=False)
    with ParallelRenderer(workers=2) as pool:
        plain = list(refine(target, [wrong], Budget(renders=40), seed=1, renderer=pool, popsize=4, config=without))
    assert table.index_of(plain[-1].best.values[table.name]) == 0  # continuous moves alone keep the start's table
    assert events[-1].best_loss < plain[-1].best_loss
