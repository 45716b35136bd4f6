"""Did an edit work? The one scorer: the app's verdict card, the CLI and `intervene-eval` all
read an edit through `outcome`, so the same edit gets the same numbers everywhere.

    >>> result = outcome(scene, edited_image, edit_plan)     # EditOutcome
    >>> result.scores["shift_x"], result.scores["outside_change"]
    >>> [p.scores for p in result.parts]                     # one dict per part of the edit

Each part is scored by the labeler on the edited image, against the scene before it:
- an object mask part: Dice of the edited object with the target before and after, the
  object's centre shift (px, x right and y down) by the labeler and by the colour segmenter
  (which does not use the labeler), the shift asked, the object's area, the share of a moved
  object cut off at the image edge;
- a depth part: the object's labelled depth where it was and where it is after the edit (a
  push is read where the object is now), the change asked, the labelled depth map's Pearson r
  with the target before and after, and the colour scorer's near/far verdict from the
  object's bottom edge and area (`colour_depth`, no labeler).
Every part also carries whether the scene kept its objects (by connected pieces, tracked object
by object with the faults, and strictly: each tracked object one piece within ±30% of its
area), whether the edited object split, and the mean pixel change outside the edit (outside
every part's region and the object before and after, grown by a 3-pixel margin, and with none),
and whether the colour segmenter's object is the edited one (IoU >= SAME_OBJECT_IOU before).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..metrics import dice, iou, pearson
from .colour_depth import colour_depth
from .colour_segmenter import components
from .plan import EditPlan, Part
from .scene import AfterLabels, SceneLabels
from .scores import area_ratio, object_depth_change, outside_change
from .targets import centroid
from .tracker import faults

SAME_OBJECT_IOU = 0.5  # colour mask vs labelled object, before: both scorers see one object
STRICT_AREA = 0.3  # kept strictly: every object's area within this share of where it should be


@dataclass
class PartOutcome:
    """One part of a finished edit: its target, what the labeler reads in the edited image
    (P(object) or depth) and its scores (empty without a labeler)."""
    task: str
    target: np.ndarray  # (H, W) bool mask or float depth
    achieved: np.ndarray | None  # (H, W) the labeler's P(object) or depth of the edited image
    scores: dict
    description: str
    kept: bool = False  # the part only keeps the objects' outlines where they are


@dataclass
class EditOutcome:
    """A finished edit: the edited image and every part's scores. `task`, `target`,
    `achieved` and `scores` are the first part's (the object mask part when there is one)."""
    image: np.ndarray  # (H, W, 3) uint8, the edited generation
    parts: list[PartOutcome]
    plan: EditPlan
    probe_steps: dict = field(default_factory=dict)  # edited step -> probe step (0-based)
    carried: tuple[int, int] | None = None  # latent pixels a move's latent was carried by
    seconds: float = 0.0  # how long the edited generation took
    run: object | None = None  # the edited generation as the app keeps it (probe outputs)

    task = property(lambda self: self.parts[0].task)
    target = property(lambda self: self.parts[0].target)
    achieved = property(lambda self: self.parts[0].achieved)
    scores = property(lambda self: self.parts[0].scores)
    request = property(lambda self: self.plan.request)
    settings = property(lambda self: self.plan.settings)

    @property
    def description(self) -> str:
        return "; ".join(p.description for p in self.parts)

    def record(self) -> dict:
        """What was asked and how, as an export records it: method, strength, moves, drawn
        target, steps, and the step a move's latent was carried at and by how many latent
        pixels (None: not carried, also for a move under half a latent pixel)."""
        r, s = self.plan.request, self.plan.settings
        steps = self.plan.edit.steps
        return {"method": s.label, "strength": s.strength, "move_x": r.move_x,
                "move_y": r.move_y, "scale": r.scale, "depth_push": r.depth_push,
                "drawn": r.drawn, "depth_shift": [r.shift_x, r.shift_y],
                "region_margin": s.region_margin, "saliency_shrink": s.saliency_shrink,
                "carry_step": self.plan.edit.carry_step if self.carried else None,
                "carried_latent_px": list(self.carried) if self.carried else None,
                "steps": [min(steps), max(steps)]}


def centre_shift(before: np.ndarray | None, after: np.ndarray | None
                 ) -> tuple[float, float] | None:
    """(dx, dy) px of a mask's centre from `before` to `after`; None when either is empty."""
    if before is None or after is None or not before.any() or not after.any():
        return None
    (y0, x0), (y1, x1) = centroid(before), centroid(after)
    return x1 - x0, y1 - y0


