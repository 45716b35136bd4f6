import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler

from probe_core.denoise import denoise, generate_steps
from probe_core.hooks import self_attention_layers

PROMPT = "a large red sphere and a small blue box on a gray checkered floor"


def _stock(pipe, steps, guidance, seed):
    return pipe(PROMPT, num_inference_steps=steps, guidance_scale=guidance,
                generator=torch.Generator().manual_seed(seed), output_type="latent").images


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, LMSDiscreteScheduler,
                                           EulerDiscreteScheduler])
@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_final_latents_equal_stock_diffusers(tiny_pipe, scheduler_cls, guidance):
    tiny_pipe.scheduler = scheduler_cls.from_config(tiny_pipe.scheduler.config)
    stock = _stock(tiny_pipe, 4, guidance, seed=11)
    ours = generate_steps(tiny_pipe, PROMPT, num_inference_steps=4, guidance_scale=guidance,
                          generator=torch.Generator().manual_seed(11), capture_layers=None)
    assert torch.equal(ours.latents, stock)
    assert len(ours.steps) == 4 and ours.image.shape == (32, 32, 3)


def test_steps_carry_timesteps_x0_images_and_activations(tiny_pipe):
    layers = self_attention_layers(tiny_pipe.unet)
    states = list(denoise(tiny_pipe, PROMPT, num_inference_steps=3, guidance_scale=4.0,
                          generator=torch.Generator().manual_seed(0), capture_layers=None))
    assert [s.index for s in states] == [0, 1, 2]
    assert [s.timestep for s in states] == [int(t) for t in tiny_pipe.scheduler.timesteps]
    for s in states:
        assert s.x0_image.shape == (32, 32, 3) and s.x0_image.dtype == np.uint8
        assert set(s.activations) == set(layers)
        first = s.activations[layers[0]]
        assert first.shape == (8 * 8, 32) and first.dtype == torch.float32
    assert not torch.equal(states[0].activations[layers[0]], states[1].activations[layers[0]])


def test_no_capture_by_default_and_edit_changes_the_result(tiny_pipe):
    kw = dict(num_inference_steps=3, guidance_scale=4.0)
    plain = generate_steps(tiny_pipe, PROMPT, generator=torch.Generator().manual_seed(2), **kw)
    assert plain.steps[0].activations == {}
    layer = self_attention_layers(tiny_pipe.unet)[0]
    edited = generate_steps(tiny_pipe, PROMPT, generator=torch.Generator().manual_seed(2),
                            edit_fn=lambda out, name: out * 0, edit_layers=[layer],
                            edit_steps=range(0, 1), **kw)
    assert not torch.equal(plain.latents, edited.latents)


def test_capture_records_the_edited_output(tiny_pipe):
    layer = self_attention_layers(tiny_pipe.unet)[0]
    states = list(denoise(tiny_pipe, PROMPT, num_inference_steps=2, guidance_scale=4.0,
                          generator=torch.Generator().manual_seed(2), capture_layers=[layer],
                          edit_fn=lambda out, name: out * 0 + 3.0, edit_layers=[layer],
                          edit_steps=range(1, 2)))
    assert not torch.all(states[0].activations[layer] == 3.0)  # step 0 not edited
    assert torch.all(states[1].activations[layer] == 3.0)
