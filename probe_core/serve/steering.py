"""Steering from the app's sliders and drawn targets: check the request, build the parts of
the edit, score each.

    >>> request = check_steer(move_x=16, depth_push=1.0, first_step=0, last_step=3, ...)
    >>> parts = build_target(mask, depth, request)     # [Part("saliency"), Part("depth")]
    >>> outcomes = score_edit(labeler, before, after, parts, mask, depth)

A painted or flipped mask, a scale and a move edit the salient object's mask (task
"saliency"); swapping near and far, shifting the depth map and a depth push edit the depth map
(task "depth"). Everything asked is one edit: both parts are steered toward in the same run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..metrics import pearson
from ..edits.methods import METHOD_DEFAULTS, METHODS, Edit, default_layers, defaults_of
from ..edits.scores import outside_change, score_depth, score_move
from ..edits.targets import (Target, centroid, flip_mask, move_mask, paint_mask, perspective_room,
                             push_depth, scale_mask, shift_depth, shrink_mask, swap_depth)
from .inputs import MAX_SIDE, bounded, echo

MAX_SCALE = (0.25, 4.0)
MAX_PUSH = 3.0  # z-units of inverse depth
MAX_STRENGTH = 10.0


DRAWN = {"none": "", "paint": "painted mask", "flip": "flip object left-right",
         "swap": "swap near and far"}  # drawn targets: value -> what the edit does


@dataclass
class SteerRequest:
    """What the sliders and the drawn target ask for, checked: moves in pixels, steps
    0-based, `painted` (H, W) bool at the model's image size when `drawn` is "paint"."""
    method: str
    move_x: int
    move_y: int
    scale: float
    depth_push: float
    strength: float
    first_step: int
    last_step: int
    drawn: str = "none"
    shift_x: int = 0  # the whole depth map shifted by (shift_x, shift_y) px
    shift_y: int = 0
    painted: np.ndarray | None = field(default=None, repr=False)


def check_painted(painted, image_size: int) -> np.ndarray:
    """A painted target as a visitor sends it, (H, W) or (H, W, C) with C <= 4 (any painted
    pixel: alpha > 0 with 4 channels, else non-zero), resized (nearest) to the model's image
    size: an (S, S) bool mask with at least one pixel set."""
    a = np.asarray(painted) if painted is not None else None
    if a is None or a.dtype == object or a.ndim not in (2, 3) or (a.ndim == 3 and
                                                                 not 1 <= a.shape[2] <= 4):
        raise ValueError("paint the target mask on the image first (a brush stroke where the "
                         "object should be)")
    if not 1 <= a.shape[0] <= MAX_SIDE or not 1 <= a.shape[1] <= MAX_SIDE:
        raise ValueError(f"painted mask of {a.shape[1]}x{a.shape[0]} px: at most {MAX_SIDE} a "
                         "side")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("painted mask holds values that are not numbers")
    mask = (a[..., 3] if a.ndim == 3 and a.shape[2] == 4 else
            a.max(axis=-1) if a.ndim == 3 else a) > 0
    rows = (np.arange(image_size) * mask.shape[0]) // image_size
    cols = (np.arange(image_size) * mask.shape[1]) // image_size
    mask = mask[rows[:, None], cols[None, :]]
    if not mask.any():
        raise ValueError("the painted mask is empty: paint where the object should be")
    return mask


def check_steer(move_x, move_y, scale, depth_push, strength, first_step, last_step, method,
                max_move: int, num_inference_steps: int, drawn="none", painted=None,
                shift_x=0, shift_y=0, image_size: int | None = None) -> SteerRequest:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {echo(method)}")
    dx = int(round(bounded("move x", move_x, -max_move, max_move)))
    dy = int(round(bounded("move y", move_y, -max_move, max_move)))
    factor = bounded("scale", scale, *MAX_SCALE)
    push = bounded("depth push", depth_push, -MAX_PUSH, MAX_PUSH)
    strength = (METHOD_DEFAULTS[method].strength if strength is None
                else bounded("strength", strength, 0.0, MAX_STRENGTH))
    n = num_inference_steps
    first = int(bounded("first edited step", first_step, 0, n - 1))
    last = int(bounded("last edited step", last_step, first, n - 1))
    drawn = "none" if drawn in (None, "") else drawn
    if not isinstance(drawn, str) or drawn not in DRAWN:
        raise ValueError(f"drawn target must be one of {', '.join(DRAWN)}, got {echo(drawn)}")
    sx = int(round(bounded("depth shift x", shift_x, -max_move, max_move)))
    sy = int(round(bounded("depth shift y", shift_y, -max_move, max_move)))
    mask = check_painted(painted, image_size or 2 * max_move) if drawn == "paint" else None
    return SteerRequest(method, dx, dy, factor, push, strength, first, last, drawn, sx, sy,
                        mask)


