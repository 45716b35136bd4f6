"""A small CNN that reads scene attributes off an image, to measure prompt adherence.

    >>> clf = train_attribute_classifier(n_images=20_000)          # on renders, a few minutes
    >>> pred = predict_attributes(clf, images)                       # images: (N, 64, 64, 3) uint8
    >>> accuracy(pred, [caption_attributes(c) for c in captions])

Attributes: colour and shape of the largest object (the first one a caption names), and the
floor's colour and pattern. Trained on renders blurred at random, so that it also reads the
softer images a small generator makes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .scenes import (FLOOR_COLOURS, FLOOR_PATTERNS, OBJECT_COLOURS, SHAPES, largest_object,
                     render_scene, sample_scene)

ATTRIBUTES = {
    "colour": list(OBJECT_COLOURS),
    "shape": list(SHAPES),
    "floor_colour": list(FLOOR_COLOURS),
    "floor_pattern": list(FLOOR_PATTERNS),
}
CLASSIFIER_FIRST_SEED = 3_000_000  # its training renders: apart from model training and tests


def caption_attributes(caption: str) -> dict[str, int]:
    """Class indices named by a caption: 'a {size} {colour} {shape} ... on a {colour} {pattern} floor'."""
    words = caption.split()
    if len(words) < 8 or words[-1] != "floor" or words[0] != "a":
        raise ValueError(f"not a scene caption: {caption!r}")
    return {
        "colour": ATTRIBUTES["colour"].index(words[2]),
        "shape": ATTRIBUTES["shape"].index(words[3]),
        "floor_colour": ATTRIBUTES["floor_colour"].index(words[-3]),
        "floor_pattern": ATTRIBUTES["floor_pattern"].index(words[-2]),
    }


class AttributeClassifier(nn.Module):
    """A strided stem (64 -> 32 px), three conv stages (-> 4 px), mean+max pooling, and one
    linear head per attribute.

        >>> logits = AttributeClassifier()(torch.zeros(2, 3, 64, 64))  # {'colour': (2, 10), ...}
    """

    def __init__(self, width: int = 32):
        super().__init__()
        chans = [width, 2 * width, 4 * width, 4 * width]
        layers = [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.SiLU()]
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                       nn.Conv2d(cout, cout, 3, stride=2, padding=1), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleDict({k: nn.Linear(chans[-1] * 2, len(v))
                                    for k, v in ATTRIBUTES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) in [-1, 1] -> logits per attribute, (B, n_classes)."""
        f = self.features(x)
        f = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        return {k: head(f) for k, head in self.heads.items()}


def _blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = images.copy()
    for i in range(len(out)):
        sigma = rng.uniform(0, 1.5)
        if sigma > 0.3:
            out[i] = cv2.GaussianBlur(out[i], (0, 0), sigma)
    return out


def _to_input(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def render_labelled(seeds: range):
    """Renders of `seeds` (skipping scenes with no visible object), their true attributes and
    their captions."""
    images, labels, captions = [], [], []
    for s in seeds:
        sc = render_scene(sample_scene(s))
        big = largest_object(sc)
        if big is None:
            continue
        images.append(sc.image)
        captions.append(sc.caption)
        labels.append({"colour": ATTRIBUTES["colour"].index(big.colour),
                       "shape": ATTRIBUTES["shape"].index(big.shape),
                       "floor_colour": ATTRIBUTES["floor_colour"].index(sc.spec.floor_colour),
                       "floor_pattern": ATTRIBUTES["floor_pattern"].index(sc.spec.floor_pattern)})
    return np.stack(images), labels, captions


def train_attribute_classifier(n_images: int = 20_000, steps: int = 2_000, batch: int = 128,
                               lr: float = 2e-3, seed: int = 0, progress: bool = True):
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images, labels, _ = render_labelled(range(CLASSIFIER_FIRST_SEED, CLASSIFIER_FIRST_SEED + n_images))
    y = {k: torch.tensor([lab[k] for lab in labels]) for k in ATTRIBUTES}
    model = AttributeClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in tqdm(range(steps), desc="attribute classifier", disable=not progress):
        idx = rng.integers(0, len(images), batch)
        x = _to_input(_blur(images[idx], rng))
        flip = torch.from_numpy(rng.random(batch) < 0.5)
        x[flip] = x[flip].flip(-1)
        logits = model(x)
        loss = sum(F.cross_entropy(logits[k], y[k][idx]) for k in ATTRIBUTES)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict_attributes(model: AttributeClassifier, images: np.ndarray) -> dict[str, np.ndarray]:
    """images: (N, H, W, 3) uint8 -> predicted class index per attribute, (N,) each."""
    out = {k: [] for k in ATTRIBUTES}
    for i in range(0, len(images), 256):
        logits = model(_to_input(images[i:i + 256]))
        for k in ATTRIBUTES:
            out[k].append(logits[k].argmax(1).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def accuracy(pred: dict[str, np.ndarray], truth: list[dict[str, int]]) -> dict[str, float]:
    return {k: float(np.mean(pred[k] == np.array([t[k] for t in truth]))) for k in ATTRIBUTES}


def save_classifier(model: AttributeClassifier, path: str | Path) -> None:
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path))


def load_classifier(path: str | Path) -> AttributeClassifier:
    from safetensors.torch import load_file

    model = AttributeClassifier()
    model.load_state_dict(load_file(str(path)))
    return model.eval()
