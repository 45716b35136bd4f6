"""The sync-free activation edit gives what autograd + torch.optim.Adam with a per-iteration stopping
check gave (the implementation it replaced, kept here as the reference)."""

import numpy as np
import pytest
import torch

from probe_core.edits.methods import Edit, probe_loss, token_target
from probe_core.edits.run import intervene, run_generation
from probe_core.probing.generation import Generation
from probe_core.edits.probe_adam import loss_and_grad, optimise_toward_probe
from probe_core.probing.denoise import DenoiseHooks, DenoiseSettings, denoise
from probe_core.probing.hooks import self_attention_layers

from .helpers import PROMPT, scaled_random_probes


def reference_adam(task, weight, acts, target, lr, iterations):
    """The replaced code: autograd, torch.optim.Adam, the stopping rule read on the host."""
    reference_adam.stopped_at = None
    a = acts.detach().float().clone().requires_grad_(True)
    opt = torch.optim.Adam([a], lr=lr)
    first = last = None
    with torch.enable_grad():
        for k in range(iterations):
            loss = probe_loss(task, weight, a, target)
            value = float(loss.detach())
            if first is None:
                first = value
            elif value > last * 0.999:
                reference_adam.stopped_at = k
                break
            last = value
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        final = float(probe_loss(task, weight, a, target))
    return a.detach(), first, final


def problem(task, seed=0, hw=64, c=16):
    g = torch.Generator().manual_seed(seed)
    acts = torch.randn(hw, c, generator=g)
    weight = torch.randn(1 if task == "depth" else 2, c, generator=g) / c ** 0.5
    target = torch.randn(hw, generator=g) if task == "depth" else torch.rand(hw, generator=g)
    return weight, acts, target


@pytest.mark.parametrize("task", ["depth", "saliency"])
def test_the_gradient_is_autograds(task):
    weight, acts, target = problem(task)
    a = acts.clone().requires_grad_(True)
    loss = probe_loss(task, weight, a, target)
    loss.backward()
    mine, grad = loss_and_grad(task, weight, acts, target)
    assert torch.allclose(mine, loss.detach(), rtol=1e-5)
    assert torch.allclose(grad, a.grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("task", ["depth", "saliency"])
@pytest.mark.parametrize("lr,iterations", [(0.05, 32), (0.05, 5), (3.0, 32), (0.0, 4)])
def test_same_result_as_autograd_adam(task, lr, iterations):
    """lr 3.0 overshoots, so the stopping rule ends it early: the frozen activation is the one
    the host-checked loop stopped at."""
    weight, acts, target = problem(task, seed=1)
    ref, first, final = reference_adam(task, weight, acts, target, lr, iterations)
    a, my_first, my_final = optimise_toward_probe(task, weight, acts, target, lr, iterations,
                                                  check_every=3)
    assert torch.allclose(a, ref, rtol=1e-4, atol=1e-5)
    assert float(my_first) == pytest.approx(first, rel=1e-5)
    assert float(my_final) == pytest.approx(final, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("task", ["depth", "saliency"])
def test_overshooting_stops_early_at_the_same_activation(task):
    """A large step makes the loss rise within a few iterations: the reference stops there, and
    the device-side rule freezes the activation at the same point."""
    weight, acts, target = problem(task, seed=2)
    ref, _, _ = reference_adam(task, weight, acts, target, 3.0, 32)
    assert reference_adam.stopped_at is not None and reference_adam.stopped_at < 31
    a, _, _ = optimise_toward_probe(task, weight, acts, target, 3.0, 32, check_every=5)
    assert torch.allclose(a, ref, rtol=1e-4, atol=1e-5)
    longer, _, _ = optimise_toward_probe(task, weight, acts, target, 3.0, 32, check_every=32)
    assert torch.equal(a, longer)  # how often the host looks does not change the result


class ReferenceActivationEdit:
    """The replaced ActivationEdit, built on reference_adam."""

    def __init__(self, edit, probes, latent_hw):
        self.edit, self.probes, self.latent_hw, self.step = edit, probes, latent_hw, 0

    def __call__(self, step):
        if step not in self.edit.steps:
            return None
        self.step = step
        return self.edit_layer

    def edit_layer(self, output, layer):
        weight = self.probes.weights[(self.edit.task, self.step, layer)]
        target = token_target(self.edit.target, output.shape[1], self.latent_hw)
        a, _, _ = reference_adam(self.edit.task, weight, output[0], target, self.edit.strength,
                                 self.edit.iterations)
        return a[None].to(output.dtype)


@pytest.mark.parametrize("task", ["saliency", "depth"])
def test_the_edited_generation_matches_the_reference(tiny_pipe, task):
    """Whole generations: the same final latents as the replaced implementation."""
    kw = dict(num_inference_steps=4, guidance_scale=4.0)
    layers = self_attention_layers(tiny_pipe.unet)
    generation = Generation(PROMPT, 3, **kw)
    original = run_generation(tiny_pipe, generation, layers=layers)
    probes = scaled_random_probes(tiny_pipe, layers)
    target = np.zeros((32, 32), np.float32)
    target[8:20, 12:22] = 1
    edit = Edit(task, target if task == "depth" else target > 0, "activation", strength=0.05,
                steps=range(0, 3), iterations=32)
    mine = intervene(tiny_pipe, probes, edit, generation)
    ref_editor = ReferenceActivationEdit(edit, probes, (8, 8))
    *_, last = denoise(tiny_pipe, PROMPT, DenoiseSettings(**kw, decode_x0=False),
                       torch.Generator().manual_seed(3),
                       hooks=DenoiseHooks(activation_edit=ref_editor, edit_layers=layers))
    assert not torch.allclose(last.latents, original[-1].latents, atol=1e-3)  # it did edit
    assert torch.allclose(mine.steps[-1].latents, last.latents, atol=1e-4)
