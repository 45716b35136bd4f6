import copy

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from probe_core.probing.denoise import DenoiseSettings, denoise, predicted_x0
from probe_core.probing.schedulers import (SCHEDULERS, check_scheduler, make_scheduler,
                                           schedule_note, timesteps_of)
from probe_core.probing.step_map import ProbeStepMap

from .helpers import SCENE_PROMPT as PROMPT

NEGATIVE = "a green cylinder"


@pytest.mark.parametrize("name", ["default", *SCHEDULERS])
def test_each_sampler_with_a_negative_prompt_equals_stock_diffusers(tiny_pipe, name):
    stock_pipe = copy.copy(tiny_pipe)
    stock_pipe.scheduler = make_scheduler(tiny_pipe, name)
    stock = stock_pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4,
                       guidance_scale=7.5, generator=torch.Generator().manual_seed(3),
                       output_type="latent").images
    before = tiny_pipe.scheduler.config
    settings = DenoiseSettings(4, 7.5, NEGATIVE, capture_layers=None)
    steps = list(denoise(tiny_pipe, PROMPT, settings, torch.Generator().manual_seed(3),
                         scheduler=make_scheduler(tiny_pipe, name)))
    assert torch.equal(steps[-1].latents, stock)
    assert all(s.x0_latents is not None and s.x0_image is not None for s in steps)
    assert tiny_pipe.scheduler.config == before  # the pipeline's own scheduler is untouched


def test_negative_prompt_changes_the_run(tiny_pipe):
    plain = list(denoise(tiny_pipe, PROMPT, DenoiseSettings(3, 7.5),
                         torch.Generator().manual_seed(1)))
    negative = list(denoise(tiny_pipe, PROMPT, DenoiseSettings(3, 7.5, NEGATIVE),
                            torch.Generator().manual_seed(1)))
    assert not torch.equal(plain[-1].latents, negative[-1].latents)


def test_x0_from_the_noise_prediction_matches_ddim(tiny_pipe):
    sched = DDIMScheduler.from_config(tiny_pipe.scheduler.config)
    sched.set_timesteps(10)
    t = sched.timesteps[3]
    x, eps = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    want = sched.step(eps, t, x).pred_original_sample
    assert torch.allclose(predicted_x0(sched, x, eps, t), want, atol=1e-5)


def test_check_scheduler_refuses_unknown_names():
    assert check_scheduler(None) == "default" and check_scheduler("Euler") == "Euler"
    for bad in ("PNDM", 3, ["DDIM"], "x" * 1000):
        with pytest.raises(ValueError, match="unknown scheduler"):
            check_scheduler(bad)


def test_probe_steps_by_nearest_timestep_on_another_sampler(tiny_pipe):
    steps = ProbeStepMap(tiny_pipe.scheduler, 15)
    same = steps.for_run(15)
    assert same == {i: i for i in range(15)}
    other = make_scheduler(tiny_pipe, "DPM-Solver multistep")
    run_t = timesteps_of(other, 15)
    mapped = steps.for_run(15, other)
    probe_t = steps.timesteps()
    for i, k in mapped.items():
        assert abs(probe_t[k] - run_t[i]) == np.min(np.abs(probe_t - run_t[i]))
    assert schedule_note(timesteps_of(tiny_pipe.scheduler, 15), probe_t) == ""
    note = schedule_note(run_t, probe_t)
    assert not np.array_equal(run_t, probe_t) and "nearest probed timestep" in note