def kept_strictly(after: AfterLabels, share: float = STRICT_AREA) -> bool:
    """Every object, followed by the tracker, in one connected piece with its area within
    `share` of the area where it should be (the edited object's target, the others' own)."""
    return all(components(t) == 1 and abs(t.sum() / max(e.sum(), 1) - 1) <= share
               for t, e in zip(after.tracked, after.expected))


def kept_scores(scene: SceneLabels, plan: EditPlan, after: AfterLabels) -> dict:
    """Whether the scene kept its objects: by the count of pieces (as many connected pieces of
    labelled mask as before, the edited object in one piece; two touching objects count as
    one), tracked object by object (`tracker.faults`), and strictly (tracked, each object in
    one piece with its area within STRICT_AREA); and whether the edited object split."""
    broke = faults(after.tracked, after.expected)
    return {"kept": after.pieces == scene.pieces and components(after.object) == 1,
            "objects_kept": not broke, "faults": broke,
            "area_ratio": area_ratio(plan.object, after.object),
            "objects_kept_strict": kept_strictly(after),
            "split": "edited split" in broke}


def mask_scores(scene: SceneLabels, plan: EditPlan, part: Part, after: AfterLabels) -> dict:
    """An object mask part: Dice with the target, the centre's shift by both scorers and the
    shift asked, the area, the share cut off at the edge."""
    m0, m1 = plan.object, after.object
    (y0, x0), (y1, x1) = centroid(m0), centroid(m1)
    ty, tx = centroid(part.target.map)
    colour_before = scene.colour_mask
    return {"dice_before": dice(m0, part.target.map), "dice_after": dice(m1, part.target.map),
            "shift_x": x1 - x0, "shift_y": y1 - y0,
            "area_before": int(m0.sum()), "area_after": int(m1.sum()),
            "asked_x": tx - x0, "asked_y": ty - y0, "target_cut": part.cut,
            "labeler_shift": centre_shift(m0, m1),
            "colour_shift": centre_shift(colour_before, after.colour_mask)}


def depth_scores(scene: SceneLabels, plan: EditPlan, part: Part, after: AfterLabels) -> dict:
    """A depth part: the object's labelled depth where it was and where it is now, the change
    asked (the target's mean over where the object should be, less the depth's mean over it
    now), and the labelled depth map's Pearson r with the target, before and after."""
    d0, d1 = object_depth_change(scene.depth, plan.object, after.depth, after.object)
    goal_at = plan.expected_at
    goal = part.target.map[goal_at].mean() if goal_at.any() else np.nan
    now = scene.depth[plan.object].mean() if plan.object.any() else np.nan
    return {"depth_before": d0, "depth_after": d1, "depth_change": d1 - d0,
            "asked": float(goal - now), "map_r_before": pearson(scene.depth, part.target.map),
            "map_r_after": pearson(after.depth, part.target.map),
            **colour_depth(scene.colour_mask, after.colour_mask)}


def outcome(scene: SceneLabels, edited: np.ndarray, plan: EditPlan) -> EditOutcome:
    """`edited` ((H, W, 3) uint8), the image `plan` made of `scene`, scored part by part
    (unscored without a labeler)."""
    if scene.labeler is None:
        return EditOutcome(edited, [PartOutcome(p.task, p.target.map, None, {},
                                                p.target.description, p.kept)
                                    for p in plan.parts], plan)
    after = scene.after(edited, plan.expected_at, plan.request.objects)
    common = kept_scores(scene, plan, after)
    changed = plan.region | plan.object | after.object
    common["outside_change"] = outside_change(scene.image, edited, changed)
    common["outside_change_no_margin"] = outside_change(scene.image, edited, changed, margin=0)
    common["same_object"] = bool(scene.colour_mask is not None
                                 and iou(scene.colour_mask, plan.object) >= SAME_OBJECT_IOU)
    parts = []
    for p in plan.parts:
        if p.task == "saliency":
            s, achieved = mask_scores(scene, plan, p, after), after.saliency
        else:
            s, achieved = depth_scores(scene, plan, p, after), after.depth
        parts.append(PartOutcome(p.task, p.target.map, achieved, {**s, **common},
                                 p.target.description, p.kept))
    return EditOutcome(edited, parts, plan)
