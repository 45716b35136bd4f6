"""Reading per-token probe outputs as pixel maps.

    >>> y = apply_probe(weight, acts)                             # (HW, out)
    >>> depth = to_map(y[:, 0], (16, 16), 64, readout="nearest")  # (64, 64)

A probe is applied to every token of a layer's (HW, C) activation and reshaped to the layer's
grid; the grid of outputs is then upsampled to pixels, by a probe set's `readout`:
- "nearest", the paper's: each token paints its square patch. Fitting at token resolution
  against the mean label of each token's patch is exactly the paper's full-resolution loss for
  squared error and for cross-entropy, and much cheaper.
- "bilinear": the outputs (logits, not probabilities) are interpolated between token centres.
  The probe is the same bias-free per-token linear map; since interpolation is linear too, it is
  fitted on bilinearly upsampled activations (at twice the grid) against area-averaged labels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .hooks import token_grid

READOUTS = ("nearest", "bilinear")  # how a grid of probe outputs becomes a pixel map


def apply_probe(weight: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """(out, C) weight, (HW, C) activations -> (HW, out) outputs, computed in float32."""
    return activations.float() @ weight.to(activations.device, torch.float32).T


def upsample_tokens(values: torch.Tensor, latent_hw: tuple[int, int], size: tuple[int, int],
                    readout: str = "nearest") -> torch.Tensor:
    """(N, HW, k) per-token values -> (N, size[0] * size[1], k), float32, upsampled by `readout`
    (bilinear between token centres, edges clamped: align_corners=False)."""
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; readouts are {READOUTS}")
    n, hw, k = values.shape
    h, w = token_grid(hw, latent_hw)
    grid = values.float().reshape(n, h, w, k).permute(0, 3, 1, 2)  # (N, k, h, w)
    if tuple(size) != (h, w):
        extra = {} if readout == "nearest" else {"align_corners": False}
        grid = F.interpolate(grid, size=tuple(size), mode=readout, **extra)
    return grid.permute(0, 2, 3, 1).reshape(n, size[0] * size[1], k)


@lru_cache(maxsize=64)
def interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of 1-D linear interpolation (align_corners=False, as in
    upsample_tokens): bilinear upsampling of a (h, w) grid is rows @ grid @ cols.T."""
    eye = torch.eye(n_in)[None]  # (1, n_in channels, n_in samples)
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[0].T.numpy().copy()


def to_map(values: torch.Tensor, latent_hw: tuple[int, int], out_size: int,
           readout: str = "nearest") -> np.ndarray:
    """(HW,) per-token values -> (out_size, out_size) map, upsampled by `readout`."""
    up = upsample_tokens(values.reshape(1, -1, 1).cpu(), latent_hw, (out_size, out_size), readout)
    return up.reshape(out_size, out_size).numpy()


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, without overflow warnings for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def area_means(labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) or (H, W) labels -> (N * h * w,) float32 means over each cell of an (h, w) grid
    (adaptive average pooling: any H, W)."""
    t = torch.as_tensor(np.asarray(labels, np.float32)).reshape(-1, 1, *np.shape(labels)[-2:])
    return F.adaptive_avg_pool2d(t, tuple(size)).reshape(-1)


def patch_means(label: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) label -> (h*w,) mean of each token's patch (H, W multiples of h, w)."""
    H, W = label.shape
    h, w = grid_hw
    return label.reshape(h, H // h, w, W // w).mean(axis=(1, 3)).reshape(-1)


def token_maps(tokens: torch.Tensor, latent_hw: tuple[int, int], out_size: int,
               readout: str = "nearest") -> tuple[np.ndarray, np.ndarray]:
    """(HW, 3) [depth, background logit, foreground logit] token outputs -> (depth (S, S),
    P(object) (S, S)) at full resolution, on the host: the same numbers as to_map of the depth
    and sigmoid of to_map of the logit margin."""
    y = tokens.detach().float().cpu()
    h, w = token_grid(y.shape[0], latent_hw)
    if readout == "nearest" and (out_size % h or out_size % w):
        f = y[:, 2] - y[:, 1]  # no whole-pixel patches: the general path
        return (to_map(y[:, 0], latent_hw, out_size, "nearest"),
                sigmoid(to_map(f, latent_hw, out_size, "nearest")))
    y = y.numpy().reshape(h, w, 3)
    d, f = y[..., 0], y[..., 2] - y[..., 1]  # (h, w) depth, foreground logit margin
    if readout == "nearest":
        d, f = (g.repeat(out_size // h, 0).repeat(out_size // w, 1) for g in (d, f))
    else:  # separable bilinear interpolation, rows then columns
        rows, cols = interpolation_matrix(h, out_size), interpolation_matrix(w, out_size)
        d, f = rows @ d @ cols.T, rows @ f @ cols.T
    return d, sigmoid(f)


def token_pixel(tokens: torch.Tensor, latent_hw: tuple[int, int], out_size: int,
                pixel: tuple[int, int], readout: str = "nearest") -> tuple[float, float]:
    """(depth, P(object)) at pixel (y, x) of token_maps' maps, from (HW, 3) token outputs,
    without making the maps."""
    y, x = pixel
    g = tokens.detach().float().cpu()
    h, w = token_grid(g.shape[0], latent_hw)
    g = g.numpy().reshape(h, w, 3)
    if readout == "nearest":
        v = g[y * h // out_size, x * w // out_size]
    else:
        rows, cols = interpolation_matrix(h, out_size), interpolation_matrix(w, out_size)
        v = np.einsum("i,ijk,j->k", rows[y], g, cols[x])
    return float(v[0]), float(sigmoid(v[2] - v[1]))
