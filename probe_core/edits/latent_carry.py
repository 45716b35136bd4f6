"""Carry a moved object's latent pixels to where the move asks for them, as a permutation.

A guided move can start by translating the latent pixels under the object by the asked shift;
the pixels it uncovers take the values that the object's new place had. Every latent pixel
keeps exactly one value of the latent it came from (a permutation along the move), so at step 0
the result is still an exact draw of the starting noise: only where it sits changed.

    >>> src = carry_order(source, dx=2, dy=0)          # (h*w,) flat index: out = in[src]
    >>> moved = carry_latents(latents, source, 2, 0)   # (1, 4, h, w), the same values moved

Along the shift's direction every run of source pixels moves forward by the shift, and the
pixels the run leaves behind take the values of the pixels it now covers (each run's first
pixel pairs with the first pixel past its end, and so on). Source pixels whose new place would
leave the frame are not carried: they count as background, so a run carried onto them covers
them and they take a value from its start.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def carry_order(source: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """(h*w,) int64 flat indices `src`, a permutation: the carried grid is `flat[src]`. `source`
    (h, w) bool marks the pixels to move by (dx right, dy down) grid pixels."""
    source = np.asarray(source, bool)
    h, w = source.shape
    src = np.arange(h * w).reshape(h, w)
    if dx == 0 and dy == 0:
        return src.ravel()
    ys, xs = np.nonzero(source)
    inside = (ys + dy >= 0) & (ys + dy < h) & (xs + dx >= 0) & (xs + dx < w)
    moving = np.zeros_like(source)
    moving[ys[inside], xs[inside]] = True
    out = src.copy()
    for y, x in zip(*np.nonzero(moving)):
        out[y + dy, x + dx] = src[y, x]  # the run moves forward
        if y - dy < 0 or y - dy >= h or x - dx < 0 or x - dx >= w or not moving[y - dy, x - dx]:
            # (y, x) starts a run: it is left behind and takes the value of the first pixel
            # past the run's end, which the run now covers
            ry, rx = y + dy, x + dx
            while moving[ry, rx]:
                ry, rx = ry + dy, rx + dx
            out[y, x] = src[ry, rx]
    return out.ravel()


def latent_source(mask: np.ndarray, latent_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) image mask -> (h, w) bool: every latent pixel whose patch it touches."""
    m = torch.as_tensor(np.asarray(mask, np.float32))[None, None]
    return F.adaptive_max_pool2d(m, latent_hw)[0, 0].numpy() > 0


def carry_latents(latents: torch.Tensor, source: np.ndarray, dx: int, dy: int) -> torch.Tensor:
    """(1, C, h, w) latents with the pixels of `source` (h, w) carried by (dx, dy) grid pixels
    (`carry_order`); the same values, permuted."""
    b, c, h, w = latents.shape
    order = torch.as_tensor(carry_order(source, dx, dy), device=latents.device)
    return latents.reshape(b, c, h * w)[..., order].reshape(b, c, h, w)
