"""Per-step previews of the x0 prediction, cheaper than the VAE decode at SD size.

    >>> preview = choose_preview(pipe)            # "auto": what suits the model
    >>> preview.name, preview(x0_latents).shape   # 'linear latent->RGB', (64, 64, 3) uint8

- `DecodePreview`: the VAE decode (exact; cheap for the embedded model's small latents).
- `TinyAutoencoderPreview`: TAESD (diffusers' `AutoencoderTiny`) for the model's VAE (taesd for
  SD 1.x / 2.x and PixArt-alpha, taesdxl, taesd3, taef1), when its weights are already in the
  local Hugging Face cache; nothing is downloaded.
- `LinearPreview`: each latent pixel mapped to RGB by a fixed affine map (C -> 3), at latent
  resolution (64x64 for SD). For the four published VAEs the factors community previews use;
  for another VAE, `fit_linear_preview` finds them by least squares from images and latents.

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
# The other published VAEs, known by (latent channels, scaling factor, shift factor):
# (factors (C, 3), bias (3,)) on the denoiser's latents, and the TAESD that decodes them.
VAE_KINDS = {
    (4, 0.18215, 0.0): "sd", (4, 0.13025, 0.0): "sdxl", (16, 1.5305, 0.0609): "sd3",
    (16, 0.3611, 0.1159): "flux"}
LATENT_RGB = {
    "sd": (SD_V1_LATENT_RGB, (0.0, 0.0, 0.0)),
    "sdxl": (((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
              (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188)),
             (0.1084, -0.0175, -0.0011)),
    "sd3": (((-0.0922, -0.0175, 0.0749), (0.0311, 0.0633, 0.0954), (0.1994, 0.0927, 0.0458),
             (0.0856, 0.0339, 0.0902), (0.0587, 0.0272, -0.0496), (-0.0006, 0.1104, 0.0309),
             (0.0978, 0.0306, 0.0427), (-0.0042, 0.1038, 0.1358), (-0.0194, 0.0020, 0.0669),
             (-0.0488, 0.0130, -0.0268), (0.0922, 0.0988, 0.0951), (-0.0278, 0.0524, -0.0542),
             (0.0332, 0.0456, 0.0895), (-0.0069, -0.0030, -0.0810),
             (-0.0596, -0.0465, -0.0293), (-0.1448, -0.1463, -0.1189)),
            (0.2394, 0.2135, 0.1925)),
    "flux": (((-0.0346, 0.0244, 0.0681), (0.0034, 0.0210, 0.0687), (0.0275, -0.0668, -0.0433),
              (-0.0174, 0.0160, 0.0617), (0.0859, 0.0721, 0.0329), (0.0004, 0.0383, 0.0115),
              (0.0405, 0.0861, 0.0915), (-0.0236, -0.0185, -0.0259), (-0.0245, 0.0250, 0.1180),
              (0.1008, 0.0755, -0.0421), (-0.0515, 0.0201, 0.0011), (0.0428, -0.0012, -0.0036),
              (0.0817, 0.0765, 0.0749), (-0.1264, -0.0522, -0.1103),
              (-0.0280, -0.0881, -0.0499), (-0.1262, -0.0982, -0.0778)),
             (-0.0329, -0.0718, -0.0851)),
}
TAESD = {"sd": TAESD_SD_V1, "sdxl": "madebyollin/taesdxl", "sd3": "madebyollin/taesd3",
         "flux": "madebyollin/taef1"}
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
        self.factors = torch.as_tensor(np.asarray(factors, np.float32))  # (C, 3)
        self.bias = torch.as_tensor(np.asarray(bias, np.float32))  # (3,)
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def rgb(self, x0_latents: torch.Tensor) -> torch.Tensor:
        """(1, C, h, w) -> (1, 3, h, w) in about [-1, 1]."""
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

    @torch.no_grad()
    def __call__(self, x0_latents: torch.Tensor) -> np.ndarray:
        """(1, C, h, w) x0 on the grid -> (H, W, 3) uint8, the latents scaled by the tiny
        decoder's own config as a pipeline does when it is swapped in for the VAE (taesd and
        taesdxl take the denoiser's latents as they are; taesd3 and taef1 unscale and shift)."""
        config = self.vae.config
        raw = x0_latents / config.scaling_factor + (config.get("shift_factor", 0.0) or 0.0)
        raw = raw.to(self.vae.device, self.vae.dtype)
        return to_uint8(self.vae.decode(raw, return_dict=False)[0])


def vae_kind(pipe) -> str | None:
    """"sd", "sdxl", "sd3" or "flux" for those published VAEs (SD 2.x and PixArt-alpha share
    SD's, PixArt-Sigma SDXL's), else None."""
    config = pipe.vae.config
    if tuple(config.block_out_channels) != (128, 256, 512, 512):
        return None
    for (channels, scaling, shift), kind in VAE_KINDS.items():
        if (config.latent_channels == channels and abs(config.scaling_factor - scaling) < 1e-6
                and abs((config.get("shift_factor", None) or 0.0) - shift) < 1e-6):
            return kind
    return None


def is_sd_v1_vae(pipe) -> bool:
    return vae_kind(pipe) == "sd"


def latent_side(pipe) -> int:
    """The side of the pipeline's default latent grid."""
    family = family_of(pipe)
    return family.latent_size(pipe, family.default_size(pipe))[0]


def choose_preview(pipe, kind: str = "auto", linear=None):
    """A preview for `pipe`. auto: the full decode for small latents (at most SMALL_LATENT a
    side); else its VAE's TAESD when cached, else the linear map (`linear` = (factors, bias),
    or the published one for its VAE), else the full decode. Asking for one that cannot be
    had raises ValueError."""
    if kind not in PREVIEWS:
        raise ValueError(f"unknown preview {kind!r}; previews are {PREVIEWS}")
    if kind == "decode" or (kind == "auto" and latent_side(pipe) <= SMALL_LATENT):
        return DecodePreview(pipe)
    known = vae_kind(pipe)
    if kind == "taesd" and known is None:
        raise ValueError("TAESD decodes the SD 1.x / 2.x, SDXL, SD3 and FLUX VAEs' latents; "
                         "this model has another VAE")
    if kind in ("auto", "taesd") and known is not None:
        try:
            return TinyAutoencoderPreview(pipe, TAESD[known])
        except (OSError, ValueError, EnvironmentError) as err:
            if kind == "taesd":
                raise ValueError(f"{TAESD[known]} is not in the local cache "
                                 f"({type(err).__name__})") from None
    if linear is None and known is not None:
        linear = LATENT_RGB[known]
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
