"""What a model family changes in the denoising loop, and what stays the same.

    >>> family = family_of(pipe)                    # StableDiffusion(), SDXL(), SD3(), ...
    >>> cond = family.encode(pipe, prompt, guidance_scale=7.5, negative_prompt=None,
    ...                      size=(512, 512))
    >>> noise_pred = family.predict(family.denoiser(pipe), model_input, t, cond)

Every family follows its stock diffusers pipeline call for call (the same encoder calls, the
same latents, the same timesteps and denoiser arguments), so a run without an edit equals the
stock pipeline for the same seed. Latents have two layouts: the family's own (`native`, what
its denoiser and scheduler see; FLUX packs 2x2 patches into tokens) and the grid
(1, C, h, w) that previews, latent edits and probes' maps use.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor


@dataclass
class Conditioning:
    """What every denoiser call of one run takes besides the latents and the timestep."""
    prompt_embeds: torch.Tensor  # (B, L, D): [uncond, cond] under guidance, else (1, L, D)
    do_cfg: bool  # classifier-free guidance: a batch of [uncond, cond]
    extra: dict = field(default_factory=dict)  # the family's further denoiser arguments

    def conditional_half(self) -> "Conditioning":
        """The conditional row alone (what probes read), every batched argument cut to it."""
        if not self.do_cfg:
            return self
        return Conditioning(self.prompt_embeds[-1:], False, _last_rows(self.extra))


def _last_rows(value):
    """A batch's last row, through dicts; unbatched values and None unchanged."""
    if isinstance(value, dict):
        return {k: _last_rows(v) for k, v in value.items()}
    if torch.is_tensor(value) and value.ndim >= 1 and value.shape[0] == 2:
        return value[-1:]
    return value