def _moves(request: SteerRequest) -> bool:
    return bool(request.move_x or request.move_y or request.scale != 1.0)


def _numbers(*values) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return out if all(np.isfinite(out)) else None


def plan_text(move_x, move_y, scale, depth_push, drawn="none", shift_x=0, shift_y=0,
              method=None) -> str:
    """What an edit with these values will do, in words: every part of it."""
    values = _numbers(move_x, move_y, scale, depth_push, shift_x, shift_y)
    if values is None:
        return "Edit to run: none (a slider holds something that is not a number)"
    dx, dy, factor, push, sx, sy = values
    dx, dy, sx, sy = round(dx), round(dy), round(sx), round(sy)
    mask_parts = [DRAWN.get(drawn, "") if drawn in ("paint", "flip") else "",
                  f"scale x{factor:g}" if factor != 1.0 else "",
                  f"move x {dx:+d} px" if dx else "", f"move y {dy:+d} px" if dy else ""]
    depth_parts = [DRAWN["swap"] if drawn == "swap" else "",
                   f"shift depth map ({sx:+d}, {sy:+d}) px" if sx or sy else "",
                   f"push depth {push:+g} z-units ({'nearer' if push > 0 else 'farther'}, "
                   "inside the object)" if push else ""]
    lines = []
    if not any(mask_parts) and keeps_outline(method, push):
        mask_parts = ["keep the objects' outlines"]
    if any(mask_parts):
        lines.append("**" + ", ".join(p for p in mask_parts if p) + "** (object mask)")
    if any(depth_parts):
        lines.append("**" + ", ".join(p for p in depth_parts if p) + "** (depth map)")
    if not lines:
        return "Edit to run: none yet: move a slider or pick a drawn target"
    return "Edit to run: " + "; ".join(lines) + (" — one edit, both parts" if len(lines) > 1
                                                 else "")


@dataclass
class Part:
    """One part of an edit: the task, its target, and the share of a moved object that falls
    past the image edge (saliency)."""
    task: str  # "saliency" or "depth"
    target: Target
    cut: float = 0.0


def keeps_outline(method, depth_push: float) -> bool:
    """Whether `method` steers a depth push this way (nearer > 0, farther < 0) toward the
    objects' outlines where they are as well, when nothing else asks for a mask."""
    d = defaults_of(method)
    return bool(d and depth_push and ("nearer" if depth_push > 0 else "farther") in d.push_outline)


