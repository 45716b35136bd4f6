"""What the page shows for a probed image (`ProbeDemo.probe_image`): one tile per step and a table of
the probes' scores against the labeler's labels of the image and, for a render, the truth.

    >>> view = image_probe_view(image, maps, labels, truth, prompt, "up1.1 (8x8)", seconds)
    >>> view.tiles[0]              # (tile (2T, 2T, 3) uint8, "step 1")
    >>> view.scores["labeler"]     # {"dice": [...per step], "pearson": [...]}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..metrics import dice, pearson
from ..settings import THUMB_SIZE
from ..viz import colorize_depth, overlay_mask, to_size
from .inputs import MAX_SIDE


@dataclass
class ImageProbe:
    image: np.ndarray  # (H, W, 3) uint8, the probed image at the model's size
    tiles: list[tuple[np.ndarray, str]]  # per step: image | depth / saliency over image | truth
    scores: dict  # "labeler" / "truth" -> {"dice": [...], "pearson": [...]} per step
    table: str  # Markdown
    seconds: float


def check_image(image, size: int) -> np.ndarray:
    """An uploaded image as (size, size, 3) uint8: RGB(A) or grey, any size up to MAX_SIDE,
    resized (bilinear) to the model's size."""
    if image is None:
        raise ValueError("upload an image or pick a held-out render first")
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or min(a.shape[:2]) < 1:
        raise ValueError(f"an image must be (H, W, 3) pixels, got shape {a.shape}")
    if max(a.shape[:2]) > MAX_SIDE:
        raise ValueError(f"image is {a.shape[1]}x{a.shape[0]}; at most {MAX_SIDE} px a side")
    if a.dtype != np.uint8:
        a = np.clip(np.nan_to_num(a.astype(np.float64)), 0, 255).astype(np.uint8)
    a = a[..., :3]
    if a.shape[:2] != (size, size):
        a = np.array(Image.fromarray(a).resize((size, size), Image.BILINEAR))
    return a


def _scores(maps: list[tuple[np.ndarray, np.ndarray]], depth: np.ndarray, mask: np.ndarray):
    return {"dice": [dice(p > 0.5, mask) for _, p in maps],
            "pearson": [pearson(d, depth) for d, _ in maps]}


def image_probe_view(image: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray]],
                     labels: tuple | None, truth: tuple | None, prompt: str, layer: str,
                     seconds: float) -> ImageProbe:
    """maps: per step (depth (H, W), P(object) (H, W)); labels, truth: (depth, mask) or None."""
    scores = {}
    if labels is not None:
        scores["labeler"] = _scores(maps, *labels)
    if truth is not None:
        scores["truth"] = _scores(maps, *truth)
    tiles = []
    for k, (depth, prob) in enumerate(maps):
        top = [to_size(image, THUMB_SIZE), to_size(colorize_depth(depth), THUMB_SIZE)]
        bottom = [to_size(overlay_mask(image, prob, 0.7), THUMB_SIZE),
                  to_size(colorize_depth(truth[0] if truth is not None else labels[0])
                          if (truth or labels) is not None else image, THUMB_SIZE)]
        tiles.append((np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0),
                      f"step {k + 1}"))
    head = "| step | " + " | ".join(f"{w} vs {src}" for src in scores
                                     for w in ("Dice", "depth r")) + " |"
    lines = [f"Probes of layer {layer} on this image, noised to each step's level; prompt "
             f"\"{prompt[:80]}\"{' (empty: unconditional)' if not prompt else ''}. "
             f"{len(maps)} UNet calls in {seconds:.2f} s. Tiles: image | probe depth / probe "
             f"object | {'true' if truth is not None else 'labelled'} depth.", "",
             head, "|---|" + "---|" * (2 * len(scores))]
    for k in range(len(maps)):
        cells = [f"{scores[src][m][k]:.3f}" for src in scores for m in ("dice", "pearson")]
        lines.append(f"| {k + 1} | " + " | ".join(cells) + " |")
    return ImageProbe(image, tiles, scores, "\n".join(lines) + "\n", seconds)
