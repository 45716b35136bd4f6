"""A control for depth probes that needs no UNet at all: a linear probe of the UNet's input latent.

    >>> maps = cross_fitted_depth(unet_inputs, depth, layout["depth"], "nearest")
    >>> maps[step]                     # (N, H, W) depth of each image, by a probe that never saw it

At late steps the UNet's input is nearly the clean latent, whose 4 channels already show the
image: a probe of a UNet with permuted weights (the paper's control) can pass that through. This
probe reads the input latent directly, each latent pixel with its 3x3 neighbours (36 features
and a constant), plus the same image-blind layout offset as the depth probes. It is fitted with
cross-fitting on the evaluation images themselves: the images are split in two folds and each
fold is read by a probe fitted on the other, so every image is scored by a probe that never saw
it. If it reads as much depth beyond the layout as the permuted UNet's probe, that control's
score is what the input latent carries, not what random UNet features add.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .fitting import fit_ridge
from .readout import area_means, upsample_tokens

PATCH = 3  # latent pixels a side of each token's neighbourhood
FOLDS = 2


def latent_features(unet_input: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """(N, 4, h, w) latents -> (N, h*w, 4 * patch**2 + 1) float32: each latent pixel's
    neighbourhood (edges replicated) and a constant 1."""
    x = unet_input.float()
    n, _, h, w = x.shape
    pad = patch // 2
    cols = F.unfold(F.pad(x, (pad,) * 4, mode="replicate"), patch)  # (N, 4*patch^2, h*w)
    return torch.cat([cols.transpose(1, 2), torch.ones(n, h * w, 1)], dim=-1)


def cross_fitted_depth(unet_inputs: dict[int, torch.Tensor], depth: np.ndarray,
                       layout_depth: np.ndarray, readout: str = "nearest", lam: float = 1e-3,
                       folds: int = FOLDS) -> dict[int, np.ndarray]:
    """Per step: step -> (N, H, W) depth maps of the latent probe, each image's from a ridge
    probe fitted on the other folds (image i is in fold i % folds). unet_inputs: step ->
    (N, 4, h, w); depth: (N, H, W) labels; layout_depth: (H, W) the fixed layout map, whose
    means on the latent grid are the offset added to every output."""
    n, H, W = depth.shape
    if n < folds:
        raise ValueError(f"cross-fitting needs at least {folds} images, got {n}")
    fold = np.arange(n) % folds
    out = {}
    for step, x in unet_inputs.items():
        h, w = x.shape[-2:]
        offset = area_means(layout_depth, (h, w))  # (h*w,)
        targets = area_means(depth, (h, w)).reshape(n, h * w) - offset  # (N, h*w)
        feats = latent_features(x)  # (N, h*w, k)
        maps = np.zeros((n, H, W), np.float32)
        for f in range(folds):
            train, test = fold != f, fold == f
            weight = fit_ridge(feats[train].reshape(-1, feats.shape[-1]),
                               targets[train].reshape(-1), lam)  # (1, k)
            tokens = feats[test] @ weight.T + offset.reshape(1, -1, 1)  # (n_f, h*w, 1)
            up = upsample_tokens(tokens, (h, w), (H, W), readout)
            maps[test] = up.reshape(-1, H, W).numpy()
        out[step] = maps
    return out
