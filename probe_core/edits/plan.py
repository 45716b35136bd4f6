"""From what is asked to the edit that runs: the one place an `Edit` is built.

    >>> scene = SceneLabels.label(labeler, prompt, image)
    >>> edit_plan = plan(EditRequest(move_x=16), METHOD_DEFAULTS["guided"], scene)
    >>> edit_plan.parts          # [Part("saliency", Target: the object 16 px right)]
    >>> edit_plan.edit           # the Edit `run.intervene` steers the generation with

A request becomes parts, each a target map for one probe task: an object mask part (painted or
flipped, then scaled and moved) and a depth part (swapped, shifted, then pushed inside the
object where the mask part puts it). A depth push alone, with a method that keeps outlines on
such pushes, also steers toward the objects' outlines where they are. The settings decide the
steps, the layers, the latent region a guided edit may change and whether a move is first
carried (`latent_carry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .edit_settings import EditSettings
from .methods import Edit
from .request import EditRequest
from .scene import SceneLabels
from .targets import (Target, flip_mask, move_mask, paint_mask, perspective_room, push_depth,
                      scale_mask, shift_depth, shrink_mask, swap_depth)

KEEP_OUTLINES = "keep the objects' outlines"


@dataclass
class Part:
    """One part of an edit: the task, its target, the share of a moved object that falls past
    the image edge (saliency), and whether it only keeps the objects' outlines where they are."""
    task: str  # "saliency" or "depth"
    target: Target
    cut: float = 0.0
    kept: bool = False


@dataclass
class EditPlan:
    """An edit ready to run, with what its scorer needs to read the result."""
    request: EditRequest
    settings: EditSettings
    parts: list[Part]
    object: np.ndarray  # (H, W) bool: the edited object before the edit
    others: np.ndarray  # (H, W) bool: the other objects (empty when every object is edited)
    edit: Edit

    @property
    def expected_at(self) -> np.ndarray:
        """(H, W) bool: where the edited object should be after the edit."""
        moved = [p for p in self.parts if p.task == "saliency" and not p.kept]
        return moved[0].target.map if moved else self.object

    @property
    def region(self) -> np.ndarray:
        """(H, W) bool: every pixel some part's target changed."""
        return np.logical_or.reduce([p.target.region for p in self.parts])

    @property
    def description(self) -> str:
        return "; ".join(p.target.description for p in self.parts)


def mask_part(request: EditRequest, mask: np.ndarray) -> Part:
    """The object mask part: the object (painted or flipped), scaled, then moved."""
    drawn = request.drawn
    base = (paint_mask(mask, request.painted) if drawn == "paint" else
            flip_mask(mask) if drawn == "flip" else Target(mask, mask & False, ""))
    scaled = scale_mask(base.map, request.scale)
    moved = move_mask(scaled.map, request.move_x, request.move_y)
    words = [base.description, scaled.description if request.scale != 1.0 else "",
             moved.description if request.move_x or request.move_y else ""]
    region = mask ^ moved.map | base.region | scaled.region | moved.region
    cut = 1.0 - float(moved.map.sum()) / max(float(scaled.map.sum()), 1.0)
    return Part("saliency", Target(moved.map, region, ", ".join(w for w in words if w)), cut)


def depth_part(request: EditRequest, depth: np.ndarray, pushed: np.ndarray,
               push_room: int) -> Part:
    """The depth part: `depth` swapped, shifted, then pushed inside `pushed` ((H, W) bool, the
    object where the mask part puts it), by `depth_push` or by `depth_field`; a push's region
    also takes `push_room` pixels where perspective takes the pushed object."""
    target = np.asarray(depth, np.float32)
    region = np.zeros(pushed.shape, bool)
    words = []
    field = request.depth_field
    steps = [(request.drawn == "swap", swap_depth),
             (request.shift_x or request.shift_y,
              lambda d: shift_depth(d, request.shift_x, request.shift_y)),
             (request.depth_push and field is None,
              lambda d: push_depth(d, pushed, request.depth_push)),
             (field is not None, lambda d: Target((d + np.where(pushed, field, 0.0)).astype(
                 np.float32), pushed.copy(), "random depth field"))]
    for asked, make in steps:
        if asked:
            t = make(target)
            target, region = t.map, region | t.region
            words.append(t.description)
    if request.pushes and push_room:  # where perspective takes the pushed object
        region |= perspective_room(pushed, request.depth_push, push_room)
    return Part("depth", Target(target, region, "depth " + ", ".join(words)))


def target_parts(request: EditRequest, settings: EditSettings, mask: np.ndarray,
                 scene: SceneLabels) -> list[Part]:
    """The parts of the edit of the object `mask` (H, W) bool in `scene`."""
    needs_object = request.moves or request.drawn == "flip" or request.pushes
    if needs_object and not mask.any():
        raise ValueError("no salient object found in this image to steer")
    parts = [mask_part(request, mask)] if request.edits_mask else []
    if request.edits_depth:
        pushed = parts[0].target.map if parts else mask
        parts.append(depth_part(request, scene.depth, pushed, settings.push_room))
        if len(parts) == 1 and settings.keeps_outline(request.depth_push):
            # the push changes the objects' depth, not their outlines
            parts.append(Part("saliency", Target(scene.mask.copy(), np.zeros_like(scene.mask),
                                                 KEEP_OUTLINES), kept=True))
    if not parts:
        raise ValueError("set a move, a scale, a depth push or a drawn target first")
    return parts


def build_edit(request: EditRequest, settings: EditSettings, parts: list[Part],
               mask: np.ndarray, others: np.ndarray) -> Edit:
    """The Edit of `parts` (every part in one run) for the object `mask` among `others`.
    A moved object is steered toward less its outline (`saliency_shrink`) with the other
    objects where they are; a guided edit's latent region is where the object is and every
    part's target (and where a carried move lands)."""
    region = np.logical_or.reduce([mask] + [p.target.region for p in parts]
                                  + [p.target.map for p in parts
                                     if p.task == "saliency" and not p.kept])
    steered = [(p.task, shrink_mask(p.target.map, settings.saliency_shrink) | others
                if p.task == "saliency" and not p.kept else p.target.map) for p in parts]
    (task, target), *more = steered
    carry = settings.move_carry_step if request.carries else None
    if carry is not None:  # the carried object may need reshaping where it lands (a scale)
        region = region | move_mask(mask, request.move_x, request.move_y).map
    return Edit(task, target, settings.method, settings.strength, settings.edit_steps(task),
                layers=list(settings.layers) if settings.layers else None,
                iterations=settings.iterations, shift=request.move, also=tuple(more),
                region=region if settings.region_margin is not None else None,
                region_margin=settings.region_margin, moved_from=mask if carry is not None
                else None, carry_step=carry)


def plan(request: EditRequest, settings: EditSettings, scene: SceneLabels) -> EditPlan:
    """The edit `request` asks of `scene`, carried out as `settings` say."""
    settings.check()
    mask, others = scene.edited(request.objects)
    parts = target_parts(request, settings, mask, scene)
    return EditPlan(request, settings, parts, mask, others,
                    build_edit(request, settings, parts, mask, others))
