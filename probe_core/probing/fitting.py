"""Fitting the paper's bias-free per-token probes: depth by ridge, saliency by logistic regression.

    >>> X, depth_t, sal_t = fit_inputs(acts, depth, saliency, (16, 16), "nearest")
    >>> w_depth, w_saliency = fit_key(X, depth_t, sal_t)   # (1, C), (2, C)

Depth is regressed on per-image z-normalised depth; saliency gets two logits
(background/foreground) whose softmax is the foreground fraction. What a probe is fitted on
depends on the set's readout (readout.py): token patches for "nearest", a bilinearly upsampled
grid for "bilinear".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .hooks import token_grid
from .probes import DEPTH_OFFSETS, ProbeSet, ProbeSettings
from .readout import area_means, patch_means, upsample_tokens

FIT_GRID_MAX = 64  # bilinear fitting grid, pixels a side at most
# How a probe sees its layer's channels (ProbeSettings.channels). Diffusion transformers carry a
# few "massive" channels, orders of magnitude above the rest on every token; under a ridge
# penalty relative to the mean channel they swamp the others.
#   raw: the paper's, the activations as they are
#   rms: each channel divided by its RMS over the training rows (folded into the weights, so
#        the readout is unchanged and stays bias-free; a massive, near-constant channel becomes
#        a unit one, which acts as an intercept)
#   drop-massive: channels whose RMS exceeds MASSIVE_RATIO x the median channel's get weight 0
CHANNELS = ("raw", "rms", "drop-massive")
MASSIVE_RATIO = 100.0  # Sun et al.'s bar: 100x the median magnitude


def channel_scale(X: torch.Tensor, channels: str) -> torch.Tensor | None:
    """(C,) factors the probe's inputs are multiplied by before fitting (and its weights
    after, so that the fitted probe reads the raw activations), or None for "raw"."""
    if channels not in CHANNELS:
        raise ValueError(f"unknown channel handling {channels!r}; choose {CHANNELS}")
    if channels == "raw":
        return None
    rms = X.float().pow(2).mean(0).sqrt()  # (C,)
    if channels == "rms":
        return 1.0 / rms.clamp_min(1e-12)
    return (rms <= MASSIVE_RATIO * rms.median().clamp_min(1e-12)).float()


def fit_ridge(X: torch.Tensor, y: torch.Tensor, lam: float = 1e-3) -> torch.Tensor:
    """Closed-form bias-free ridge: X (N, C), y (N,) or (N, k) -> weight (k, C).

    lam is relative to the mean diagonal of X^T X, so it does not depend on the scale of X."""
    X = X.double()
    y = y.double().reshape(len(X), -1)
    gram = X.T @ X
    reg = lam * gram.diagonal().mean().clamp_min(1e-12)
    w = torch.linalg.solve(gram + reg * torch.eye(X.shape[1], dtype=X.dtype), X.T @ y)
    return w.T.float()


def fit_logistic(X: torch.Tensor, p: torch.Tensor, lam: float = 1e-3, steps: int = 50) -> torch.Tensor:
    """Bias-free 2-logit probe by L-BFGS on soft cross-entropy: X (N, C), p (N,) foreground
    fraction in [0, 1] -> weight (2, C) with logits [-f/2, f/2] (softmax = sigmoid(f))."""
    X = X.float()
    scale = X.pow(2).mean().sqrt().clamp_min(1e-12)
    Xs = X / scale
    w = torch.zeros(X.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=steps, line_search_fn="strong_wolfe")
    target = p.float()

    def closure():
        opt.zero_grad()
        f = Xs @ w
        loss = F.binary_cross_entropy_with_logits(f, target) + lam * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    f_w = (w.detach() / scale)
    return torch.stack([-f_w / 2, f_w / 2])


def token_targets(depth: np.ndarray, saliency: np.ndarray, latent_hw: tuple[int, int],
                  layer_tokens: int):
    """Per-token targets of (N, H, W) labels for a layer with `layer_tokens` tokens:
    depth patch means (N*HW,), foreground fraction (N*HW,)."""
    grid = token_grid(layer_tokens, latent_hw)
    d = np.concatenate([patch_means(x, grid) for x in depth])
    s = np.concatenate([patch_means(x.astype(np.float32), grid) for x in saliency])
    return torch.from_numpy(d).float(), torch.from_numpy(s).float()


def fit_inputs(acts: torch.Tensor, depth: np.ndarray, saliency: np.ndarray,
               latent_hw: tuple[int, int], readout: str = "nearest",
               depth_offset: torch.Tensor | None = None):
    """What one (step, layer) probe is fitted on, for a probe set read out by `readout`:
    acts (N, HW, C), labels (N, H, W) -> X (M, C) float32, depth (M,), foreground fraction (M,).

    nearest: one row per token, against its patch's mean label (M = N * HW).
    bilinear: one row per pixel of a grid twice the layer's (at most the labels' size and
    FIT_GRID_MAX a side, which bounds memory for SD's 64x64 layers), holding the bilinearly
    upsampled activations, against the area-averaged labels; a linear probe of upsampled
    activations is the upsampled probe output, so this fits the bilinear readout.
    A (HW,) `depth_offset` (the set's per-token depth offset) is read out the same way and taken
    off the depth targets: the probe is fitted to what the offset leaves."""
    n = acts.shape[0]
    if readout == "nearest":
        depth_t, sal_t = token_targets(depth, saliency, latent_hw, acts.shape[1])
        if depth_offset is not None:
            depth_t = (depth_t.reshape(n, -1) - depth_offset.float().reshape(1, -1)).reshape(-1)
        return acts.float().reshape(-1, acts.shape[-1]), depth_t, sal_t
    h, w = token_grid(acts.shape[1], latent_hw)
    size = (min(2 * h, depth.shape[-2], FIT_GRID_MAX), min(2 * w, depth.shape[-1], FIT_GRID_MAX))
    X = upsample_tokens(acts, latent_hw, size, readout).reshape(-1, acts.shape[-1])
    depth_t = area_means(depth, size)
    if depth_offset is not None:
        up = upsample_tokens(depth_offset.float().reshape(1, -1, 1), latent_hw, size, readout)
        depth_t = (depth_t.reshape(n, -1) - up.reshape(1, -1)).reshape(-1)
    return X, depth_t, area_means(saliency, size)


def fit_key(X: torch.Tensor, depth_t: torch.Tensor, sal_t: torch.Tensor, lam: float = 1e-3,
            channels: str = "raw"):
    """The paper's two probes for one (step, layer): X (N*HW, C) -> depth (1, C) by ridge,
    saliency (2, C) by logistic regression; `channels` (CHANNELS) rescales or drops channels
    for the fit, folded back into the weights."""
    scale = channel_scale(X, channels)
    if scale is None:
        return fit_ridge(X, depth_t, lam), fit_logistic(X, sal_t, lam)
    Xs = X.float() * scale
    return fit_ridge(Xs, depth_t, lam) * scale, fit_logistic(Xs, sal_t, lam) * scale


@dataclass(frozen=True)
class FitOptions:
    """How a probe set is fitted."""
    lam: float = 1e-3  # relative ridge penalty
    progress: bool = False  # show a progress bar
    desc: str = "fit"  # its label


def fit_probe_set(settings: ProbeSettings, keys, activations, depth: np.ndarray,
                  saliency: np.ndarray, latent_hw: tuple[int, int],
                  options: FitOptions = FitOptions()) -> ProbeSet:
    """The one fitting path: a depth (ridge) and a saliency (logistic) probe for each
    (step, layer) of `keys`. activations(step, layer) -> (N, HW, C) for the N images whose
    (N, H, W) labels are `depth` and `saliency` (a callable, so a caller can read one key at a
    time from disk). With settings.depth_offset "layout", each layer's offset is the mean of
    these depth labels averaged to its token grid."""
    from tqdm.auto import tqdm

    if settings.depth_offset not in DEPTH_OFFSETS:
        raise ValueError(f"unknown depth offset {settings.depth_offset!r}; offsets are "
                         f"{DEPTH_OFFSETS}")
    probes = ProbeSet(settings)
    layout = (np.asarray(depth, np.float32).mean(0)  # (H, W) mean depth label
              if settings.depth_offset == "layout" else None)
    for step, layer in tqdm(list(keys), desc=options.desc, disable=not options.progress):
        acts = activations(step, layer)
        offset = None
        if layout is not None:
            offset = probes.offsets.get(layer)
            if offset is None:
                offset = area_means(layout, token_grid(acts.shape[1], latent_hw))
                probes.set_offset(layer, offset)
        X, depth_t, sal_t = fit_inputs(acts, depth, saliency, latent_hw, settings.readout,
                                       offset)
        wd, ws = fit_key(X, depth_t, sal_t, options.lam, settings.channels)
        probes.add("depth", step, layer, wd)
        probes.add("saliency", step, layer, ws)
    return probes
