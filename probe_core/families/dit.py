"""The transformer families: PixArt (cross-attention DiT), SD3 (joint text-image blocks, flow
matching) and FLUX (packed 2x2 latents, flow matching, no classifier-free guidance).

    >>> family = SD3()
    >>> cond = family.encode(pipe, prompt, 7.0, None, (1024, 1024))
    >>> cond.extra["pooled_projections"].shape                 # (2, 2048) under guidance

Each follows its stock pipeline's `__call__` with default arguments (max_sequence_length,
timestep shift, guidance embedding), so a run without an edit equals the stock pipeline.
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Conditioning, Family


def _flow_x0(scheduler, sample: torch.Tensor, velocity: torch.Tensor, t) -> torch.Tensor:
    """x0 of a flow-matching step: x_t = (1 - s) x0 + s noise and the model predicts
    v = noise - x0, so x0 = x_t - s v with s = t / num_train_timesteps."""
    sigma = float(t) / scheduler.config.num_train_timesteps
    return (sample.float() - sigma * velocity.float()).to(velocity.dtype)


def _begin_at_zero(scheduler) -> None:
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(0)


def _can_clean_captions() -> bool:
    """Whether PixArt's caption cleaning can run: its stock call asks for it and falls back to
    plain lower-casing (with a warning at every prompt) without Beautiful Soup and ftfy."""
    from diffusers.utils import is_bs4_available, is_ftfy_available

    return is_bs4_available() and is_ftfy_available()


def _shift(scheduler, image_seq_len: int, max_shift: float) -> float:
    """The timestep shift `mu` the pipelines compute for a number of image tokens."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    config = scheduler.config
    return calculate_shift(image_seq_len, config.get("base_image_seq_len", 256),
                           config.get("max_image_seq_len", 4096),
                           config.get("base_shift", 0.5), config.get("max_shift", max_shift))


class PixArt(Family):
    """`PixArtAlphaPipeline` / `PixArtSigmaPipeline`: a T5 encoder with its attention mask,
    a transformer predicting noise (and a learned variance, dropped), discrete schedulers."""
    name = "pixart"
    label = "PixArt"
    denoiser_attribute = "transformer"
    uses_graph = False

    def max_sequence_length(self, pipe) -> int | None:
        """The pipeline's default, at most the positions of a CLIP text encoder in T5's slot
        (the scene DiT's, whose calls pass that length)."""
        default = super().max_sequence_length(pipe)
        positions = getattr(pipe.text_encoder.config, "max_position_embeddings", None)
        return default if positions is None else min(default, positions)

    def stock_arguments(self, pipe) -> dict:
        """The text length and caption cleaning our loop uses (the stock call asks for cleaning
        and, without its libraries, warns at every prompt before lower-casing as we do), and no
        resolution binning for a transformer whose size has no bins (the pipeline knows only
        PixArt's 256, 512 and 1024)."""
        binned = self.denoiser(pipe).config.sample_size in (32, 64, 128)
        return {"max_sequence_length": self.max_sequence_length(pipe),
                "clean_caption": _can_clean_captions(),
                **({} if binned else {"use_resolution_binning": False})}

    def encode(self, pipe, prompt, guidance_scale, negative_prompt, size) -> Conditioning:
        do_cfg = guidance_scale > 1.0
        device = pipe._execution_device
        embeds, mask, negative, negative_mask = pipe.encode_prompt(
            prompt, do_cfg, negative_prompt=negative_prompt or "", num_images_per_prompt=1,
            device=device, clean_caption=_can_clean_captions(),
            max_sequence_length=self.max_sequence_length(pipe))
        if do_cfg:
            embeds, mask = torch.cat([negative, embeds]), torch.cat([negative_mask, mask])
        added = {"resolution": None, "aspect_ratio": None}
        if self.denoiser(pipe).config.sample_size == 128:  # PixArt at 1024: size conditioning
            h, w = size
            rows = 2 if do_cfg else 1
            added = {"resolution": torch.tensor([[h, w]] * rows, dtype=embeds.dtype,
                                                device=device),
                     "aspect_ratio": torch.tensor([[float(h / w)]] * rows, dtype=embeds.dtype,
                                                  device=device)}
        return Conditioning(embeds, do_cfg, {"encoder_attention_mask": mask,
                                             "added_cond_kwargs": added})

    def set_timesteps(self, pipe, scheduler, num_inference_steps, latent_hw) -> None:
        scheduler.set_timesteps(num_inference_steps, device=pipe._execution_device)
        _begin_at_zero(scheduler)

    def predict(self, denoiser, model_input, t, cond):
        timestep = t[None] if torch.is_tensor(t) and t.ndim == 0 else torch.as_tensor([t])
        timestep = timestep.to(model_input.device).expand(model_input.shape[0])
        out = denoiser(model_input, encoder_hidden_states=cond.prompt_embeds,
                       timestep=timestep, return_dict=False, **cond.extra)[0]
        if denoiser.config.out_channels // 2 == denoiser.config.in_channels:
            out = out.chunk(2, dim=1)[0]  # the learned variance is not used for sampling
        return out


class FlowMatching(Family):
    """What SD3 and FLUX share: a transformer with joint text-image attention (no
    cross-attention, so no per-word maps), flow matching with no input scaling, the
    scheduler's step taking no extra arguments, x0 = x_t - sigma v."""
    denoiser_attribute = "transformer"
    uses_graph = False
    word_maps = False

    def scale_input(self, scheduler, model_input, t):
        return model_input

    def step_arguments(self, scheduler, generator) -> dict:
        return {}

    def predicted_x0(self, scheduler, model_input, model_output, t, sample):
        return _flow_x0(scheduler, sample, model_output, t)


