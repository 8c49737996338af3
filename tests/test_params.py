# SPDX-License-Identifier: GPL-3.0-or-later
"""ParamSpace: ranges come from Vita, encode/decode is exact, the hash is stable."""

from __future__ import annotations

import numpy as np
import pytest
import vita
from hypothesis import given, settings
from hypothesis import strategies as st

from vital_inverse.params import ROUTES, ParamSpaceError, build_space


def test_ranges_and_options_come_from_vita(space):
    synth = vita.Synth()
    for p in space.params:
        if p.control is None and p.route is None:
            continue  # wavetable and LFO shape are not Vital controls
        d = synth.get_control_details(p.control or "modulation_1_amount")
        assert (p.min, p.max) == (pytest.approx(d.min), pytest.approx(d.max)), p.name
        if p.kind == "categorical":
            opts = list(d.options)
            for label, value in zip(p.options, p.option_values):
                if opts:
                    assert opts[int(value - d.min)] == label, p.name


def test_space_covers_what_the_issue_asks(space):
    names = set(space.names)
    for k in (1, 2, 3):
        for s in ("on", "level", "pan", "transpose", "tune", "wavetable", "wave_frame", "unison_voices",
                  "unison_detune", "spectral_morph_type", "spectral_morph_amount", "distortion_type",
                  "distortion_amount", "destination"):
            assert f"osc_{k}_{s}" in names
    for k in (1, 2):
        for s in ("on", "model", "style", "cutoff", "resonance", "drive", "blend", "keytrack"):
            assert f"filter_{k}_{s}" in names
        assert f"lfo_{k}_frequency" in names and f"lfo_{k}_shape" in names
    for k in (1, 2, 3):
        for s in ("attack", "decay", "sustain", "release", "attack_power", "decay_power", "release_power"):
            assert f"env_{k}_{s}" in names
    for fx in ("chorus_on", "delay_on", "reverb_on", "distortion_on", "phaser_on", "flanger_on", "compressor_on", "eq_on"):
        assert fx in names
    assert {"sample_on", "sample_level", "sample_destination"} <= names
    assert len(space.routes) == 8 == len(ROUTES)
    assert len(space["osc_1_wavetable"].options) >= 32


def test_defaults_are_vitals_init(space):
    synth = vita.Synth()
    for p in space.params:
        if p.control:
            assert p.default == pytest.approx(synth.get_control_details(p.control).default_value), p.name
    space.validate(space.defaults())


def test_hash_is_stable_across_builds(space):
    assert build_space().hash == space.hash
    assert len(space.hash) == 16


def test_normalize_round_trip_on_ordinals_and_ends(space):
    for p in space.continuous:
        for raw in (p.min, p.max, p.default):
            back = p.denormalize(p.normalize(raw))
            assert back == pytest.approx(round(raw) if p.kind == "ordinal" else raw, abs=1e-9), p.name


def test_validate_names_the_problem(space):
    v = space.defaults()
    v["filter_1_cutoff"] = 1e9
    with pytest.raises(ParamSpaceError, match="filter_1_cutoff"):
        space.validate(v)
    v = space.defaults()
    v["filter_1_model"] = 2.5
    with pytest.raises(ParamSpaceError, match="filter_1_model"):
        space.validate(v)
    with pytest.raises(ParamSpaceError, match="unknown"):
        space.validate({**space.defaults(), "nope": 1.0})
    with pytest.raises(ParamSpaceError, match="shape"):
        space.decode(np.zeros(3))


def test_audible_skips_switched_off_modules(space):
    v = space.defaults()
    aud = space.audible(v)
    assert "osc_1_level" in aud and "osc_2_level" not in aud
    assert "filter_1_cutoff" not in aud and "reverb_dry_wet" not in aud
    assert "env_1_attack" in aud and "env_2_attack" not in aud
    # a zero route into a live module counts (raising it would be heard); into a dead one it does not
    assert "mod_env2_osc1_level" in aud and "mod_env2_filter1_cutoff" not in aud
    v["mod_env2_filter1_cutoff"] = 0.5
    v["filter_1_on"] = 1.0
    aud = space.audible(v)
    assert {"env_2_attack", "filter_1_cutoff", "mod_env2_filter1_cutoff"} <= aud


@st.composite
def raw_values(draw, space):
    out = {}
    for p in space.params:
        if p.kind == "categorical":
            out[p.name] = p.option_values[draw(st.integers(0, len(p.options) - 1))]
        elif p.kind == "ordinal":
            out[p.name] = float(draw(st.integers(int(p.min), int(p.max))))
        else:
            out[p.name] = draw(st.floats(p.min, p.max, allow_nan=False, allow_subnormal=False))
    return out


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_encode_decode_round_trip(space, data):
    values = data.draw(raw_values(space))
    vec = space.encode(values)
    assert vec.shape == (space.vector_size,) and vec.dtype == np.float32
    assert np.all((vec >= 0) & (vec <= 1))
    for p in space.categorical:
        assert vec[space.categorical_slices[p.name]].sum() == 1.0
    back = space.decode(vec)
    for p in space.params:
        if p.kind == "continuous":
            assert back[p.name] == pytest.approx(values[p.name], abs=1e-6 * (p.max - p.min)), p.name
        else:
            assert back[p.name] == values[p.name], p.name
    # encode(decode(v)) is a fixed point
    np.testing.assert_allclose(space.encode(back), vec, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 5.0, allow_subnormal=False))
def test_decode_clips_any_vector_into_range(space, seed, scale):
    vec = np.random.default_rng(seed).normal(0.5, scale, space.vector_size)
    space.validate(space.decode(vec))
