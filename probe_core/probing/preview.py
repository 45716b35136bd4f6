"""Per-step previews of the x0 prediction, cheaper than the VAE decode at SD size.

    >>> preview = choose_preview(pipe)            # "auto": what suits the model
    >>> preview.name, preview(x0_latents).shape   # 'linear latent->RGB', (64, 64, 3) uint8

- `DecodePreview`: the VAE decode (exact; cheap for the embedded model's small latents).
- `TinyAutoencoderPreview`: TAESD (diffusers' `AutoencoderTiny`), when its weights are already in
  the local Hugging Face cache; nothing is downloaded.
- `LinearPreview`: each latent pixel mapped to RGB by a fixed affine map (4 -> 3), at latent
  resolution (64x64 for SD). For SD v1.x the published factors; for another VAE,
  `fit_linear_preview` finds them by least squares from images and their latents.

A preview may be smaller than the image (figures scale it to the maps); the app shows the full
decode for the final image and for a step scrubbed to afterwards.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..families import family_of
from .denoise import decode_latents

# RGB in [-1, 1] from SD v1.x's scaled latents (x0 in the UNet's space): the factors that the
# community's live previews use (rows: latent channels 0-3; columns: R, G, B).
SD_V1_LATENT_RGB = ((0.3512, 0.2297, 0.3227),
                    (0.3250, 0.4974, 0.2350),
                    (-0.2829, 0.1762, 0.2721),
                    (-0.2120, -0.2616, -0.7177))
SD_V1_SCALING = 0.18215
TAESD_SD_V1 = "madebyollin/taesd"
PREVIEWS = ("auto", "decode", "taesd", "linear")
SMALL_LATENT = 32  # latents of at most this side decode cheaply: the full decode is the preview


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, rounded as the pipeline's 'np' output."""
    image = (image.float() / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0)
    return (image * 255 + 0.5).to(torch.uint8).cpu().numpy()


class DecodePreview:
    name = "full VAE decode"

    def __init__(self, pipe):
        self.pipe = pipe

    def __call__(self, x0_latents: torch.Tensor) -> np.ndarray:
        return decode_latents(self.pipe, x0_latents)


class LinearPreview:
    """x0 latents (1, 4, h, w) -> RGB by `factors` (4, 3) and `bias` (3,) on the latents' device,
    at latent resolution (h, w, 3) uint8: a few small kernels and one small copy to the host."""
    name = "linear latent->RGB"

    def __init__(self, factors, bias):
        self.factors = torch.as_tensor(np.asarray(factors, np.float32))  # (4, 3)
        self.bias = torch.as_tensor(np.asarray(bias, np.float32))  # (3,)
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def rgb(self, x0_latents: torch.Tensor) -> torch.Tensor:
        """(1, 4, h, w) -> (1, 3, h, w) in about [-1, 1]."""
        key = str(x0_latents.device)
        if key not in self._on:
            self._on[key] = (self.factors.to(x0_latents.device), self.bias.to(x0_latents.device))
        factors, bias = self._on[key]
        return torch.einsum("bchw,cr->brhw", x0_latents.float(), factors) + bias[:, None, None]

    def __call__(self, x0_latents: torch.Tensor) -> np.ndarray:
        return to_uint8(self.rgb(x0_latents))


class TinyAutoencoderPreview:
    """TAESD: a small decoder trained to mimic SD's VAE, taken from the local cache only."""
    name = "TAESD (tiny decoder)"

    def __init__(self, pipe, repo: str = TAESD_SD_V1):
        from diffusers import AutoencoderTiny

        self.vae = AutoencoderTiny.from_pretrained(repo, local_files_only=True,
                                                   use_safetensors=True)
        self.vae.to(pipe.vae.device, pipe.vae.dtype)
        self.scaling = pipe.vae.config.scaling_factor

    @torch.no_grad()
    def __call__(self, x0_latents: torch.Tensor) -> np.ndarray:
        image = self.vae.decode(x0_latents.to(self.vae.dtype) / self.scaling,
                                return_dict=False)[0]
        return to_uint8(image)


def is_sd_v1_vae(pipe) -> bool:
    config = pipe.vae.config
    return (config.latent_channels == 4 and abs(config.scaling_factor - SD_V1_SCALING) < 1e-6
            and tuple(config.block_out_channels) == (128, 256, 512, 512))


def latent_side(pipe) -> int:
    """The side of the pipeline's default latent grid."""
    family = family_of(pipe)
    return family.latent_size(pipe, family.default_size(pipe))[0]


def choose_preview(pipe, kind: str = "auto", linear=None):
    """A preview for `pipe`. auto: the full decode for small latents (at most SMALL_LATENT a
    side); else TAESD when cached, else the linear map (`linear` = (factors, bias), or SD v1.x's
    for its VAE), else the full decode. Asking for one that cannot be had raises ValueError."""
    if kind not in PREVIEWS:
        raise ValueError(f"unknown preview {kind!r}; previews are {PREVIEWS}")
    if kind == "decode" or (kind == "auto"
                            and latent_side(pipe) <= SMALL_LATENT):
        return DecodePreview(pipe)
    if kind == "taesd" and not is_sd_v1_vae(pipe):
        raise ValueError("TAESD decodes SD v1.x's VAE latents; this model has another VAE")
    if kind in ("auto", "taesd") and is_sd_v1_vae(pipe):
        try:
            return TinyAutoencoderPreview(pipe)
        except (OSError, ValueError, EnvironmentError) as err:
            if kind == "taesd":
                raise ValueError(f"TAESD is not in the local cache ({type(err).__name__})") from None
    if linear is None and is_sd_v1_vae(pipe):
        linear = (SD_V1_LATENT_RGB, (0.0, 0.0, 0.0))
    if linear is not None:
        return LinearPreview(*linear)
    if kind == "linear":
        raise ValueError("no linear latent->RGB map is known for this VAE; fit one with "
                         "fit_linear_preview")
    return DecodePreview(pipe)


@torch.no_grad()
def fit_linear_preview(pipe, images: np.ndarray, ridge: float = 1e-4):
    """Least-squares affine map from scaled latents to RGB: (N, H, W, 3) uint8 images are
    encoded by the pipe's VAE (latent means), the images area-averaged to the latent grid, and
    (factors (4, 3), bias (3,)) fitted to map each latent pixel to its patch's colour in
    [-1, 1]."""
    vae = pipe.vae
    x = torch.as_tensor(np.asarray(images, np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
    x = x.to(vae.device, vae.dtype)
    latents = vae.encode(x).latent_dist.mean * vae.config.scaling_factor  # (N, 4, h, w)
    h, w = latents.shape[-2:]
    rgb = F.adaptive_avg_pool2d(x.float(), (h, w))  # (N, 3, h, w)
    X = latents.float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).double().cpu()
    X = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], 1)  # (M, 5) with a bias column
    Y = rgb.permute(0, 2, 3, 1).reshape(-1, 3).double().cpu()
    gram = X.T @ X
    coef = torch.linalg.solve(gram + ridge * gram.diagonal().mean() * torch.eye(X.shape[1],
                                                                                 dtype=X.dtype),
                              X.T @ Y)  # (5, 3)
    return coef[:-1].float().numpy(), coef[-1].float().numpy()
