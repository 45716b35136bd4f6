"""Model families: which one a pipeline is, and its denoiser.

    >>> family_of(pipe).name            # "sd", "sdxl", "pixart", "sd3" or "flux"
    >>> denoiser_of(pipe)               # pipe.unet or pipe.transformer
"""

from __future__ import annotations

import torch

from .base import Conditioning, Family
from .dit import SD3, Flux, PixArt
from .unet import StableDiffusionXL

FAMILIES = {f.name: f for f in (Family(), StableDiffusionXL(), PixArt(), SD3(), Flux())}
# the denoiser class of each transformer family
_TRANSFORMERS = {"PixArtTransformer2DModel": "pixart", "SD3Transformer2DModel": "sd3",
                 "FluxTransformer2DModel": "flux"}

__all__ = ["Conditioning", "Family", "FAMILIES", "family_of", "denoiser_of"]


def family_of(pipe) -> Family:
    """The family of a pipeline, read from its denoiser: a UNet with text-time embeddings is
    SDXL, another UNet is SD 1.x / 2.x, a transformer is named by its class."""
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        is_xl = unet.config.get("addition_embed_type", None) == "text_time"
        return FAMILIES["sdxl" if is_xl else "sd"]
    transformer = getattr(pipe, "transformer", None)
    name = _TRANSFORMERS.get(type(transformer).__name__)
    if name is None:
        raise ValueError(f"no model family for a pipeline with denoiser "
                         f"{type(transformer).__name__}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def denoiser_of(pipe) -> torch.nn.Module:
    """The pipeline's UNet or transformer."""
    return family_of(pipe).denoiser(pipe)
