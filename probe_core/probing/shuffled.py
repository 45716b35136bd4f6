"""The control a sceptic asks of a probe edit: probes fitted to shuffled labels.

    >>> shuffled = fit_shuffled_probes(pipe, probes.settings, labeler, prompts, seeds)
    >>> shuffled.save("weights/probes/tiny-scenes/shuffled")

The same generations, the same activations, layers, steps, readout and fitting as the trained
probe set, but every image's activations are paired with another image's depth map and object
mask (a derangement: no image keeps its own labels). A probe fitted so can only learn what
holds across images whatever they show (where the floor usually is, how near the bottom of the
frame usually is), none of what this image holds. Steering with it through the same guidance
machinery is the edit's control: whatever it moves, the probes' content did not.
"""

from __future__ import annotations

import numpy as np

from .collect import CollectSettings, collect
from .fitting import FitOptions, fit_probe_set
from .probes import ProbeSet, ProbeSettings

SHUFFLE_SEED = 0


def derangement(n: int, seed: int = SHUFFLE_SEED) -> np.ndarray:
    """(n,) int64: a permutation of range(n) with no fixed point (n >= 2): a random order,
    each image then given the labels of the next image in it."""
    if n < 2:
        raise ValueError(f"shuffling labels needs at least 2 images, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    out = np.empty(n, np.int64)
    out[order] = np.roll(order, -1)
    return out


def fit_shuffled_probes(pipe, settings: ProbeSettings, labeler, prompts: list[str],
                        seeds: list[int], lam: float = 1e-3, progress: bool = True
                        ) -> ProbeSet:
    """A probe set with `settings` (a trained set's: same model, layers, schedule, readout)
    fitted on the generations of (prompts, seeds), each image's activations against another
    image's labels (`derangement`)."""
    data = collect(pipe, prompts, seeds, labeler,
                   CollectSettings.for_probes(settings, keep_x0=False), progress=progress)
    order = derangement(data.n)
    probes = fit_probe_set(settings, sorted(data.acts), lambda s, l: data.acts[(s, l)],
                           data.depth[order], data.saliency[order], data.latent_hw,
                           FitOptions(lam, progress, desc="fit shuffled"))
    probes.extra = {"control": f"labels shuffled across images (derangement, seed "
                               f"{SHUFFLE_SEED})", "n_train": data.n,
                    "seeds": [int(min(seeds)), int(max(seeds))], "lam": lam}
    return probes