def build_target(mask: np.ndarray, depth: np.ndarray, request: SteerRequest) -> list[Part]:
    """The parts of the edit for the object `mask` (H, W) bool and `depth` (H, W): an object
    mask part (painted or flipped, then scaled and moved) and a depth part (swapped, shifted,
    then pushed inside the object where the mask part puts it), each when asked."""
    parts = []
    drawn = request.drawn
    needs_object = _moves(request) or drawn == "flip" or request.depth_push
    if needs_object and not mask.any():
        raise ValueError("no salient object found in this image to steer")
    if _moves(request) or drawn in ("paint", "flip"):
        base = (paint_mask(mask, request.painted) if drawn == "paint" else
                flip_mask(mask) if drawn == "flip" else Target(mask, mask & False, ""))
        scaled = scale_mask(base.map, request.scale)
        moved = move_mask(scaled.map, request.move_x, request.move_y)
        words = [base.description, scaled.description if request.scale != 1.0 else "",
                 moved.description if request.move_x or request.move_y else ""]
        region = mask ^ moved.map | base.region | scaled.region | moved.region
        cut = 1.0 - float(moved.map.sum()) / max(float(scaled.map.sum()), 1.0)
        parts.append(Part("saliency", Target(moved.map, region,
                                             ", ".join(w for w in words if w)), cut))
    if drawn == "swap" or request.shift_x or request.shift_y or request.depth_push:
        target = np.asarray(depth, np.float32)
        region = np.zeros(mask.shape, bool)
        words = []
        pushed = parts[0].target.map if parts else mask  # the object where the mask part puts it
        steps = [(drawn == "swap", lambda d: swap_depth(d)),
                 (request.shift_x or request.shift_y,
                  lambda d: shift_depth(d, request.shift_x, request.shift_y)),
                 (request.depth_push, lambda d: push_depth(d, pushed, request.depth_push))]
        for asked, make in steps:
            if asked:
                t = make(target)
                target, region = t.map, region | t.region
                words.append(t.description)
        room = METHOD_DEFAULTS[request.method].push_room
        if request.depth_push and room:  # where perspective takes the pushed object
            region |= perspective_room(pushed, request.depth_push, room)
        parts.append(Part("depth", Target(target, region, "depth " + ", ".join(words))))
        if len(parts) == 1 and keeps_outline(request.method, request.depth_push):
            # the push changes the object's depth, not its outline (nor the others')
            parts.append(Part("saliency", Target(mask.copy(), np.zeros_like(mask),
                                                 "keep the objects' outlines")))
    if not parts:
        raise ValueError("set a move, a scale, a depth push or a drawn target first")
    return parts


def object_of(run, last_maps) -> tuple[np.ndarray, np.ndarray]:
    """The object mask (H, W) bool and depth (H, W) of a run's final image: the labeler's where
    there is one, else the probes' `last_maps` (depth, P(object)) at the last step."""
    if run.labels is not None:
        return run.labels[1] > 0.5, run.labels[0]
    if last_maps is None:
        raise ValueError("this run's probe maps were dropped to free server memory: generate "
                         "it again to steer it")
    d, s = last_maps
    return s > 0.5, d


def carries(request: SteerRequest) -> bool:
    """Whether the edit first carries the object's latent pixels to where the move puts them:
    a move of the object found (no drawn target: painted, flipped or swapped), with a method
    that carries moves."""
    return (METHOD_DEFAULTS[request.method].carry_moves and request.drawn == "none"
            and (request.move_x, request.move_y) != (0, 0))


def make_edit(request: SteerRequest, parts: list[Part], layers: list[str],
              mask: np.ndarray) -> Edit:
    """The Edit the request asks for (every part in one run), with its method's default layers
    (when the model has them), iterations and region: where the object is (`mask`) and every
    part's target, when the method confines its update to a region."""
    d = METHOD_DEFAULTS[request.method]
    region = np.logical_or.reduce([mask] + [p.target.region for p in parts]
                                  + [p.target.map for p in parts if p.task == "saliency"])
    # an object mask is steered toward less its outline (the method's saliency_shrink)
    steered = [(p.task, shrink_mask(p.target.map, d.saliency_shrink) if p.task == "saliency"
                else p.target.map) for p in parts]
    (task, target), *more = steered
    carry = carries(request)
    if carry:  # the carried object may need reshaping where it lands (a scaled move)
        region = region | move_mask(mask, request.move_x, request.move_y).map
    return Edit(task, target, request.method, request.strength,
                range(request.first_step, request.last_step + 1),
                layers=default_layers(request.method, layers), iterations=d.iterations,
                shift=(request.move_x, request.move_y), also=tuple(more),
                region=region if d.region_margin is not None else None,
                region_margin=d.region_margin, moved_from=mask if carry else None,
                carry_step=request.first_step if carry else None)


@dataclass
class PartOutcome:
    """One part of a finished edit: its target, what the labeler reads in the edited image
    (mask or depth) and its scores."""
    task: str
    target: np.ndarray  # (H, W) bool mask or float depth
    achieved: np.ndarray | None  # (H, W) labeler's P(object) or depth of the edited image
    scores: dict
    description: str


