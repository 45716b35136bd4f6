"""Target editors for interventions: the edited map a probe edit steers toward.

    >>> t = move_mask(mask, dx=16, dy=0)            # the object moved 16 px right
    >>> t.map, t.region                              # (H, W) target, (H, W) bool changed pixels
    >>> t = push_depth(depth, mask, delta=1.0)       # the object one z-unit nearer
    >>> shrink_mask(mask, 1)                         # the mask less its outermost pixel ring

Saliency targets are boolean masks; depth targets are maps in the probe's units (z-normalised
inverse depth: larger is nearer). Pure numpy; every editor returns a `Target` (the mask helpers
`shrink_mask` and `perspective_room` return bool masks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Target:
    map: np.ndarray  # (H, W): bool mask (saliency) or float map (depth)
    region: np.ndarray  # (H, W) bool: pixels whose target value the edit changed
    description: str


def _shift(a: np.ndarray, dx: int, dy: int, fill) -> np.ndarray:
    """Translate a 2-D array by (dx right, dy down) pixels; uncovered pixels get `fill`
    (a scalar, or 'edge' to repeat the border)."""
    H, W = a.shape
    if fill == "edge":
        padded = np.pad(a, ((abs(dy), abs(dy)), (abs(dx), abs(dx))), mode="edge")
    else:
        padded = np.pad(a, ((abs(dy), abs(dy)), (abs(dx), abs(dx))), constant_values=fill)
    y0, x0 = abs(dy) - dy, abs(dx) - dx
    return padded[y0:y0 + H, x0:x0 + W]


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    return mask.astype(bool)


def move_mask(mask: np.ndarray, dx: int, dy: int) -> Target:
    """The object moved by (dx right, dy down) pixels."""
    mask = _check_mask(mask)
    moved = _shift(mask, int(dx), int(dy), False)
    return Target(moved, mask ^ moved, f"move object by ({int(dx)}, {int(dy)}) px")


def scale_mask(mask: np.ndarray, factor: float) -> Target:
    """The object scaled by `factor` about its centroid (nearest-neighbour resampling)."""
    mask = _check_mask(mask)
    if not np.isfinite(factor) or factor <= 0:
        raise ValueError(f"scale factor must be a positive number, got {factor}")
    if not mask.any():
        return Target(mask.copy(), np.zeros_like(mask), "scale: no object")
    cy, cx = centroid(mask)
    H, W = mask.shape
    yy, xx = np.mgrid[0:H, 0:W]
    sy = np.round(cy + (yy + 0.5 - cy) / factor - 0.5).astype(int)
    sx = np.round(cx + (xx + 0.5 - cx) / factor - 0.5).astype(int)
    inside = (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
    scaled = np.zeros_like(mask)
    scaled[inside] = mask[sy[inside], sx[inside]]
    return Target(scaled, mask ^ scaled, f"scale object by {factor:g}")


def flip_mask(mask: np.ndarray) -> Target:
    """The mask mirrored left-right."""
    mask = _check_mask(mask)
    flipped = mask[:, ::-1].copy()
    return Target(flipped, mask ^ flipped, "flip object left-right")


def paint_mask(mask: np.ndarray, new_mask: np.ndarray) -> Target:
    """A mask drawn by the user replaces the object's."""
    mask, new_mask = _check_mask(mask), _check_mask(new_mask)
    if new_mask.shape != mask.shape:
        raise ValueError(f"painted mask {new_mask.shape} does not match {mask.shape}")
    return Target(new_mask.copy(), mask ^ new_mask, "painted mask")


def push_depth(depth: np.ndarray, mask: np.ndarray, delta: float) -> Target:
    """Inside the object, add `delta` (probe units; positive brings it nearer)."""
    mask = _check_mask(mask)
    if not np.isfinite(delta):
        raise ValueError(f"depth change must be a finite number, got {delta}")
    out = np.asarray(depth, np.float32).copy()
    out[mask] += delta
    return Target(out, mask.copy(), f"{'nearer' if delta > 0 else 'farther'} by {abs(delta):g}")


def shrink_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask with `pixels` of its outline peeled off (8-neighbour erosion); the mask itself
    when that would leave nothing (a speck stays a speck)."""
    mask = _check_mask(mask)
    out = mask
    for _ in range(max(int(pixels), 0)):
        padded = np.pad(out, 1, constant_values=False)
        H, W = out.shape
        out = np.logical_and.reduce([padded[1 + dy:1 + dy + H, 1 + dx:1 + dx + W]
                                     for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    return out if out.any() else mask.copy()


def perspective_room(region: np.ndarray, delta: float, rows: int) -> np.ndarray:
    """Where a depth push may redraw its object: `region` and up to `rows` pixels beyond it in
    the direction an object on a ground plane goes when pushed, up toward the horizon when
    farther (delta < 0), down when nearer."""
    region = _check_mask(region)
    room = region.copy()
    step = -1 if delta < 0 else 1
    for k in range(1, max(int(rows), 0) + 1):
        room |= _shift(region, 0, step * k, False)
    return room


def shift_depth(depth: np.ndarray, dx: int, dy: int) -> Target:
    """The whole depth map translated, borders repeated."""
    depth = np.asarray(depth, np.float32)
    out = _shift(depth, int(dx), int(dy), "edge")
    return Target(out, out != depth, f"shift depth by ({int(dx)}, {int(dy)}) px")


def swap_depth(depth: np.ndarray) -> Target:
    """Near and far exchanged about the map's mean."""
    depth = np.asarray(depth, np.float32)
    out = 2 * depth.mean() - depth
    return Target(out.astype(np.float32), np.ones(depth.shape, bool), "swap near and far")


def centroid(mask: np.ndarray) -> tuple[float, float]:
    """(row, col) of the mask's centre of mass in pixel-centre coordinates; NaN if empty."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return float("nan"), float("nan")
    return float(ys.mean() + 0.5), float(xs.mean() + 0.5)
