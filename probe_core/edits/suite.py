"""What the edit evaluation asks of every image: moves in 8 directions, each as far as the
object can go and stay in frame, a random move, and depth pushes with random-field controls.

    >>> suite = EditSuite(directions=("right", "up"), depth_delta=2.0)
    >>> distance = room(object_mask, "right", limit=16)     # px the object can move right
    >>> dx, dy = move_vector("up-right", distance)           # (x right, y down) px
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# (dx right, dy down) unit directions, named as seen on the image
DIRECTIONS = {"right": (1, 0), "down-right": (1, 1), "down": (0, 1), "down-left": (-1, 1),
              "left": (-1, 0), "up-left": (-1, -1), "up": (0, -1), "up-right": (1, -1)}
MIN_MOVE = 4  # pixels: a direction with less room than this is skipped for that image


def check_directions(names) -> tuple[str, ...]:
    """The move directions asked for, as a tuple; ValueError naming the valid ones when any is
    unknown or none is given."""
    names = tuple(names)
    unknown = [d for d in names if d not in DIRECTIONS]
    if unknown or not names:
        shown = ", ".join(unknown) if unknown else "none given"
        raise ValueError(f"unknown move direction(s) {shown}; directions are "
                         f"{', '.join(DIRECTIONS)}")
    return names


@dataclass(frozen=True)
class EditSuite:
    """The edits asked of every image, and their size."""
    directions: tuple[str, ...] = tuple(DIRECTIONS)  # the moves, one per direction
    moves: bool = True  # run the moves and the random move (their control)
    pushes: bool = True  # run the depth pushes and their random-field controls
    depth_delta: float = 2.0  # size of a depth push, z-units of inverse depth
    objects: str = "largest"  # what every edit moves or pushes: "largest" (the others stay)
    # or "all" (every labelled object as one, as the app's sliders do)

    def check(self) -> "EditSuite":
        """This suite, or ValueError naming an unknown direction or an empty suite."""
        check_directions(self.directions)
        if self.objects not in ("all", "largest"):
            raise ValueError(f"objects must be 'all' or 'largest', got {self.objects!r}")
        if not (self.moves or self.pushes):
            raise ValueError("an evaluation with neither moves nor pushes runs nothing")
        return self


def unit(direction: str) -> tuple[float, float]:
    ux, uy = DIRECTIONS[direction]
    norm = math.hypot(ux, uy)
    return ux / norm, uy / norm


def room(mask: np.ndarray, direction: str, limit: int) -> int:
    """How far (pixels, along the direction) the object can move and stay wholly in frame, at
    most `limit`."""
    ys, xs = np.nonzero(mask)
    H, W = mask.shape
    ux, uy = unit(direction)
    reach = [limit]
    for u, lo, hi, size in ((ux, xs.min(), xs.max(), W), (uy, ys.min(), ys.max(), H)):
        if u > 0:
            reach.append((size - 1 - hi) / u)
        elif u < 0:
            reach.append(lo / -u)
    return int(math.floor(min(reach)))


def move_vector(direction: str, distance: int) -> tuple[int, int]:
    ux, uy = unit(direction)
    return int(round(distance * ux)), int(round(distance * uy))


def random_depth_field(mask: np.ndarray, delta: float, rng, cell: int = 8) -> np.ndarray:
    """(H, W) float64: a random field inside `mask` (constant on cell x cell patches, zero
    outside) with the same L2 size as adding `delta` to every masked pixel: a depth push's
    control, which asks for as much change with no direction."""
    H, W = mask.shape
    field = np.kron(rng.standard_normal((H // cell, W // cell)), np.ones((cell, cell)))
    field = np.where(mask, field, 0.0)
    norm = np.sqrt((field ** 2).sum())
    if norm > 0:
        field *= abs(delta) * np.sqrt(mask.sum()) / norm
    return field
