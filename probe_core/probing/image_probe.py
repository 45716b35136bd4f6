"""Probe a given image instead of a generated one: encode it, noise it to every step's level with a
fixed seed, run the UNet once per step with a prompt, and capture what the probes read.

    >>> for state in probe_image(pipe, image, "a red sphere", num_inference_steps=15,
    ...                          guidance_scale=4.0, seed=0, capture_layers=layers):
    ...     state.index, state.timestep, state.activations[layers[0]].shape   # (HW, C)

This asks the paper's question of an image the user chose: is the scene in the activations the
UNet computes from it at each noise level? Each step is independent (the image is noised from
scratch to that step's level: the forward process, not a denoising trajectory).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..families import family_of
from .denoise import StepState
from .hooks import capture, resolve_layers


@torch.no_grad()
def image_latents(pipe, image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 at the model's image size -> (1, 4, h, w) scaled latents (the posterior
    mean of the VAE)."""
    vae = pipe.vae
    x = torch.as_tensor(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    x = x.to(vae.device, vae.dtype)
    return vae.encode(x).latent_dist.mean * vae.config.scaling_factor


def _model_input(scheduler, noisy: torch.Tensor, t) -> torch.Tensor:
    """The UNet's input for a latent noised to timestep t. Schedulers whose noise lives in sigma
    space (init_noise_sigma > 1: LMS, Euler) divide by sqrt(sigma^2 + 1), as their
    scale_model_input does at that step; the others (DDIM, DPM-Solver) take it as it is."""
    if float(scheduler.init_noise_sigma) <= 1.0:
        return noisy
    sigmas = scheduler.sigmas.to(noisy.device)
    index = int(torch.argmin((scheduler.timesteps.to(noisy.device) - t).abs()))
    return noisy / (sigmas[index] ** 2 + 1) ** 0.5


@torch.no_grad()
def probe_image(pipe, image: np.ndarray, prompt: str = "", num_inference_steps: int = 15,
                guidance_scale: float = 4.0, seed: int = 0,
                capture_layers: list[str] | None = None,
                site: str = "attn1") -> Iterator[StepState]:
    """Yield a StepState per step of the schedule: the image noised to that step's level (as
    `unet_input`, one half), the clean latents (`x0_latents`) and the captured activations of
    the conditional half (float32, (HW, C))."""
    family = family_of(pipe)
    if family.denoiser_attribute != "unet":
        raise ValueError(f"probing a given image is built for the UNet families (SD 1.x / "
                         f"2.x, SDXL); this model is {family.label}")
    unet, scheduler = family.denoiser(pipe), pipe.scheduler
    layers = resolve_layers(unet, capture_layers)
    clean = image_latents(pipe, image)
    cond = family.encode(pipe, prompt, guidance_scale, None, family.default_size(pipe))
    cond.prompt_embeds = cond.prompt_embeds.to(unet.dtype)
    do_cfg = cond.do_cfg
    scheduler.set_timesteps(num_inference_steps, device=clean.device)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(int(seed)))
    noise = noise.to(clean.device, clean.dtype)
    for i, t in enumerate(scheduler.timesteps):
        noisy = scheduler.add_noise(clean, noise, t.reshape(1))
        model_input = _model_input(scheduler, torch.cat([noisy] * 2) if do_cfg else noisy, t)
        with capture(unet, layers, conditional_only=do_cfg, site=site) as acts:
            family.predict(unet, model_input, t, cond)
        yield StepState(index=i, timestep=int(t), unet_input=model_input[-1:], latents=noisy,
                        x0_latents=clean, x0_image=None,
                        activations={k: v[0].float() for k, v in acts.items()})
