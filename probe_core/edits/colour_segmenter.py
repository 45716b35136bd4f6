"""A second scorer for edits in the scene world, independent of the labeler: find an object by
the colour its caption names.

    >>> objects, floor = parse_caption("a large red sphere and a small blue box on a gray plain floor")
    >>> mask = segment_colour(image, "red", objects, floor)      # (H, W) bool, or None
    >>> segmentable("red", objects, floor)                        # can this colour be told apart?

Shading scales a surface's colour, so each pixel's chromaticity (rgb / (r + g + b)) names its
colour whatever the light. A pixel belongs to the asked colour when that colour's chromaticity is
the nearest among every colour the scene can show (the named objects, the floor, the sky) and the
pixel is saturated enough to have a hue. Colourless objects (white, black) and an object whose
colour another object or the floor shares cannot be segmented this way (`segmentable`).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..world.scenes import FLOOR_COLOURS, OBJECT_COLOURS

SKY = (0.55, 0.75, 0.95)  # the renderer's default sky tint
MIN_SATURATION = 0.25  # (max - min) / max of a pixel's rgb, below which it has no usable hue
MIN_BRIGHTNESS = 0.06  # mean rgb in [0, 1], below which chromaticity is noise
MIN_PIXELS = 3  # specks smaller than this are dropped


def parse_caption(caption: str) -> tuple[list[tuple[str, str, str]], str | None]:
    """The caption's objects as (size, colour, shape), largest on screen first, and the floor's
    colour ('a large red sphere and a small blue box on a gray plain floor')."""
    words = caption.split()
    floor = None
    if "floor" in words and len(words) >= 4:
        floor = words[words.index("floor") - 2]
    body = caption.split(" on a ")[0]
    objects = []
    for part in body.split(" and "):
        w = part.split()
        if len(w) == 4 and w[0] in ("a", "an"):
            objects.append((w[1], w[2], w[3]))
    return objects, floor


def _chroma(rgb) -> np.ndarray:
    rgb = np.asarray(rgb, np.float32)
    return rgb / np.clip(rgb.sum(-1, keepdims=True), 1e-6, None)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    return (rgb.max(-1) - rgb.min(-1)) / np.clip(rgb.max(-1), 1e-6, None)


def segmentable(colour: str, objects: list[tuple[str, str, str]], floor: str | None) -> bool:
    """Whether `colour` has a hue and is the only thing of its colour in the scene (every object's
    colour must be one the renderer knows, or the others could not be told from it)."""
    if colour not in OBJECT_COLOURS or _saturation(np.array(OBJECT_COLOURS[colour])) < 0.5:
        return False
    if any(c not in OBJECT_COLOURS for _, c, _ in objects):
        return False
    if sum(c == colour for _, c, _ in objects) != 1:
        return False
    return floor != colour


def segment_colour(image: np.ndarray, colour: str, objects: list[tuple[str, str, str]],
                   floor: str | None) -> np.ndarray | None:
    """(H, W, 3) uint8 image -> (H, W) bool mask of the pixels of `colour`, or None when the
    colour cannot be told apart in this scene (`segmentable`)."""
    if not segmentable(colour, objects, floor):
        return None
    rgb = image.astype(np.float32) / 255
    names = [colour] + sorted({c for _, c, _ in objects} - {colour})
    refs = [OBJECT_COLOURS[c] for c in names]
    refs += [FLOOR_COLOURS[floor]] if floor in FLOOR_COLOURS else []
    refs.append(SKY)
    distance = np.linalg.norm(_chroma(rgb)[..., None, :] - _chroma(refs)[None, None], axis=-1)
    mask = ((distance.argmin(-1) == 0) & (_saturation(rgb) >= MIN_SATURATION)
            & (rgb.mean(-1) >= MIN_BRIGHTNESS))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < MIN_PIXELS:
            mask[labels == k] = False
    return mask


def components(mask: np.ndarray, min_pixels: int = MIN_PIXELS) -> int:
    """How many connected pieces (8-connected, at least `min_pixels`) a mask has."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=8)
    return int(sum(stats[k, cv2.CC_STAT_AREA] >= min_pixels for k in range(1, n)))
