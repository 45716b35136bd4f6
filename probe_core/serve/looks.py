"""The app's "look closer" actions on a finished run: a word's attention, one pixel through
the run, the probes on a given image, two runs side by side. Each takes the `ProbeDemo` whose
model, probes and labeler it reads.

    >>> word_view(demo, run, "sphere", step=5)          # WordView
    >>> inspect_pixel(demo, run, 30, 40)                 # (H, W, 3) uint8 figure
    >>> compare(demo, run_a, run_b, step=8)              # CompareView
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import settings
from ..metrics import dice, pearson
from ..probing.cross_attention import word_maps, word_tokens
from ..probing.image_probe import probe_image as probe_image_steps
from ..world.labeler import inverse_depth_target
from ..world.scenes import render_scene, sample_scene
from ..world.tiny_ldm import check_prompt
from . import figures
from .image_probe_view import ImageProbe, check_image, image_probe_view
from .inputs import bounded, check_prompt_text, echo, whole
from .runs import Run


@dataclass
class CompareView:
    """Two runs at one step as displayed (figures.compare_grid) and the numbers."""
    image: np.ndarray
    text: str


@dataclass
class WordView:
    """A word's attention as displayed: over the image, the compare panels (None without
    probes) and the agreement numbers."""
    image: np.ndarray  # (S + band, S, 3) uint8
    compare: np.ndarray | None  # (S + band, 3 S + gaps, 3) uint8
    text: str
def word_view(demo, run: Run | None, word, step=None,
              layer: str | None = "best") -> WordView:
    """Where `word` attends: its cross-attention map (all layers, heads and its tokens) at
    0-based `step`, or averaged over every step when `step` is None, over that step's x0
    (the final image for all steps); beside it, the chosen layer's saliency probe at the
    same step (the last for all steps) and their agreement (Pearson r, Dice of the parts
    above 0.5), and the agreement with the labeler's object on the final image."""
    if run is None or not run.steps:
        raise ValueError("generate an image first")
    if not run.word_attention:
        raise ValueError("this run kept no word attention: tick 'Word attention maps' and "
                         "generate again")
    tokens = word_tokens(demo.pipe.tokenizer, run.prompt)
    positions = [(w, p) for w, p in tokens if w == word] if isinstance(word, str) else []
    if not positions:
        raise ValueError(f"no word {echo(word)} in this run's prompt; its words: "
                         + ", ".join(dict.fromkeys(w for w, _ in tokens)))
    layer = demo.resolve_layer(layer)
    n = len(run.word_attention)
    if step in (None, "", "all"):
        stack = torch.stack([a.float() for a in run.word_attention])
        k, when, image = n - 1, f"mean of {n} steps", run.image if run.done else None
    else:
        k = int(bounded("step", step, 0, n - 1))
        stack, when, image = run.word_attention[k].float(), f"step {k + 1}", None
    image = image if image is not None else demo.x0_image(run, k)
    heat = word_maps(stack, positions, demo.image_size)[word]
    maps = demo.maps(run, k, layer)
    text = f"**'{word}'** attention, {when}."
    compare = None
    if maps is not None:
        prob = maps[1]
        compare = figures.word_compare(image, prob, heat, word)
        text += (f" Against the saliency probe ({demo.layer_label(layer)}, step {k + 1}): "
                 f"Pearson r {pearson(heat, prob):+.2f}, Dice of the parts "
                 f"above 0.5 {dice(heat > 0.5, prob > 0.5):.2f}.")
    if run.labels is not None:
        obj = run.labels[1] > 0.5
        text += (f" Against the labeler's object on the final image: Pearson r "
                 f"{pearson(heat, obj):+.2f}, Dice {dice(heat > 0.5, obj):.2f}.")
    return WordView(figures.word_view(image, heat, word, when), compare, text)

def inspect_pixel(demo, run: Run | None, x, y, layer: str | None = "best") -> np.ndarray:
    """One pixel of the image through the run: its probe depth and P(object) at every step
    for the chosen layer (and the labeler's on each step's x0, when there is a labeler) and
    for every layer as layer x step heat maps. (x, y) in pixels of the model's image."""
    if run is None or not run.tokens:
        raise ValueError("generate an image first" if demo.probes is not None or run is None
                         else "this model has no probe set to inspect")
    layer = demo.resolve_layer(layer)
    x = int(bounded("x", x, 0, demo.image_size - 1))
    y = int(bounded("y", y, 0, demo.image_size - 1))
    layers = [l for l in demo.layers if all(t.get(l) is not None for t in run.tokens)]
    if layer not in layers:
        raise ValueError(f"no probe readings of layer {echo(layer)} in this run")
    hw = tuple(run.steps[0].latents.shape[-2:])
    values = np.array([[demo.probes.pixel_from_tokens(t.get(l), hw, demo.image_size, y, x)
                        for l in layers] for t in run.tokens])  # (steps, layers, 2)
    labeled = None
    if demo.labeler is not None and run.done:
        labels = demo.x0_labels(run)
        labeled = ([float(d[y, x]) for d, _ in labels], [float(s[y, x]) for _, s in labels])
    return figures.pixel_plot(values[..., 0], values[..., 1],
                              [demo.layer_label(l) for l in layers], layers.index(layer),
                              labeled, (x, y))

