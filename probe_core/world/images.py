"""Image conversions and the blur augmentation shared by the world's trainers.

    >>> x = to_tensor(images)              # (N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]
    >>> soft = random_blur(images, rng, max_sigma=1.2)
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1


def random_blur(images: np.ndarray, rng: np.random.Generator, max_sigma: float) -> np.ndarray:
    """A copy of (N, H, W, 3) uint8 images, each Gaussian-blurred with a sigma drawn uniformly
    from [0, max_sigma) (left sharp below 0.3): the softer look of a small generator's images."""
    out = images.copy()
    for i in range(len(out)):
        sigma = rng.uniform(0, max_sigma)
        if sigma > 0.3:
            out[i] = cv2.GaussianBlur(out[i], (0, 0), sigma)
    return out