class SD3(FlowMatching):
    """`StableDiffusion3Pipeline`: two CLIP encoders and T5 (or zeros without it), pooled
    projections, joint text-image blocks, flow matching (Euler)."""
    name = "sd3"
    label = "Stable Diffusion 3"

    def encode(self, pipe, prompt, guidance_scale, negative_prompt, size) -> Conditioning:
        do_cfg = guidance_scale > 1.0
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, prompt_3=None, negative_prompt=negative_prompt,
            do_classifier_free_guidance=do_cfg, device=pipe._execution_device,
            num_images_per_prompt=1, max_sequence_length=self.max_sequence_length(pipe))
        if do_cfg:
            embeds, pooled = torch.cat([negative, embeds]), torch.cat([negative_pooled, pooled])
        return Conditioning(embeds, do_cfg, {"pooled_projections": pooled})

    def initial_latents(self, pipe, size, generator, latents, dtype, scheduler):
        h, w = size
        return pipe.prepare_latents(1, self.latent_channels(pipe), h, w, dtype,
                                    pipe._execution_device, generator, latents)

    def set_timesteps(self, pipe, scheduler, num_inference_steps, latent_hw) -> None:
        extra = {}
        if scheduler.config.get("use_dynamic_shifting", None):
            patch = self.denoiser(pipe).config.patch_size
            tokens = (latent_hw[0] // patch) * (latent_hw[1] // patch)
            extra["mu"] = _shift(scheduler, tokens, 1.16)
        scheduler.set_timesteps(num_inference_steps, device=pipe._execution_device, **extra)

    def predict(self, denoiser, model_input, t, cond):
        return denoiser(hidden_states=model_input, timestep=t.expand(model_input.shape[0]),
                        encoder_hidden_states=cond.prompt_embeds, return_dict=False,
                        **cond.extra)[0]


class Flux(FlowMatching):
    """`FluxPipeline`: CLIP (pooled) and T5, 2x2 patches packed into tokens, position ids,
    flow matching with a resolution-dependent shift, a guidance embedding where the model
    has one (dev) and no classifier-free guidance (schnell, dev)."""
    name = "flux"
    label = "FLUX.1"

    def latent_channels(self, pipe) -> int:
        return self.denoiser(pipe).config.in_channels // 4

    def _latent_size(self, pipe, size) -> tuple[int, int]:
        step = pipe.vae_scale_factor * 2
        return 2 * (int(size[0]) // step), 2 * (int(size[1]) // step)

    def encode(self, pipe, prompt, guidance_scale, negative_prompt, size) -> Conditioning:
        device = pipe._execution_device
        embeds, pooled, text_ids = pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=device, num_images_per_prompt=1,
            max_sequence_length=self.max_sequence_length(pipe))
        h, w = self._latent_size(pipe, size)
        image_ids = pipe._prepare_latent_image_ids(1, h // 2, w // 2, device, embeds.dtype)
        guidance = None
        if self.denoiser(pipe).config.guidance_embeds:
            guidance = torch.full([1], guidance_scale, device=device, dtype=torch.float32)
        return Conditioning(embeds, False, {"pooled_projections": pooled, "txt_ids": text_ids,
                                            "img_ids": image_ids, "guidance": guidance,
                                            "joint_attention_kwargs": {}})

    def initial_latents(self, pipe, size, generator, latents, dtype, scheduler):
        if latents is not None and latents.ndim == 4:  # given on the grid: pack them
            latents = self.from_grid(latents)
        packed, _ = pipe.prepare_latents(1, self.latent_channels(pipe), size[0], size[1],
                                         dtype, pipe._execution_device, generator, latents)
        return packed

    def set_timesteps(self, pipe, scheduler, num_inference_steps, latent_hw) -> None:
        n = num_inference_steps
        sigmas = (None if scheduler.config.get("use_flow_sigmas", False)
                  else np.linspace(1.0, 1 / n, n))
        mu = _shift(scheduler, (latent_hw[0] // 2) * (latent_hw[1] // 2), 1.15)  # packed tokens
        if sigmas is None:
            scheduler.set_timesteps(n, device=pipe._execution_device, mu=mu)
        else:
            scheduler.set_timesteps(sigmas=sigmas, device=pipe._execution_device, mu=mu)
        _begin_at_zero(scheduler)

    def predict(self, denoiser, model_input, t, cond):
        timestep = t.expand(model_input.shape[0]).to(model_input.dtype)
        extra = dict(cond.extra)
        if extra["guidance"] is not None:
            extra["guidance"] = extra["guidance"].expand(model_input.shape[0])
        return denoiser(hidden_states=model_input, timestep=timestep / 1000,
                        encoder_hidden_states=cond.prompt_embeds, return_dict=False,
                        **extra)[0]

    def latent_size(self, pipe, size) -> tuple[int, int]:
        return self._latent_size(pipe, size)

    def to_grid(self, native, latent_hw):
        """(B, hw/4, 4C) packed tokens -> (B, C, h, w), as the pipeline unpacks them."""
        (h, w), (b, _, c4) = latent_hw, native.shape
        grid = native.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
        return grid.reshape(b, c4 // 4, h, w)

    def from_grid(self, grid):
        """(B, C, h, w) -> (B, hw/4, 4C) packed tokens, as the pipeline packs them."""
        b, c, h, w = grid.shape
        packed = grid.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
        return packed.reshape(b, (h // 2) * (w // 2), c * 4)
