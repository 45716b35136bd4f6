"""What a user asks of a scene, independent of any page or command line.

    >>> EditRequest(move_x=16)                          # the objects 16 px right
    >>> EditRequest(depth_push=-1.5)                    # the objects 1.5 z-units farther
    >>> EditRequest(move_x=8, objects="largest")        # the largest object; the others stay
    >>> EditRequest(drawn="paint", painted=mask)        # the object where `mask` is set

A painted or flipped mask, a scale and a move edit the salient object's mask; swapping near and
far, shifting the depth map and a depth push edit the depth map. Everything asked is one edit.
How it is carried out is an `EditSettings`; `plan.plan` turns both into the edit that runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# drawn targets: value -> what the edit does
DRAWN = {"none": "", "paint": "painted mask", "flip": "flip object left-right",
         "swap": "swap near and far"}
OBJECTS = ("all", "largest")  # which labelled objects an edit moves or pushes


@dataclass(frozen=True)
class EditRequest:
    """One edit of a scene. Moves and shifts in image pixels (x right, y down)."""
    move_x: int = 0
    move_y: int = 0
    scale: float = 1.0  # the object's size, about its centre
    depth_push: float = 0.0  # z-units of inverse depth inside the object: > 0 nearer
    drawn: str = "none"  # a drawn target, one of DRAWN
    shift_x: int = 0  # the whole depth map shifted by (shift_x, shift_y) px
    shift_y: int = 0
    painted: np.ndarray | None = field(default=None, repr=False)  # (H, W) bool, for "paint"
    # (H, W) added to the depth inside the object instead of `depth_push` (a push's control)
    depth_field: np.ndarray | None = field(default=None, repr=False)
    objects: str = "all"  # "all": every labelled object as one; "largest": the largest piece
    # (the others are steered to stay where they are)

    def __post_init__(self):
        if self.drawn not in DRAWN:
            raise ValueError(f"drawn target must be one of {', '.join(DRAWN)}, got "
                             f"{self.drawn!r}")
        if self.objects not in OBJECTS:
            raise ValueError(f"objects must be one of {', '.join(OBJECTS)}, got {self.objects!r}")
        if self.drawn == "paint" and self.painted is None:
            raise ValueError("a painted target needs its mask")

    @property
    def move(self) -> tuple[int, int]:
        return self.move_x, self.move_y

    @property
    def moves(self) -> bool:
        """Whether the object's mask is moved or scaled."""
        return bool(self.move_x or self.move_y or self.scale != 1.0)

    @property
    def edits_mask(self) -> bool:
        """Whether the request asks for an object mask (moved, scaled, painted, flipped)."""
        return self.moves or self.drawn in ("paint", "flip")

    @property
    def edits_depth(self) -> bool:
        """Whether the request asks for a depth map (swapped, shifted, pushed)."""
        return bool(self.drawn == "swap" or self.shift_x or self.shift_y or self.depth_push
                    or self.depth_field is not None)

    @property
    def pushes(self) -> bool:
        return bool(self.depth_push) or self.depth_field is not None

    @property
    def carries(self) -> bool:
        """Whether a carrying method would carry this move: a move of the object found (no
        drawn target: painted, flipped or swapped)."""
        return self.drawn == "none" and self.move != (0, 0)
