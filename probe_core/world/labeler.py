"""Depth and saliency labelers for generated images (the paper's MiDaS and TRACER, for our scenes).

    >>> labeler = SceneLabeler.load("weights/labeler")
    >>> depth, saliency = labeler(images)   # images (N, 64, 64, 3) uint8
    >>> depth.shape, saliency.shape         # (N, 64, 64) z-normalised inverse depth, P(object)

A small encoder-decoder CNN trained on renders, whose exact depth and object masks we know.
It is trained on renders passed through the model's own VAE (encode, decode) and blurred at
random, so it reads the softer images the generator makes. Depth is MiDaS-style relative
inverse depth (larger is nearer), z-normalised per image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import dice, partial_correlation, pearson, rmse, zscore
from ..settings import SEEDS, shown_path
from .images import random_blur, to_tensor


def inverse_depth_target(depth: np.ndarray) -> np.ndarray:
    """(…, H, W) z-depth -> per-image z-normalised inverse depth (near is high)."""
    inv = 1.0 / np.asarray(depth, float)
    if inv.ndim == 2:
        return zscore(inv)
    return np.stack([zscore(d) for d in inv])


def check_images(images) -> np.ndarray:
    """The labelers' input: (N, H, W, 3) uint8, else ValueError."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"labeler wants (N, H, W, 3) uint8 images, got {images.shape} "
                         f"{images.dtype}")
    return images


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class LabelerNet(nn.Module):
    """U-Net with three scales. (B, 3, H, W) in [-1, 1] -> (B, 2, H, W): depth, saliency logit."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.dec2, self.dec1 = _block(4 * w + 2 * w, 2 * w), _block(2 * w + w, w)
        self.head = nn.Conv2d(w, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        e3 = self.enc3(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2), e1], 1))
        return self.head(d1)


class SceneLabeler:
    """Callable labeler: uint8 images in, (z-normalised inverse depth, object probability) out.

        >>> labeler = SceneLabeler(LabelerNet())
        >>> depth, saliency = labeler(np.zeros((2, 64, 64, 3), np.uint8))
    """

    def __init__(self, net: LabelerNet, info: dict | None = None):
        self.net = net.eval()
        self.info = info or {}

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = check_images(images)
        depths, sals = [], []
        for i in range(0, len(images), 128):
            out = self.net(to_tensor(images[i:i + 128]))
            depths.append(out[:, 0].numpy())
            sals.append(torch.sigmoid(out[:, 1]).numpy())
        depth = np.concatenate(depths)
        return np.stack([zscore(d) for d in depth]).astype(np.float32), np.concatenate(sals)

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file(self.net.state_dict(), str(folder / "labeler.safetensors"))
        (folder / "labeler.json").write_text(json.dumps(self.info, indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "SceneLabeler":
        from safetensors.torch import load_file

        folder = Path(folder)
        path = folder / "labeler.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"no labeler at {shown_path(folder)} (labeler.safetensors "
                                    "missing)")
        try:
            info = json.loads((folder / "labeler.json").read_text()) if (
                folder / "labeler.json").is_file() else {}
            if not isinstance(info, dict):
                raise ValueError("labeler.json does not hold an object")
            net = LabelerNet(int(info.get("width", 32)))
            net.load_state_dict(load_file(str(path)))
        except Exception as err:  # a damaged file: say which, whatever the reader raised
            raise ValueError(f"the labeler in {folder.name}/ cannot be read "
                             f"({type(err).__name__}: {str(err)[:200]}): the files are "
                             "damaged; restore them or run `scene-probe train-labeler`") from None
        return cls(net, info)


@torch.no_grad()
def vae_round_trip(vae, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """(N, H, W, 3) uint8 -> the same images encoded (mode) and decoded by `vae`."""
    out = []
    for i in range(0, len(images), batch):
        x = to_tensor(images[i:i + batch])
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        out.append(((rec + 1) * 127.5 + 0.5).permute(0, 2, 3, 1).byte().numpy())
    return np.concatenate(out)


def labeler_loss(net: LabelerNet, x: torch.Tensor, depth_z: torch.Tensor, mask: torch.Tensor):
    """Huber on z-normalised inverse depth (the paper's depth loss) + BCE on the object mask.
    x: (B, 3, H, W); depth_z, mask: (B, H, W)."""
    out = net(x)
    return F.huber_loss(out[:, 0], depth_z) + F.binary_cross_entropy_with_logits(out[:, 1], mask)


@dataclass(frozen=True)
class LabelerTraining:
    """How train_labeler fits a labeler."""
    steps: int = 3000  # optimiser steps, over which the one-cycle learning rate runs
    batch: int = 32  # images a step
    lr: float = 2e-3  # peak learning rate
    width: int = 32  # LabelerNet's channels at full resolution
    seed: int = 0  # seeds torch (initial weights) and numpy (batches, blur, flips)
    progress: bool = True  # show a progress bar


def train_labeler(images: np.ndarray, depths: np.ndarray, masks: np.ndarray,
                  training: LabelerTraining = LabelerTraining()) -> SceneLabeler:
    """Fit on (N, H, W, 3) uint8 images (already VAE round-tripped if wanted), (N, H, W) z-depth
    and (N, H, W) bool masks. Adds random blur and flips."""
    from tqdm.auto import tqdm

    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    target_d = torch.from_numpy(inverse_depth_target(depths)).float()
    target_m = torch.from_numpy(masks.astype(np.float32))
    net = LabelerNet(training.width)
    opt = torch.optim.AdamW(net.parameters(), lr=training.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=training.lr, total_steps=training.steps)
    for _ in tqdm(range(training.steps), desc="labeler", disable=not training.progress):
        idx = rng.integers(0, len(images), training.batch)
        im = random_blur(images[idx], rng, max_sigma=1.2)
        x, d, m = to_tensor(im), target_d[idx], target_m[idx]
        flip = torch.from_numpy(rng.random(training.batch) < 0.5)
        x[flip], d[flip], m[flip] = x[flip].flip(-1), d[flip].flip(-1), m[flip].flip(-1)
        loss = labeler_loss(net, x, d, m)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return SceneLabeler(net, {"width": training.width, "steps": training.steps,
                              "batch": training.batch, "lr": training.lr, "n_images": len(images)})


def evaluate_labeler(labeler: SceneLabeler, images: np.ndarray, depths: np.ndarray,
                     masks: np.ndarray) -> dict:
    """Mean Dice (mask at p > 0.5), depth Pearson and RMSE (z-normalised inverse depth) over
    (N, H, W, 3) uint8 images with their exact (N, H, W) z-depths and masks, and the depth's
    partial correlation beyond the layout (the set's mean depth target, one map for every
    image, regressed out): how well it sees each scene's own depth, not the floor-and-sky."""
    pred_d, pred_s = labeler(images)
    true_d = inverse_depth_target(depths)
    layout = true_d.mean(0)
    return {
        "n": len(images),
        "dice": float(np.mean([dice(p > 0.5, m) for p, m in zip(pred_s, masks)])),
        "depth_pearson": float(np.mean([pearson(p, t) for p, t in zip(pred_d, true_d)])),
        "depth_rmse": float(np.mean([rmse(p, t) for p, t in zip(pred_d, true_d)])),
        "depth_partial": float(np.mean([partial_correlation(p, t, layout)
                                        for p, t in zip(pred_d, true_d)])),
    }


def held_out_scores(labeler: SceneLabeler, vae, n_eval: int = len(SEEDS.labeler_eval)) -> dict:
    """The labeler on the first n_eval held-out seeds of SEEDS.labeler_eval: standard renders raw
    and through `vae` (encode, decode), and the same seeds' varied renders (scenes.vary_scene:
    other cameras and light, floor-coloured and grey objects, touching objects) through `vae`."""
    from .scenes import render_many

    seeds = range(SEEDS.labeler_eval.start, SEEDS.labeler_eval.start + n_eval)
    images, depths, masks, _ = render_many(seeds)
    v_images, v_depths, v_masks, _ = render_many(seeds, varied=True)
    return {
        "renders": evaluate_labeler(labeler, images, depths, masks),
        "vae_round_trip": evaluate_labeler(labeler, vae_round_trip(vae, images), depths, masks),
        "varied_vae_round_trip": evaluate_labeler(labeler, vae_round_trip(vae, v_images),
                                                  v_depths, v_masks),
        "seeds": [seeds[0], seeds[-1]],
    }


def build_scene_labeler(vae, n_images: int = 8000, steps: int = 3000,
                        n_eval: int = len(SEEDS.labeler_eval), varied_share: float = 0.0,
                        progress: bool = True) -> SceneLabeler:
    """Render n_images scenes (seeds from SEEDS.labeler_train; the last `varied_share` of them
    as their varied scenes), round-trip them through `vae`, train, and record held-out scores
    (held_out_scores)."""
    from .scenes import render_many

    if not 0 <= varied_share <= 1:
        raise ValueError(f"varied_share must be in [0, 1], got {varied_share}")
    n_varied = int(round(n_images * varied_share))
    start = SEEDS.labeler_train
    split = start + n_images - n_varied
    parts = [render_many(seeds, varied=varied) for seeds, varied in
             ((range(start, split), False), (range(split, start + n_images), True)) if len(seeds)]
    images, depths, masks = (np.concatenate([p[k] for p in parts]) for k in range(3))
    labeler = train_labeler(vae_round_trip(vae, images), depths, masks,
                            LabelerTraining(steps=steps, progress=progress))
    labeler.info["varied_share"] = varied_share
    labeler.info["held_out"] = held_out_scores(labeler, vae, n_eval)
    return labeler
