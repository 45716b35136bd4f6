"""A depth verdict that does not use the labeler: where an object stands, read from its colour.

    >>> reading = colour_depth(mask_before, mask_after)    # the colour segmenter's object masks
    >>> reading["colour_depth_verdict"]                    # +1 nearer, -1 farther, 0 unclear

In this world the camera stands above the floor and looks down at it, and every object rests on
the floor: an object that comes nearer sits lower in the frame (the floor point it touches
projects lower) and looks larger. So the bottom edge of the object's largest colour piece (its
lowest pixel row) and its area give a near/far verdict of their own: nearer when the bottom edge
went down by at least MIN_BOTTOM_SHIFT pixels and the area grew, farther when both went the
other way, unclear otherwise (the two cues disagree, or the edge moved less than that). Both
thresholds were set before any measurement; `bench/depth_scorers.py` checks the verdict on
render pairs whose object was moved nearer or farther in the world.
"""

from __future__ import annotations

import numpy as np

from .tracker import pieces

MIN_BOTTOM_SHIFT = 1.0  # pixels the bottom edge must move for a verdict


def bottom_edge(mask: np.ndarray | None) -> tuple[float, int] | None:
    """(lowest pixel row, area) of the largest 8-connected piece of `mask` ((H, W) bool), or
    None for no mask or an empty one."""
    if mask is None or not np.asarray(mask).any():
        return None
    found = pieces(np.asarray(mask, bool), min_pixels=1)
    largest = found[0]
    rows = np.nonzero(largest)[0]
    return float(rows.max()), int(largest.sum())


def colour_depth(before: np.ndarray | None, after: np.ndarray | None) -> dict:
    """The colour scorer's reading of an object's depth change between two masks: the bottom
    edge's shift (px, > 0: lower in the frame, nearer), the area ratio (after / before) and
    the verdict (+1 nearer, -1 farther, 0 unclear); every value None where either mask is
    missing or empty."""
    b0, b1 = bottom_edge(before), bottom_edge(after)
    if b0 is None or b1 is None:
        return {"colour_bottom_shift": None, "colour_area_ratio": None,
                "colour_depth_verdict": None}
    shift = b1[0] - b0[0]
    ratio = b1[1] / max(b0[1], 1)
    verdict = (1 if shift >= MIN_BOTTOM_SHIFT and ratio > 1 else
               -1 if shift <= -MIN_BOTTOM_SHIFT and ratio < 1 else 0)
    return {"colour_bottom_shift": shift, "colour_area_ratio": float(ratio),
            "colour_depth_verdict": verdict}
