"""The measures an edit's outcome is built from (`outcome.outcome` combines them).

    >>> outside_change(before, after, region)          # mean |pixel change| outside the edit
    >>> object_depth_change(d0, m0, d1, m1)            # (depth before, after) where the object is
    >>> area_ratio(m0, m1)                             # the object's area after / before

Images are (H, W, 3) uint8; masks (H, W) bool; depth z-normalised inverse depth.
"""

from __future__ import annotations

import cv2
import numpy as np


def outside_change(before: np.ndarray, after: np.ndarray, region: np.ndarray,
                   margin: int = 3) -> float:
    """Mean absolute pixel change (0-1) outside `region` grown by `margin` pixels (soft edges and
    the object's own shadow are not counted as collateral change)."""
    grown = cv2.dilate(region.astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8)) > 0
    keep = ~grown
    if not keep.any():
        return 0.0
    diff = np.abs(after.astype(np.float32) - before.astype(np.float32)).mean(-1) / 255
    return float(diff[keep].mean())


def object_depth_change(depth_before: np.ndarray, mask_before: np.ndarray,
                        depth_after: np.ndarray, mask_after: np.ndarray) -> tuple[float, float]:
    """(depth before, depth after): the mean labelled depth over the object where it was before
    and where it is after the edit (NaN where a mask is empty). Reading both inside the old mask
    would score anything that moves or shrinks the object as 'farther'."""
    d0 = float(depth_before[mask_before].mean()) if mask_before.any() else float("nan")
    d1 = float(depth_after[mask_after].mean()) if mask_after.any() else float("nan")
    return d0, d1


def area_ratio(mask_before: np.ndarray, mask_after: np.ndarray) -> float:
    """The object's area after an edit over its area before (before counted as at least 1)."""
    return float(np.asarray(mask_after).sum() / max(np.asarray(mask_before).sum(), 1))
