"""The validators every request goes through: any value either passes, converted and in range,
or is refused with a ValueError naming the argument; nothing else escapes."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe_core.serve.inputs import (bounded, check_finished, check_prompt_text, step_number,
                                     whole)
from probe_core.serve.steering import SliderValues, SteerLimits, plan_text, steer_request
from probe_core.settings import MAX_PROMPT_CHARS

anything = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                     st.text(max_size=30), st.lists(st.integers(), max_size=3),
                     st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@given(anything)
@settings(max_examples=300, deadline=None)
def test_bounded_passes_finite_numbers_in_range_and_names_the_rest(value):
    try:
        x = bounded("strength", value, -2.0, 3.0)
    except ValueError as err:
        assert str(err).startswith("strength must be")
    else:
        assert isinstance(x, float) and math.isfinite(x) and -2.0 <= x <= 3.0


@given(anything)
@settings(max_examples=300, deadline=None)
def test_whole_numbers_are_never_rounded(value):
    try:
        k = whole("seed", value, 0, 100)
    except ValueError as err:
        assert str(err).startswith("seed must be")
    else:
        assert isinstance(k, int) and 0 <= k <= 100 and float(value) == k


@given(anything)
@settings(max_examples=200, deadline=None)
def test_step_numbers_are_one_based_on_the_page(value):
    try:
        k = step_number("step", value, 1, 15)
    except ValueError as err:
        assert "step must be" in str(err) and ("1 and 15" in str(err) or "whole" in str(err)
                                               or "number" in str(err))
    else:
        assert 0 <= k <= 14


@given(st.one_of(anything, st.text(min_size=0, max_size=2 * MAX_PROMPT_CHARS)))
@settings(max_examples=200, deadline=None)
def test_prompts_are_text_not_empty_and_bounded(value):
    try:
        prompt = check_prompt_text(value)
    except ValueError as err:
        assert "prompt" in str(err)
    else:
        assert prompt.strip() and len(prompt) <= MAX_PROMPT_CHARS


drawn = st.one_of(anything, st.sampled_from(["none", "paint", "flip", "swap"]))
painted = st.one_of(anything, st.lists(st.lists(st.floats(allow_nan=True), min_size=1,
                                                max_size=4), min_size=1, max_size=4))


@given(anything, anything, anything, anything, anything, anything, anything, anything, drawn,
       painted, anything, anything)
@settings(max_examples=400, deadline=None)
def test_steering_requests_are_checked_whole(mx, my, scale, push, strength, first, last, method,
                                             drawn, painted, sx, sy):
    try:
        r, how = steer_request(SliderValues(mx, my, scale, push, strength, first, last, method,
                                            drawn, painted, sx, sy), SteerLimits(32, 15, 64))
    except ValueError:
        return
    assert how.method in ("activation", "guided", "latent_shift")
    assert -32 <= r.move_x <= 32 and -32 <= r.move_y <= 32 and 0 <= min(how.steps)
    assert max(how.steps) <= 14 and math.isfinite(how.strength)
    assert -32 <= r.shift_x <= 32 and -32 <= r.shift_y <= 32
    if r.drawn == "paint":
        assert r.painted.shape == (64, 64) and r.painted.dtype == bool and r.painted.any()
    assert isinstance(plan_text(mx, my, scale, push, drawn, sx, sy), str)


def test_a_stopped_run_is_named_as_such():
    class Partial:
        steps, num_inference_steps, done = [object()] * 3, 8, False

    with pytest.raises(ValueError, match="stopped at step 3 of 8"):
        check_finished(Partial(), "steer it")
    with pytest.raises(ValueError, match="generate an image first, then export it"):
        check_finished(None, "export it")
