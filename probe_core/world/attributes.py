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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..settings import SEEDS
from .images import random_blur, to_tensor
from .scenes import (FLOOR_COLOURS, FLOOR_PATTERNS, OBJECT_COLOURS, SHAPES, largest_object,
                     render_scene, sample_scene)

ATTRIBUTES = {
    "colour": list(OBJECT_COLOURS),
    "shape": list(SHAPES),
    "floor_colour": list(FLOOR_COLOURS),
    "floor_pattern": list(FLOOR_PATTERNS),
}


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
    images, labels, _ = render_labelled(range(SEEDS.classifier_train, SEEDS.classifier_train + n_images))
    y = {k: torch.tensor([lab[k] for lab in labels]) for k in ATTRIBUTES}
    model = AttributeClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in tqdm(range(steps), desc="attribute classifier", disable=not progress):
        idx = rng.integers(0, len(images), batch)
        x = to_tensor(random_blur(images[idx], rng, max_sigma=1.5))
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
        logits = model(to_tensor(images[i:i + 256]))
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
