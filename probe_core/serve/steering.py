"""Steering from the app's sliders: check the request, build the target, score the result.

    >>> request = check_steer(move_x=16, first_step=0, last_step=3, method="guided", ...)
    >>> task, target, cut = build_target(mask, depth, request)
    >>> scores = score_edit(labeler, before, after, task, target, mask, request.depth_push)

Moves and scales edit the salient object's mask (task "saliency"); a depth push alone edits
the depth map inside it (task "depth").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..edits.methods import METHOD_DEFAULTS, METHODS, Edit, default_layers
from ..edits.scores import score_depth, score_move
from ..edits.targets import Target, centroid, move_mask, push_depth, scale_mask
from .inputs import bounded, echo

MAX_SCALE = (0.25, 4.0)
MAX_PUSH = 3.0  # z-units of inverse depth
MAX_STRENGTH = 10.0


@dataclass
class SteerRequest:
    """What the sliders ask for, checked: moves in pixels, steps 0-based."""
    method: str
    move_x: int
    move_y: int
    scale: float
    depth_push: float
    strength: float
    first_step: int
    last_step: int


def check_steer(move_x, move_y, scale, depth_push, strength, first_step, last_step, method,
                max_move: int, num_inference_steps: int) -> SteerRequest:
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
    return SteerRequest(method, dx, dy, factor, push, strength, first, last)


BOTH = ("both a move or scale and a depth push are set: an edit does one of them; set the "
        "other back (move 0, scale 1, or push 0)")


def _moves(request: SteerRequest) -> bool:
    return bool(request.move_x or request.move_y or request.scale != 1.0)


def plan_text(move_x, move_y, scale, depth_push) -> str:
    """What an edit with these slider values will do, in words (or why it will not run)."""
    try:
        dx, dy = round(float(move_x)), round(float(move_y))
        factor, push = float(scale), float(depth_push)
    except (TypeError, ValueError):
        return "Edit to run: none (a slider holds something that is not a number)"
    moves = bool(dx or dy or factor != 1.0)
    if moves and push:
        return "Edit to run: none. " + BOTH[0].upper() + BOTH[1:] + "."
    if moves:
        parts = [f"move x {dx:+d} px" if dx else "", f"move y {dy:+d} px" if dy else "",
                 f"scale x{factor:g}" if factor != 1.0 else ""]
        return "Edit to run: **" + ", ".join(p for p in parts if p) + "** (object mask)"
    if push:
        return (f"Edit to run: **push depth {push:+g} z-units** "
                f"({'nearer' if push > 0 else 'farther'}, depth map inside the object)")
    return "Edit to run: none yet: move a slider"


def build_target(mask: np.ndarray, depth: np.ndarray,
                 request: SteerRequest) -> tuple[str, Target, float]:
    """(task, target, cut) for the object `mask` (H, W) bool and `depth` (H, W); `cut` is the
    share of the moved object that falls outside the image."""
    if not mask.any():
        raise ValueError("no salient object found in this image to steer")
    if _moves(request) and request.depth_push:
        raise ValueError(BOTH)
    if _moves(request):
        scaled = scale_mask(mask, request.scale)
        target = move_mask(scaled.map, request.move_x, request.move_y)
        target.region = target.region | scaled.region
        cut = 1.0 - float(target.map.sum()) / max(float(scaled.map.sum()), 1.0)
        return "saliency", target, cut
    if request.depth_push:
        return "depth", push_depth(depth, mask, request.depth_push), 0.0
    raise ValueError("set a move, a scale or a depth push first")


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


def make_edit(request: SteerRequest, task: str, target: Target, layers: list[str]) -> Edit:
    """The Edit the request asks for, with its method's default layers (when the model has
    them) and iterations."""
    return Edit(task, target.map, request.method, request.strength,
                range(request.first_step, request.last_step + 1),
                layers=default_layers(request.method, layers),
                iterations=METHOD_DEFAULTS[request.method].iterations,
                shift=(request.move_x, request.move_y))


def score_edit(labeler, before: np.ndarray, after: np.ndarray, task: str, target: Target,
               mask: np.ndarray, push: float, cut: float) -> tuple[dict, np.ndarray | None]:
    """(scores, achieved map) by the labeler; ({}, None) without one. Scores for a move: Dice
    with the target, the centre's shift and the asked one; for a push, the object's depth
    change. The achieved map is the labeler's mask (move) or depth (push) of the edited image."""
    if labeler is None:
        return {}, None
    depth, saliency = labeler(after[None])
    if task == "saliency":
        s = score_move(labeler, before, after, target)
        ty, tx = centroid(target.map)
        oy, ox = centroid(mask)
        s["asked_x"], s["asked_y"] = tx - ox, ty - oy
        s["target_cut"] = cut
        return s, saliency[0]
    s = score_depth(labeler, before, after, mask, target.region)
    s["asked"] = push
    return s, depth[0]


@dataclass
class EditOutcome:
    """A finished intervention on a run: images, target, scores and what was asked."""
    task: str  # "saliency" or "depth"
    image: np.ndarray  # (H, W, 3) uint8, the edited generation
    target: np.ndarray  # (H, W) the target map
    achieved: np.ndarray | None  # (H, W) the labeler's reading of the edited image
    scores: dict
    seconds: float
    request: SteerRequest
    description: str
    probe_steps: dict = field(default_factory=dict)  # edited step -> probe step (0-based)

    def settings(self) -> dict:
        """What was asked, as recorded in an export: method, strength, moves, steps."""
        r = asdict(self.request)
        return {"method": r["method"], "strength": r["strength"], "move_x": r["move_x"],
                "move_y": r["move_y"], "scale": r["scale"], "depth_push": r["depth_push"],
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