def probe_image(demo, image: np.ndarray | None = None, prompt: str = "", seed=0,
                render_seed=None, layer: str | None = "best") -> ImageProbe:
    """The probes on a given image: `image` (H, W, 3) uint8, resized to the model's size, or
    the held-out render of `render_seed` (with its exact depth and mask; its caption is the
    default prompt). The image is noised to each step's level (fixed `seed`) and the UNet
    run once per step with `prompt` (may be empty); the chosen layer's maps at every step
    are scored against the labeler's labels of the image and, for a render, the truth."""
    if demo.probes is None:
        raise ValueError("this model has no probe set to read an image with")
    layer = demo.resolve_layer(layer)
    seed = whole("seed", seed, 0, settings.MAX_SEED)
    truth = None
    if render_seed not in (None, ""):
        scene = render_scene(sample_scene(whole("render seed", render_seed, 0,
                                                settings.MAX_SEED)), demo.image_size)
        image, truth = scene.image, (inverse_depth_target(scene.depth), scene.mask)
        prompt = prompt or scene.caption
    image = check_image(image, demo.image_size)
    check_prompt(demo.pipe.tokenizer, check_prompt_text(prompt, allow_empty=True))
    s = demo.probes.settings
    labels = None
    if demo.labeler is not None:
        d, p = demo.labeler(image[None])
        labels = (d[0], p[0] > 0.5)
    steps = []
    t0 = time.perf_counter()
    with demo.lock:
        for state in probe_image_steps(demo.pipe, image, prompt, s.num_inference_steps,
                                       s.guidance_scale, seed, [layer], demo.site):
            tokens = demo.probes.token_outputs(state.index, state.activations)[layer]
            hw = tuple(state.latents.shape[-2:])
            steps.append(demo.probes.maps_from_tokens(tokens, hw, demo.image_size))
    return image_probe_view(image, steps, labels, truth, prompt,
                            demo.layer_label(layer), time.perf_counter() - t0)


def compare(demo, run_a: Run | None, run_b: Run | None, step, layer_a: str | None = "best",
            layer_b: str | None = "best") -> CompareView:
    """Two runs side by side at one step (1-based over A's steps; B at the same point of its
    own schedule): image, depth and object for each, and B - A. Numbers: mean |B - A| of
    depth and the Dice of the two objects (P > 0.5)."""
    if run_a is None or not run_a.steps or run_b is None or not run_b.steps:
        raise ValueError("keep a run as A (or edit one), then generate B to compare")
    na, nb = len(run_a.steps), len(run_b.steps)
    ka = int(bounded("step", step, 1, na)) - 1
    kb = round(ka * (nb - 1) / max(na - 1, 1))
    la, lb = demo.resolve_layer(layer_a), demo.resolve_layer(layer_b)
    maps = (demo.maps(run_a, ka, la), demo.maps(run_b, kb, lb))
    images = (demo.x0_image(run_a, ka), demo.x0_image(run_b, kb))
    titles = tuple(f"step {k + 1}/{n}, {demo.layer_label(l)}"
                   for k, n, l in ((ka, na, la), (kb, nb, lb)))
    edited = run_a.edit is not None and run_a.edit.run is run_b
    text = (f"A: *{run_a.prompt}* (seed {run_a.seed}), step {ka + 1} of {na}, layer "
            f"{demo.layer_label(la)} · B: *{run_b.prompt}* (seed {run_b.seed})"
            f"{', A after its edit' if edited else ''}, step {kb + 1} of {nb}, layer "
            f"{demo.layer_label(lb)}.")
    if maps[0] is not None and maps[1] is not None:
        (da, pa), (db, pb) = maps
        text += (f" Mean |B - A| depth {np.abs(db - da).mean():.2f} z-units; Dice of the "
                 f"two objects {dice(pa > 0.5, pb > 0.5):.2f}.")
    return CompareView(figures.compare_grid(images, maps, titles), text)