class Family:
    """Stable Diffusion 1.x / 2.x: a UNet over (1, 4, h, w) latents, epsilon or v-prediction
    (the scheduler reads `prediction_type`), any discrete scheduler. The other families
    override what differs."""
    name = "sd"
    label = "Stable Diffusion 1.x / 2.x"
    denoiser_attribute = "unet"
    uses_graph = True  # its plain UNet call can be replayed from a CUDA graph
    word_maps = True  # cross-attention to the prompt's tokens, read as per-word maps

    def denoiser(self, pipe) -> torch.nn.Module:
        return getattr(pipe, self.denoiser_attribute)

    def default_size(self, pipe) -> tuple[int, int]:
        """(height, width) in pixels the pipeline makes when none is given: its own
        `default_sample_size` where it has one (SDXL, SD3, FLUX), else its denoiser's."""
        sample = getattr(pipe, "default_sample_size", None)
        if sample is None:
            sample = self.denoiser(pipe).config.sample_size
        return sample * pipe.vae_scale_factor, sample * pipe.vae_scale_factor

    def latent_channels(self, pipe) -> int:
        return self.denoiser(pipe).config.in_channels

    def max_sequence_length(self, pipe) -> int | None:
        """The text length the pipeline's __call__ pads to by default (T5 families; PixArt-
        Sigma's differs from Alpha's), None where it has no such argument."""
        import inspect

        parameter = inspect.signature(pipe.__call__).parameters.get("max_sequence_length")
        return None if parameter is None else parameter.default

    def stock_arguments(self, pipe) -> dict:
        """What a stock `pipe(...)` call needs besides the prompt to make the image our loop
        makes with its defaults (nothing for the UNet families)."""
        return {}

    def encode(self, pipe, prompt: str, guidance_scale: float, negative_prompt: str | None,
               size: tuple[int, int]) -> Conditioning:
        """The prompt as the pipeline encodes it: (2, L, D) [uncond, cond] under guidance."""
        do_cfg = guidance_scale > 1.0 and self.denoiser(pipe).config.time_cond_proj_dim is None
        cond, uncond = pipe.encode_prompt(prompt, pipe._execution_device, 1, do_cfg,
                                          negative_prompt)
        return Conditioning(torch.cat([uncond, cond]) if do_cfg else cond, do_cfg)

    def initial_latents(self, pipe, size: tuple[int, int], generator, latents, dtype,
                        scheduler) -> torch.Tensor:
        """The latents entering the first step, in the native layout: drawn (or given) and
        scaled by this run's scheduler's initial sigma, as `prepare_latents` does."""
        h, w = size
        shape = (1, self.latent_channels(pipe), h // pipe.vae_scale_factor,
                 w // pipe.vae_scale_factor)
        device = pipe._execution_device
        drawn = (randn_tensor(shape, generator=generator, device=device, dtype=dtype)
                 if latents is None else latents.to(device))
        return drawn * scheduler.init_noise_sigma

    def set_timesteps(self, pipe, scheduler, num_inference_steps: int,
                      latent_hw: tuple[int, int]) -> None:
        """Set the run's timesteps, before its initial latents are drawn (they are scaled by
        the scheduler's initial sigma, which some spacings change). `latent_hw`: the latent
        grid's (h, w), which flow matching's shift depends on."""
        scheduler.set_timesteps(num_inference_steps, device=pipe._execution_device)

    def timesteps_for(self, pipe, scheduler, num_inference_steps: int) -> torch.Tensor:
        """The timesteps a run at the default size takes, set on a copy of `scheduler`."""
        import copy

        scheduler = copy.deepcopy(scheduler)
        self.set_timesteps(pipe, scheduler, num_inference_steps,
                           self.latent_size(pipe, self.default_size(pipe)))
        return scheduler.timesteps

    def scale_input(self, scheduler, model_input: torch.Tensor, t) -> torch.Tensor:
        return scheduler.scale_model_input(model_input, t)

    def predict(self, denoiser, model_input: torch.Tensor, t, cond: Conditioning):
        """The denoiser's output for the (B, ...) native `model_input` at t (both halves at
        once under guidance)."""
        return denoiser(model_input, t, encoder_hidden_states=cond.prompt_embeds,
                        return_dict=False, **cond.extra)[0]

    def step_arguments(self, scheduler, generator) -> dict:
        """The pipeline's extra `scheduler.step` arguments (eta = 0, the generator) for the
        ones this scheduler takes."""
        accepted = inspect.signature(scheduler.step).parameters
        return {k: v for k, v in (("eta", 0.0), ("generator", generator)) if k in accepted}

    def latent_size(self, pipe, size: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the latent grid for an image of `size` (H, W) pixels."""
        return size[0] // pipe.vae_scale_factor, size[1] // pipe.vae_scale_factor

    def to_grid(self, native: torch.Tensor, latent_hw: tuple[int, int]) -> torch.Tensor:
        """Native latents -> (B, C, h, w)."""
        return native

    def from_grid(self, grid: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> native latents."""
        return grid

    def predicted_x0(self, scheduler, model_input, model_output, t, sample):
        """x0 from the denoiser's output at t for schedulers whose step() does not report it:
        x_t = sqrt(a) x0 + sqrt(1 - a) noise with a = alphas_cumprod[t] (sigma schedulers
        scale their inputs to it); None where the scheduler has no such schedule."""
        alphas = getattr(scheduler, "alphas_cumprod", None)
        kind = scheduler.config.get("prediction_type", "epsilon")
        if alphas is None or kind not in ("epsilon", "v_prediction"):
            return None
        a = alphas[int(t)].to(model_input.device, torch.float32)
        x, e = model_input.float(), model_output.float()
        x0 = ((x - (1 - a).sqrt() * e) / a.sqrt() if kind == "epsilon"
              else a.sqrt() * x - (1 - a).sqrt() * e)
        return x0.to(model_output.dtype)

    def vae_input(self, pipe, grid: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w) grid latents -> what the VAE decodes (scaling, and shift where the
        VAE has one)."""
        shift = getattr(pipe.vae.config, "shift_factor", None) or 0.0
        out = grid / pipe.vae.config.scaling_factor
        return out + shift if shift else out

    @torch.no_grad()
    def decode(self, pipe, grid: torch.Tensor) -> np.ndarray:
        """(1, C, h, w) grid latents -> (H, W, 3) uint8, as the pipeline's 'np' output rounds."""
        vae = pipe.vae  # latents kept on the host between calls go back to the VAE's device
        image = vae.decode(self.vae_input(pipe, grid).to(vae.device, vae.dtype),
                           return_dict=False)[0]
        image = (image / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).float().cpu().numpy()
        return (image * 255 + 0.5).astype(np.uint8)
