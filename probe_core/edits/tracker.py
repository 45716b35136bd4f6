"""Follow each object of a scene through an edit, so touching objects are not read as one.

Every labelled pixel of the edited image goes to the nearest object where that object is
expected to be: the edited object where the edit asked for it, each other object where it was
(less what the edited object now covers). Two objects that end up touching stay two objects; a
copy left behind, a piece torn off or an object that vanished shows as an object that is not in
one piece, or not where it was.

    >>> expected = expected_objects(target.map, scene.others)   # [edited, other 1, other 2, ...]
    >>> tracked = track(after_mask, expected)                    # the same list, after the edit
    >>> objects_kept(tracked, expected)                          # True: every object one piece,
    ...                                                          # the others mostly in place
    >>> faults(tracked, expected)                                # e.g. ['edited split']

Masks are (H, W) bool.
"""

from __future__ import annotations

import cv2
import numpy as np

from .colour_segmenter import MIN_PIXELS, components

MIN_RECALL = 0.5  # share of an other object's expected pixels still labelled for it to be kept


def pieces(mask: np.ndarray, min_pixels: int = MIN_PIXELS) -> list[np.ndarray]:
    """The mask's 8-connected pieces of at least `min_pixels`, largest first."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8),
                                                           connectivity=8)
    keep = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= min_pixels]
    keep.sort(key=lambda k: -stats[k, cv2.CC_STAT_AREA])
    return [labels == k for k in keep]


def expected_objects(edited: np.ndarray, others: np.ndarray) -> list[np.ndarray]:
    """[where the edited object should be] + [each other piece where it was, less what the
    edited object covers now]; an other piece hidden all but a speck is left out."""
    edited = np.asarray(edited, bool)
    visible = [p & ~edited for p in pieces(others)]
    return [edited] + [p for p in visible if p.sum() >= MIN_PIXELS]


def track(mask: np.ndarray, expected: list[np.ndarray]) -> list[np.ndarray]:
    """Each pixel of `mask` given to the expected object nearest to it (ties to the first, the
    edited one): one (H, W) bool mask per expected object."""
    mask = np.asarray(mask, bool)
    if not expected:
        return []
    distances = []
    for e in expected:
        if e.any():  # distance from each pixel to the nearest pixel of e
            d = cv2.distanceTransform((~e).astype(np.uint8), cv2.DIST_L2, 3)
        else:
            d = np.full(mask.shape, np.inf, np.float32)
        distances.append(d)
    owner = np.argmin(np.stack(distances), axis=0)
    return [mask & (owner == k) for k in range(len(expected))]


def faults(tracked: list[np.ndarray], expected: list[np.ndarray],
           min_recall: float = MIN_RECALL) -> list[str]:
    """What an edit broke, by object: 'edited gone' / 'edited split' (in more than one piece:
    a copy left behind, a piece torn off), 'other gone' / 'other split' / 'other moved' (an
    other object covering under `min_recall` of where it was). Empty when every object was
    kept."""
    found = []
    n = components(tracked[0]) if tracked else 0
    if n != 1:
        found.append("edited gone" if n == 0 else "edited split")
    for t, e in zip(tracked[1:], expected[1:]):
        n = components(t)
        if n != 1:
            found.append("other gone" if n == 0 else "other split")
        elif (t & e).sum() < min_recall * e.sum():
            found.append("other moved")
    return found


def objects_kept(tracked: list[np.ndarray], expected: list[np.ndarray],
                 min_recall: float = MIN_RECALL) -> bool:
    """The edited object in one piece; every other object in one piece and still covering at
    least `min_recall` of where it was expected (no `faults`)."""
    return not faults(tracked, expected, min_recall)
