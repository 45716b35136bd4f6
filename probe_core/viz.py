"""Pure image helpers for display: no model code here.

    >>> big = upscale(image, 4)   # (64, 64, 3) uint8 -> (256, 256, 3), nearest neighbour
"""

from __future__ import annotations

import numpy as np


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of an (H, W) or (H, W, C) array by an integer factor."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
