"""The UNet families beyond SD 1.x / 2.x: SDXL (two text encoders, pooled text and size ids).

    >>> cond = StableDiffusionXL().encode(pipe, prompt, 5.0, None, (1024, 1024))
    >>> cond.extra["added_cond_kwargs"]["time_ids"].shape      # (2, 6) under guidance

SD 2.x 768 (v-prediction) needs nothing of its own: its scheduler's `prediction_type` makes
every step and every x0 preview right (`Family`).
"""

from __future__ import annotations

import torch

from .base import Conditioning, Family


class StableDiffusionXL(Family):
    """`StableDiffusionXLPipeline`: prompt embeddings from both text encoders side by side, the
    second one's pooled output and the (original size, crop, target size) ids passed to the
    UNet as `added_cond_kwargs`, as the pipeline does with its default size arguments."""
    name = "sdxl"
    label = "Stable Diffusion XL"
    uses_graph = False  # the graph replays a call without added_cond_kwargs

    def encode(self, pipe, prompt: str, guidance_scale: float, negative_prompt: str | None,
               size: tuple[int, int]) -> Conditioning:
        do_cfg = guidance_scale > 1.0 and self.denoiser(pipe).config.time_cond_proj_dim is None
        device = pipe._execution_device
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
            prompt, None, device, 1, do_cfg, negative_prompt)
        if pipe.text_encoder_2 is None:
            projection_dim = int(pooled.shape[-1])
        else:
            projection_dim = pipe.text_encoder_2.config.projection_dim
        time_ids = pipe._get_add_time_ids(tuple(size), (0, 0), tuple(size), dtype=embeds.dtype,
                                          text_encoder_projection_dim=projection_dim)
        if do_cfg:
            embeds = torch.cat([negative, embeds])
            pooled = torch.cat([negative_pooled, pooled])
            time_ids = torch.cat([time_ids, time_ids])
        added = {"text_embeds": pooled.to(device), "time_ids": time_ids.to(device)}
        return Conditioning(embeds.to(device), do_cfg, {"added_cond_kwargs": added})

    def set_timesteps(self, pipe, scheduler, num_inference_steps, latent_hw) -> None:
        scheduler.set_timesteps(num_inference_steps, device=pipe._execution_device)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)  # as the pipeline does

    def vae_input(self, pipe, grid: torch.Tensor) -> torch.Tensor:
        """As the pipeline decodes: through the VAE's latents mean and std where it has them
        (SDXL derivatives), else unscaled."""
        config = pipe.vae.config
        mean, std = config.get("latents_mean", None), config.get("latents_std", None)
        if mean is None or std is None:
            return grid / config.scaling_factor
        shape = (1, len(mean), 1, 1)
        mean = torch.tensor(mean, device=grid.device, dtype=grid.dtype).view(shape)
        std = torch.tensor(std, device=grid.device, dtype=grid.dtype).view(shape)
        return grid * std / config.scaling_factor + mean

    @torch.no_grad()
    def decode(self, pipe, grid: torch.Tensor):
        """SDXL's VAE overflows in float16: decoded in float32 when its config says so (as the
        pipeline upcasts it), then put back."""
        vae = pipe.vae
        if not (vae.dtype == torch.float16 and vae.config.get("force_upcast", False)):
            return super().decode(pipe, grid)
        vae.to(dtype=torch.float32)
        try:
            return super().decode(pipe, grid.float())
        finally:
            vae.to(dtype=torch.float16)