def score_edit(labeler, before: np.ndarray, after: np.ndarray, parts: list[Part],
               mask: np.ndarray, depth: np.ndarray) -> list[PartOutcome]:
    """Each part scored by the labeler (empty scores without one). Object mask part: Dice with
    the target, the centre's shift and the asked one, the area; depth part: the object's
    labelled depth where it was and where it is after, the asked change (the target's mean
    over the object where the mask part puts it less the depth's mean over it now) and the
    Pearson r of the whole labelled depth map with the target, before and after. The change
    outside the edit is measured outside every part's region."""
    if labeler is None:
        return [PartOutcome(p.task, p.target.map, None, {}, p.target.description)
                for p in parts]
    d, sal = labeler(np.stack([before, after]))
    region = np.logical_or.reduce([p.target.region for p in parts])
    object_after = parts[0].target.map if parts[0].task == "saliency" else mask
    out = []
    for p in parts:
        if p.task == "saliency":
            s = score_move(labeler, before, after, p.target)
            ty, tx = centroid(p.target.map)
            oy, ox = centroid(mask)
            s["asked_x"], s["asked_y"] = tx - ox, ty - oy
            s["target_cut"] = p.cut
            achieved = sal[1]
        else:
            s = score_depth(labeler, before, after, mask, region)
            goal = p.target.map[object_after].mean() if object_after.any() else np.nan
            now = depth[mask].mean() if mask.any() else np.nan
            s["asked"] = float(goal - now)
            s["map_r_before"] = pearson(d[0], p.target.map)
            s["map_r_after"] = pearson(d[1], p.target.map)
            achieved = d[1]
        s["outside_change"] = outside_change(before, after, region | (sal[0] > 0.5)
                                             | (sal[1] > 0.5))
        out.append(PartOutcome(p.task, p.target.map, achieved, s, p.target.description))
    return out


@dataclass
class EditOutcome:
    """A finished intervention on a run: the edited image, every part's target and scores,
    and what was asked. `task`, `target`, `achieved`, `scores` and `description` are the first
    part's (the object mask part when there is one)."""
    image: np.ndarray  # (H, W, 3) uint8, the edited generation
    parts: list[PartOutcome]
    seconds: float
    request: SteerRequest
    probe_steps: dict = field(default_factory=dict)  # edited step -> probe step (0-based)
    run: object | None = None  # the edited generation as a runs.Run (probe outputs per step)
    carried: tuple[int, int] | None = None  # latent pixels a move's latent was carried by

    task = property(lambda self: self.parts[0].task)
    target = property(lambda self: self.parts[0].target)
    achieved = property(lambda self: self.parts[0].achieved)
    scores = property(lambda self: self.parts[0].scores)

    @property
    def description(self) -> str:
        return "; ".join(p.description for p in self.parts)

    def settings(self) -> dict:
        """What was asked, as recorded in an export: method, strength, moves, drawn target,
        steps, and the step a move's latent was carried at and by how many latent pixels
        (None: not carried, also for a move under half a latent pixel)."""
        r = asdict(self.request)
        return {"method": r["method"], "strength": r["strength"], "move_x": r["move_x"],
                "move_y": r["move_y"], "scale": r["scale"], "depth_push": r["depth_push"],
                "drawn": r["drawn"], "depth_shift": [r["shift_x"], r["shift_y"]],
                "region_margin": METHOD_DEFAULTS[r["method"]].region_margin,
                "saliency_shrink": METHOD_DEFAULTS[r["method"]].saliency_shrink,
                "carry_step": r["first_step"] if self.carried else None,
                "carried_latent_px": list(self.carried) if self.carried else None,
                "steps": [r["first_step"], r["last_step"]]}


@dataclass
class EditProgress:
    step: int  # 0-based index of the step just re-run
    x0: np.ndarray  # (S, S, 3) uint8 its decoded x0 prediction


@dataclass
class EditView:
    """The finished edit as displayed: images DISPLAY_SIZE square, and the score card."""
    before: np.ndarray
    after: np.ndarray
    target: np.ndarray
    achieved: np.ndarray
    score: str
