"""Did an edit work? Label the unedited and the edited image and compare both with the target.

    >>> s = score_move(labeler, before, after, target)     # Target from targets.move_mask
    >>> s["dice_after"] - s["dice_before"], s["shift_x"]
    >>> d = score_depth(labeler, before, after, mask, region)
    >>> d["depth_change"]            # > 0: the object came nearer (read where it is after the edit)

Images are (H, W, 3) uint8. The labeler is the one that labels the probes' training images.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..metrics import dice
from .targets import Target, centroid


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


def score_move(labeler, before: np.ndarray, after: np.ndarray, target: Target) -> dict:
    """Saliency edit: Dice with the target mask before/after, and the labelled object's
    centroid shift (pixels, x right and y down)."""
    _, sal = labeler(np.stack([before, after]))
    m0, m1 = sal[0] > 0.5, sal[1] > 0.5
    (y0, x0), (y1, x1) = centroid(m0), centroid(m1)
    return {
        "dice_before": dice(m0, target.map), "dice_after": dice(m1, target.map),
        "shift_x": x1 - x0, "shift_y": y1 - y0,
        "area_before": int(m0.sum()), "area_after": int(m1.sum()),
        "outside_change": outside_change(before, after, target.region | m0 | m1),
    }


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


def score_depth(labeler, before: np.ndarray, after: np.ndarray, mask: np.ndarray,
                region: np.ndarray, others: np.ndarray | None = None) -> dict:
    """Depth edit: the labelled (z-normalised inverse) depth of the object where it was
    (`mask`) and where it is after the edit (the labelled object mask of the edited image,
    less `others`, the pixels of other objects before); depth_change > 0: it came nearer."""
    depth, sal = labeler(np.stack([before, after]))
    mask = np.asarray(mask, bool)
    moved = sal[1] > 0.5
    if others is not None:
        moved &= ~np.asarray(others, bool)
    d0, d1 = object_depth_change(depth[0], mask, depth[1], moved)
    return {"depth_before": d0, "depth_after": d1, "depth_change": d1 - d0,
            "area_ratio": area_ratio(mask, moved),
            "outside_change": outside_change(before, after, region | mask | moved)}
