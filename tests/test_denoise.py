import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler, LMSDiscreteScheduler

from probe_core.probing.denoise import DenoiseHooks, DenoiseSettings, decode_latents, denoise
from probe_core.probing.hooks import self_attention_layers

from .helpers import SCENE_PROMPT as PROMPT


def _final(pipe, generator, hooks=DenoiseHooks(), **settings):
    """Every StepState of a run and its final latents."""
    steps = list(denoise(pipe, PROMPT, DenoiseSettings(**settings), generator, hooks=hooks))
    return steps, steps[-1].latents


def _stock(pipe, steps, guidance, seed):
    return pipe(PROMPT, num_inference_steps=steps, guidance_scale=guidance,
                generator=torch.Generator().manual_seed(seed), output_type="latent").images


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, LMSDiscreteScheduler,
                                           EulerDiscreteScheduler])
@pytest.mark.parametrize("guidance", [1.0, 7.5])
def test_final_latents_equal_stock_diffusers(tiny_pipe, scheduler_cls, guidance):
    tiny_pipe.scheduler = scheduler_cls.from_config(tiny_pipe.scheduler.config)
    stock = _stock(tiny_pipe, 4, guidance, seed=11)
    steps, latents = _final(tiny_pipe, torch.Generator().manual_seed(11), num_inference_steps=4,
                            guidance_scale=guidance, capture_layers=None)
    assert torch.equal(latents, stock)
    assert len(steps) == 4 and decode_latents(tiny_pipe, latents).shape == (32, 32, 3)


def test_steps_carry_timesteps_x0_images_and_activations(tiny_pipe):
    layers = self_attention_layers(tiny_pipe.unet)
    states = list(denoise(tiny_pipe, PROMPT, DenoiseSettings(3, 4.0, capture_layers=None),
                          torch.Generator().manual_seed(0)))
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
    plain, plain_latents = _final(tiny_pipe, generator=torch.Generator().manual_seed(2), **kw)
    assert plain[0].activations == {}
    layer = self_attention_layers(tiny_pipe.unet)[0]
    _, edited_latents = _final(
        tiny_pipe, generator=torch.Generator().manual_seed(2),
        hooks=DenoiseHooks(edit_layers=[layer], activation_edit=lambda i: (
            lambda out, name: out * 0) if i == 0 else None), **kw)
    assert not torch.equal(plain_latents, edited_latents)


def test_capture_records_the_edited_output(tiny_pipe):
    layer = self_attention_layers(tiny_pipe.unet)[0]
    hooks = DenoiseHooks(activation_edit=lambda i: (lambda out, name: out * 0 + 3.0)
                         if i == 1 else None, edit_layers=[layer])
    states = list(denoise(tiny_pipe, PROMPT, DenoiseSettings(2, 4.0, capture_layers=[layer]),
                          torch.Generator().manual_seed(2), hooks=hooks))
    assert not torch.all(states[0].activations[layer] == 3.0)  # step 0 not edited
    assert torch.all(states[1].activations[layer] == 3.0)


@pytest.mark.parametrize("scheduler_cls", [DDIMScheduler, LMSDiscreteScheduler])
def test_resume_from_a_cached_step_equals_the_full_run(tiny_pipe, scheduler_cls):
    tiny_pipe.scheduler = scheduler_cls.from_config(tiny_pipe.scheduler.config)
    settings = DenoiseSettings(5, 4.0)
    full = list(denoise(tiny_pipe, PROMPT, DenoiseSettings(5, 4.0, keep_resume=True),
                        torch.Generator().manual_seed(4)))
    for k in (1, 3):
        point = full[k - 1].resume_next
        assert point.index == k
        rest = list(denoise(tiny_pipe, PROMPT, settings, torch.Generator().manual_seed(4),
                            start=point))
        assert [s.index for s in rest] == list(range(k, 5))
        assert torch.equal(rest[-1].latents, full[-1].latents)
    # the cached point is not consumed: resuming twice gives the same result
    again = list(denoise(tiny_pipe, PROMPT, settings, torch.Generator().manual_seed(4),
                         start=full[2].resume_next))
    assert torch.equal(again[-1].latents, full[-1].latents)


def test_latent_edit_replaces_the_latents_entering_a_step(tiny_pipe):
    kw = dict(num_inference_steps=3, guidance_scale=4.0)
    seen = []

    def latent_edit(latents, i, t, embeds, scheduler):
        seen.append(i)
        return latents * 0 if i == 1 else latents

    plain, plain_latents = _final(tiny_pipe, generator=torch.Generator().manual_seed(2), **kw)
    changed, changed_latents = _final(tiny_pipe, generator=torch.Generator().manual_seed(2),
                                      hooks=DenoiseHooks(latent_edit=latent_edit), **kw)
    assert seen == [0, 1, 2]  # asked at every step; it edits step 1 only
    assert torch.equal(changed[0].latents, plain[0].latents)
    assert not torch.equal(changed_latents, plain_latents)
