"""A scene before an edit, as the labeler reads it: depth, the object mask, the edited object
and the others, and what a second, labeler-free scorer (the caption's colour) sees.

    >>> scene = SceneLabels.label(labeler, prompt, image)      # image (H, W, 3) uint8
    >>> scene.edited("largest")        # (the largest labelled piece, the rest of the mask)
    >>> after = scene.after(edited_image, expected_at, "largest")   # AfterLabels

Masks are (H, W) bool; depth is z-normalised inverse depth ((H, W) float, larger is nearer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .colour_segmenter import components, parse_caption, segment_colour
from .tracker import expected_objects, pieces, track


def main_object(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the largest 8-connected piece of `mask`, the rest of the mask)."""
    found = pieces(mask, min_pixels=1)
    if not found:
        return np.zeros_like(mask, bool), np.zeros_like(mask, bool)
    return found[0], mask & ~found[0]


@dataclass
class AfterLabels:
    """The labels of an edited image, read against the scene before it."""
    depth: np.ndarray  # (H, W) labelled depth
    saliency: np.ndarray  # (H, W) labelled P(object)
    mask: np.ndarray  # (H, W) bool, every labelled object
    object: np.ndarray  # (H, W) bool, the edited object: labelled pixels not another object's
    pieces: int  # connected pieces of `mask`
    colour_mask: np.ndarray | None  # the colour segmenter's edited object, where it reads one
    expected: list[np.ndarray]  # where each object should be: [edited, other 1, ...]
    tracked: list[np.ndarray]  # each object's labelled pixels after the edit, in that order


class SceneLabels:
    """The image an edit starts from and its labels; `labeler` (None: no scores) labels the
    edited image the same way."""

    def __init__(self, image: np.ndarray, depth: np.ndarray, mask: np.ndarray, prompt: str,
                 labeler=None):
        self.image, self.depth, self.labeler = image, depth, labeler
        self.mask = np.asarray(mask, bool)
        self.largest, self.rest = main_object(self.mask)
        self.pieces = components(self.mask)
        self.objects, self.floor = parse_caption(prompt)  # [(size, colour, shape)], colour
        self.n_objects = len(self.objects)
        self.colour = self.objects[0][1] if self.objects else None
        self.colour_mask = self.segment(image)

    @classmethod
    def label(cls, labeler, prompt: str, image: np.ndarray) -> "SceneLabels":
        """The scene of `image` as `labeler` reads it."""
        depth, sal = labeler(image[None])
        return cls(image, depth[0], sal[0] > 0.5, prompt, labeler)

    def segment(self, image: np.ndarray) -> np.ndarray | None:
        """The caption's first object by its colour (None where the colour cannot tell it)."""
        return (segment_colour(image, self.colour, self.objects, self.floor) if self.colour
                else None)

    def edited(self, objects: str) -> tuple[np.ndarray, np.ndarray]:
        """(the edited object, the other objects): every labelled object as one ("all"), or
        the largest piece and the rest ("largest")."""
        if objects == "largest":
            return self.largest, self.rest
        return self.mask, np.zeros_like(self.mask)

    def after(self, image: np.ndarray, expected_at: np.ndarray, objects: str) -> AfterLabels:
        """Labels of an edited image: the edited object where it is now (labelled pixels that
        were not another object's) and every object followed by `tracker`, the edited one from
        `expected_at` ((H, W) bool, where the edit asked for it), the others from where they
        were."""
        depth, sal = self.labeler(image[None])
        mask = sal[0] > 0.5
        _, others = self.edited(objects)
        expected = expected_objects(expected_at, others)
        return AfterLabels(depth[0], sal[0], mask, mask & ~others, components(mask),
                           self.segment(image), expected, track(mask, expected))
