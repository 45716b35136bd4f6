"""Write a run to a folder: enough to look at it again and to reproduce it.

    >>> paths = export_run(run, "out/", maps, record)   # steps.gif, final.png, ..., run.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..viz import colorize_depth, frames_to_gif, label_frame, overlay_mask, to_size

GIF_TILE = 192  # pixels a side of each panel of a steps.gif frame, whatever the image size


def run_record(run, model: str, scheduler: str, layer: str, probe_settings) -> dict:
    """What run.json records: enough to reproduce the run (the edit is added by export_run)."""
    return {"model": model, "prompt": run.prompt, "negative_prompt": run.negative_prompt,
            "seed": run.seed,
            "num_inference_steps": run.num_inference_steps,
            "guidance_scale": run.guidance_scale, "scheduler": scheduler, "layer": layer,
            "probe_settings": probe_settings.__dict__ if probe_settings else None,
            "seconds": run.seconds}


def export_run(run, folder: str | Path, maps: list, record: dict,
               x0_images: list[np.ndarray] | None = None) -> list[Path]:
    """steps.gif (x0 | depth | saliency per step), final.png, depth.png and saliency.png (the
    last step's maps, when there are maps), edited.png (after an edit), run.json (`record`
    plus the edit's settings and scores). maps: every step's (depth, P(object)) or None;
    x0_images: every step's x0 at full size (default: the run's step images)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    x0_images = x0_images if x0_images is not None else [s.x0_image for s in run.steps]
    for k, (x0, m) in enumerate(zip(x0_images, maps)):
        x0 = to_size(x0, GIF_TILE)  # resized first: colouring 512-px maps costs seconds
        parts = [x0]
        if m is not None:
            depth, prob = (to_size(a, GIF_TILE) for a in m)
            parts += [colorize_depth(depth), overlay_mask(x0, prob, 0.6)]
        what = "x0 | depth probe | saliency probe" if m is not None else "x0"
        frames.append(label_frame(np.concatenate(parts, 1),
                                  f"step {k + 1} of {len(x0_images)}   {what}"))
    frames_to_gif(frames, folder / "steps.gif")
    paths = [folder / "steps.gif"]
    Image.fromarray(run.image).save(folder / "final.png")
    paths.append(folder / "final.png")
    if maps[-1] is not None:
        depth, prob = maps[-1]
        Image.fromarray(colorize_depth(depth)).save(folder / "depth.png")
        Image.fromarray(overlay_mask(run.image, prob, 0.6)).save(folder / "saliency.png")
        paths += [folder / "depth.png", folder / "saliency.png"]
    record = dict(record)
    if run.edit is not None:
        Image.fromarray(run.edit.image).save(folder / "edited.png")
        paths.append(folder / "edited.png")
        record["intervention"] = {"settings": run.edit.record(), "scores": run.edit.scores,
                                  "description": run.edit.description}
    (folder / "run.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    paths.append(folder / "run.json")
    return paths
