"""Steering from the app's sliders and drawn targets: check what the page sends and turn it
into what the library plans, an `EditRequest` and the method's `EditSettings`.

    >>> sliders = SliderValues(move_x=16, depth_push=1.0, first_step=5, last_step=8)
    >>> request, settings = steer_request(sliders, SteerLimits(max_move=32,
    ...                                   num_inference_steps=15, image_size=64))
    >>> plan_text(16, 0, 1.0, 1.0)          # what the edit will do, in words, for the page
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..edits.edit_settings import METHOD_DEFAULTS, EditSettings, defaults_of
from ..edits.plan import KEEP_OUTLINES
from ..edits.request import DRAWN, EditRequest
from .inputs import MAX_SIDE, bounded, echo

MAX_SCALE = (0.25, 4.0)
MAX_PUSH = 3.0  # z-units of inverse depth
MAX_STRENGTH = 10.0


@dataclass(frozen=True)
class SliderValues:
    """What the page's steering controls send, not yet checked: moves and shifts in pixels,
    steps 0-based (None: the method's, within the run), strength None: the method's,
    `painted` an (H, W) mask or (H, W, C) brush layer at any size when `drawn` is "paint"."""
    move_x: object = 0
    move_y: object = 0
    scale: object = 1.0
    depth_push: object = 0.0
    strength: object = None
    first_step: object = None
    last_step: object = None
    method: object = None  # None: the model's default method
    drawn: object = "none"
    painted: object = None
    shift_x: object = 0
    shift_y: object = 0


@dataclass(frozen=True)
class SteerLimits:
    """What a run and a model allow a steering request."""
    max_move: int  # pixels, either way
    num_inference_steps: int  # of the run being steered
    image_size: int  # pixels a side of the model's images


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


def default_steps(settings: EditSettings, sliders: SliderValues,
                  num_inference_steps: int) -> tuple[object, object]:
    """(first, last) edited step as asked, the method's (within the run) where not given; a
    last step given alone pulls the default first step down to it."""
    first, last = settings.steps_within(num_inference_steps)
    last_step = last if sliders.last_step is None else sliders.last_step
    first_step = sliders.first_step
    if first_step is None:
        first_step = first
        if isinstance(last_step, (int, float)) and last_step == last_step:
            first_step = max(0, min(first_step, int(last_step)))
    return first_step, last_step


def steer_request(sliders: SliderValues, limits: SteerLimits,
                  default_method: str = "guided") -> tuple[EditRequest, EditSettings]:
    """(what is asked, how: the method's defaults with the asked strength and steps), each
    value checked; ValueError naming the first bad one."""
    method = sliders.method or default_method
    settings = defaults_of(method)
    if settings is None:
        raise ValueError(f"method must be one of {', '.join(METHOD_DEFAULTS)}, got "
                         f"{echo(method)}")
    m = limits.max_move
    dx = int(round(bounded("move x", sliders.move_x, -m, m)))
    dy = int(round(bounded("move y", sliders.move_y, -m, m)))
    factor = bounded("scale", sliders.scale, *MAX_SCALE)
    push = bounded("depth push", sliders.depth_push, -MAX_PUSH, MAX_PUSH)
    strength = (settings.strength if sliders.strength is None
                else bounded("strength", sliders.strength, 0.0, MAX_STRENGTH))
    n = limits.num_inference_steps
    first_step, last_step = default_steps(settings, sliders, n)
    first = int(bounded("first edited step", first_step, 0, n - 1))
    last = int(bounded("last edited step", last_step, first, n - 1))
    drawn = "none" if sliders.drawn in (None, "") else sliders.drawn
    if not isinstance(drawn, str) or drawn not in DRAWN:
        raise ValueError(f"drawn target must be one of {', '.join(DRAWN)}, got {echo(drawn)}")
    sx = int(round(bounded("depth shift x", sliders.shift_x, -m, m)))
    sy = int(round(bounded("depth shift y", sliders.shift_y, -m, m)))
    mask = check_painted(sliders.painted, limits.image_size) if drawn == "paint" else None
    settings = settings.as_one_edit(first, last, strength)
    return EditRequest(dx, dy, factor, push, drawn, sx, sy, mask), settings


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
    defaults = defaults_of(method)
    if not any(mask_parts) and defaults is not None and defaults.keeps_outline(push):
        mask_parts = [KEEP_OUTLINES]
    if any(mask_parts):
        lines.append("**" + ", ".join(p for p in mask_parts if p) + "** (object mask)")
    if any(depth_parts):
        lines.append("**" + ", ".join(p for p in depth_parts if p) + "** (depth map)")
    if not lines:
        return "Edit to run: none yet: move a slider or pick a drawn target"
    return "Edit to run: " + "; ".join(lines) + (" — one edit, both parts" if len(lines) > 1
                                                 else "")
