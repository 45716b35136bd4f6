import numpy as np
import pytest

from probe_core.demo import ProbeDemo


@pytest.fixture
def demo(tiny_pipe):
    return ProbeDemo(tiny_pipe, "tiny test model")


def test_generate_returns_a_display_sized_image_deterministically(demo):
    a = demo.generate("a small blue box on a beige plain floor", seed=4, num_inference_steps=2)
    b = demo.generate("a small blue box on a beige plain floor", seed=4, num_inference_steps=2)
    assert a.shape == (256, 256, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)


def test_vocabulary_and_examples(demo):
    vocab = demo.vocabulary()
    assert "sphere" in vocab and not any(w.startswith("<") for w in vocab)
    for prompt in demo.example_prompts(4):
        assert set(prompt.split()) <= set(vocab)


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt="a red dragon"), "unknown words \\['dragon'\\]"),
    (dict(prompt=" ".join(["red"] * 40)), "at most 24"),
    (dict(seed=float("nan")), "seed must be between"),
    (dict(seed=-1), "seed must be between"),
    (dict(seed="abc"), "seed must be a number"),
    (dict(num_inference_steps=0), "steps must be between"),
    (dict(guidance_scale=float("inf")), "guidance must be between"),
    (dict(prompt=None), "prompt must be text"),
])
def test_bad_input_gets_a_clear_error(demo, kwargs, message):
    args = dict(prompt="a red sphere on a gray plain floor", seed=0, num_inference_steps=2,
                guidance_scale=4.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        demo.generate(**args)
    # and the demo keeps working afterwards
    assert demo.generate("", seed=1, num_inference_steps=1).shape == (256, 256, 3)
