"""The image-blind control for probe maps: what a fixed layout map scores, and what a probe reads
beyond it.

    >>> layout = layout_baseline(depths, masks)        # mean label maps of the training images
    >>> save_layout(layout, "weights/probes/tiny-scenes"); load_layout(...)
    >>> metrics.partial_correlation(probe_depth, label, layout["depth"])   # beyond the layout
    >>> ceiling = token_readout(label, (8, 8), "bilinear")         # the grid's best possible map

A scene's depth is mostly its layout: floor near at the bottom, sky far at the top. One fixed
map, the mean depth label of the probe-training images, used for every image, already
correlates with each image's labels. A probe map is worth something beyond that only if it
correlates with the labels after the fixed map is regressed out (the partial correlation), and
beats the fixed map image by image. The ceiling is the labels themselves averaged to a layer's
token grid and read out the same way: the most a probe of that grid can show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .readout import area_means, upsample_tokens

LAYOUT_FILE = "layout.safetensors"


def layout_baseline(depths: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """(N, H, W) depth labels and object masks -> their mean maps, (H, W) float32 each."""
    return {"depth": np.asarray(depths, np.float32).mean(0),
            "saliency": np.asarray(masks, np.float32).mean(0)}


def save_layout(layout: dict[str, np.ndarray], folder: str | Path) -> Path:
    from safetensors.torch import save_file

    path = Path(folder) / LAYOUT_FILE
    save_file({k: torch.from_numpy(np.ascontiguousarray(v, np.float32))
               for k, v in layout.items()}, str(path))
    return path


def load_layout(folder: str | Path) -> dict[str, np.ndarray] | None:
    """The layout baseline saved with a probe set, or None when it has none."""
    from safetensors.torch import load_file

    path = Path(folder) / LAYOUT_FILE
    if not path.is_file():
        return None
    return {k: v.numpy() for k, v in load_file(str(path)).items()}


def token_readout(label: np.ndarray, grid_hw: tuple[int, int], readout: str) -> np.ndarray:
    """(H, W) label -> its means over a (h, w) token grid, read back to (H, W) by `readout`."""
    H, W = label.shape
    tokens = area_means(label, grid_hw).reshape(1, -1, 1)  # (1, h*w, 1)
    return upsample_tokens(tokens, grid_hw, (H, W), readout).reshape(H, W).numpy()


@torch.no_grad()
def collect_layout(pipe, prompts: list[str], seeds: list[int], labeler,
                   num_inference_steps: int, guidance_scale: float,
                   progress: bool = True) -> dict[str, np.ndarray]:
    """The layout baseline of a probe set made before baselines were saved with it: generate
    its training images again (same prompts, seeds and schedule), label them, average."""
    from tqdm.auto import tqdm

    from .denoise import DenoiseSettings, decode_latents, denoise

    depths, masks = [], []
    for prompt, seed in tqdm(list(zip(prompts, seeds)), desc="layout", disable=not progress):
        *_, last = denoise(pipe, prompt, DenoiseSettings(num_inference_steps, guidance_scale,
                                                         decode_x0=False),
                           torch.Generator().manual_seed(int(seed)))
        d, s = labeler(decode_latents(pipe, last.latents)[None])
        depths.append(d[0])
        masks.append(s[0] > 0.5)
    return layout_baseline(np.stack(depths), np.stack(masks))
