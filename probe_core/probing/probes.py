"""Bias-free per-token linear probes (the paper's 1x1 convolutions) and probe sets on disk.

    >>> probes = ProbeSet.load("weights/probes/tiny-scenes", expect=settings)
    >>> depth = probes.depth_map(3, layer, acts, latent_hw=(16, 16), out_size=64)     # (64, 64)
    >>> saliency = probes.saliency_map(3, layer, acts, latent_hw=(16, 16), out_size=64)  # P(fg)

A probe is a weight matrix (out, C): depth has out=1 (regression on per-image z-normalised
depth), saliency out=2 (background/foreground logits). A set whose `depth_offset` is "layout"
also holds, per layer, the training images' mean depth label averaged to the layer's token grid
(HW,), added to every depth output: its depth probe reads how an image's depth departs from the
average layout, and a bias-free probe no longer spends its weights rebuilding the layout.

A probe is applied to every token of a layer's (HW, C) activation and reshaped to the layer's
grid; the grid of outputs is then upsampled to pixels, by the set's `readout`:
- "nearest", the paper's: each token paints its square patch. Fitting at token resolution
  against the mean label of each token's patch is exactly the paper's full-resolution loss for
  squared error and for cross-entropy, and much cheaper.
- "bilinear": the outputs (logits, not probabilities) are interpolated between token centres.
  The probe is the same bias-free per-token linear map; since interpolation is linear too, it is
  fitted on bilinearly upsampled activations (at twice the grid) against area-averaged labels.
"""

from __future__ import annotations

import json
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..settings import shown_path
from .hooks import token_grid

TASKS = {"depth": 1, "saliency": 2}  # task -> probe outputs
READOUTS = ("nearest", "bilinear")  # how a grid of probe outputs becomes a pixel map
DEPTH_OFFSETS = ("none", "layout")  # what is added to every depth output (per token)
FORMAT_VERSION = 1
OFFSET_KEY = "depth_offset"  # probes.safetensors key prefix of the per-layer depth offsets


class ProbeMismatchError(ValueError):
    """A probe set made for another model, schedule or layer set."""


@dataclass
class ProbeSettings:
    """What a probe set is tied to; loading refuses a set whose settings differ."""
    model: str  # e.g. "tiny-scenes" or "CompVis/stable-diffusion-v1-4"
    scheduler: str  # scheduler class name
    num_inference_steps: int
    image_size: int
    guidance_scale: float
    layers: list[str] = field(default_factory=list)
    model_fingerprint: str = ""  # of the UNet weights (unet_fingerprint); "" = not recorded
    site: str = "attn1"  # what the probes read: "attn1" output (the paper's) or the "block" output
    readout: str = "nearest"  # token grid -> pixels: "nearest" (the paper's) or "bilinear"
    # depth output = offset + W a: "none" (the paper's) or "layout" (the training labels' mean
    # map on the layer's token grid)
    depth_offset: str = "none"

    def differences(self, other: "ProbeSettings") -> list[str]:
        out = []
        for key in ("model", "scheduler", "num_inference_steps", "image_size", "guidance_scale",
                    "site"):
            a, b = getattr(self, key), getattr(other, key)
            if a != b:
                out.append(f"{key}: probes have {a!r}, run uses {b!r}")
        a, b = self.model_fingerprint, other.model_fingerprint
        if a and b and a != b:
            out.append(f"model weights differ (fingerprint {a} vs {b}): the model was retrained")
        return out


def unet_fingerprint(unet: torch.nn.Module) -> str:
    """A short hash of a UNet's parameter names, shapes and leading values: cheap even for
    SD on a GPU, and different after any retraining. The values are hashed at float16
    precision, so the same weights give the same fingerprint in float32 or float16, on any
    device."""
    import hashlib

    h = hashlib.sha256()
    for name, p in unet.named_parameters():
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(p.detach().reshape(-1)[:64].to("cpu", torch.float16).numpy().tobytes())
    return h.hexdigest()[:16]


def apply_probe(weight: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """(out, C) weight, (HW, C) activations -> (HW, out) outputs, computed in float32."""
    return activations.float() @ weight.to(activations.device, torch.float32).T


def upsample_tokens(values: torch.Tensor, latent_hw: tuple[int, int], size: tuple[int, int],
                    readout: str = "nearest") -> torch.Tensor:
    """(N, HW, k) per-token values -> (N, size[0] * size[1], k), float32, upsampled by `readout`
    (bilinear between token centres, edges clamped: align_corners=False)."""
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; readouts are {READOUTS}")
    n, hw, k = values.shape
    h, w = token_grid(hw, latent_hw)
    grid = values.float().reshape(n, h, w, k).permute(0, 3, 1, 2)  # (N, k, h, w)
    if tuple(size) != (h, w):
        extra = {} if readout == "nearest" else {"align_corners": False}
        grid = F.interpolate(grid, size=tuple(size), mode=readout, **extra)
    return grid.permute(0, 2, 3, 1).reshape(n, size[0] * size[1], k)


@lru_cache(maxsize=64)
def interpolation_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of 1-D linear interpolation (align_corners=False, as in
    upsample_tokens): bilinear upsampling of a (h, w) grid is rows @ grid @ cols.T."""
    eye = torch.eye(n_in)[None]  # (1, n_in channels, n_in samples)
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[0].T.numpy().copy()


def to_map(values: torch.Tensor, latent_hw: tuple[int, int], out_size: int,
           readout: str = "nearest") -> np.ndarray:
    """(HW,) per-token values -> (out_size, out_size) map, upsampled by `readout`."""
    up = upsample_tokens(values.reshape(1, -1, 1).cpu(), latent_hw, (out_size, out_size), readout)
    return up.reshape(out_size, out_size).numpy()


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, without overflow warnings for large |x|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def area_means(labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) or (H, W) labels -> (N * h * w,) float32 means over each cell of an (h, w) grid
    (adaptive average pooling: any H, W)."""
    t = torch.as_tensor(np.asarray(labels, np.float32)).reshape(-1, 1, *np.shape(labels)[-2:])
    return F.adaptive_avg_pool2d(t, tuple(size)).reshape(-1)


def patch_means(label: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) label -> (h*w,) mean of each token's patch (H, W multiples of h, w)."""
    H, W = label.shape
    h, w = grid_hw
    return label.reshape(h, H // h, w, W // w).mean(axis=(1, 3)).reshape(-1)


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


# ----------------------------------------------------------------------------- fitting

def token_targets(depth: np.ndarray, saliency: np.ndarray, latent_hw: tuple[int, int],
                  layer_tokens: int):
    """Per-token targets of (N, H, W) labels for a layer with `layer_tokens` tokens:
    depth patch means (N*HW,), foreground fraction (N*HW,)."""
    grid = token_grid(layer_tokens, latent_hw)
    d = np.concatenate([patch_means(x, grid) for x in depth])
    s = np.concatenate([patch_means(x.astype(np.float32), grid) for x in saliency])
    return torch.from_numpy(d).float(), torch.from_numpy(s).float()


FIT_GRID_MAX = 64  # bilinear fitting grid, pixels a side at most


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


def fit_key(X: torch.Tensor, depth_t: torch.Tensor, sal_t: torch.Tensor, lam: float = 1e-3):
    """The paper's two probes for one (step, layer): X (N*HW, C) -> depth (1, C) by ridge,
    saliency (2, C) by logistic regression."""
    return fit_ridge(X, depth_t, lam), fit_logistic(X, sal_t, lam)


def fit_probe_set(settings: "ProbeSettings", keys, activations, depth: np.ndarray,
                  saliency: np.ndarray, latent_hw: tuple[int, int], lam: float = 1e-3,
                  progress: bool = False, desc: str = "fit") -> "ProbeSet":
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
    for step, layer in tqdm(list(keys), desc=desc, disable=not progress):
        acts = activations(step, layer)
        offset = None
        if layout is not None:
            offset = probes.offsets.get(layer)
            if offset is None:
                offset = area_means(layout, token_grid(acts.shape[1], latent_hw))
                probes.set_offset(layer, offset)
        X, depth_t, sal_t = fit_inputs(acts, depth, saliency, latent_hw, settings.readout,
                                       offset)
        wd, ws = fit_key(X, depth_t, sal_t, lam)
        probes.add("depth", step, layer, wd)
        probes.add("saliency", step, layer, ws)
    return probes


class ProbeSet:
    """Probe weights keyed by (task, step, layer), plus the settings they were trained for.

        >>> ps = ProbeSet(settings); ps.add("depth", 0, layer, weight)   # weight (1, C)
        >>> ps.save("weights/probes/tiny-scenes"); ProbeSet.load(..., expect=settings)
    """

    def __init__(self, settings: ProbeSettings, weights=None, extra: dict | None = None):
        self.settings = settings
        self.weights: dict[tuple[str, int, str], torch.Tensor] = dict(weights or {})
        self.extra = extra or {}  # e.g. evaluation scores, best layers
        self.offsets: dict[str, torch.Tensor] = {}  # layer -> (HW,) depth offset ("layout")
        self._stacked: dict = {}  # token_outputs' cache of stacked (L, C, 3) weights

    def add(self, task: str, step: int, layer: str, weight: torch.Tensor) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; tasks are {list(TASKS)}")
        if weight.ndim != 2 or weight.shape[0] != TASKS[task]:
            raise ValueError(f"{task} probe weight must be ({TASKS[task]}, C), got "
                             f"{tuple(weight.shape)}")
        self.weights[(task, int(step), layer)] = weight.detach().float().cpu()
        self._stacked.clear()

    def set_offset(self, layer: str, offset: torch.Tensor) -> None:
        """The (HW,) depth offset of `layer`'s token grid (a set whose depth_offset is
        "layout")."""
        if self.settings.depth_offset != "layout":
            raise ValueError("this probe set's depth_offset is 'none': it has no offsets")
        self.offsets[layer] = offset.detach().float().cpu().reshape(-1)
        self._stacked.clear()

    def depth_offset(self, layer: str, n_tokens: int, device=None) -> torch.Tensor | None:
        """(HW,) float32 added to `layer`'s depth outputs, or None for a set without offsets.
        A set with offsets that lacks this layer's, or has one for another grid, is refused."""
        if self.settings.depth_offset != "layout":
            return None
        offset = self.offsets.get(layer)
        if offset is None:
            raise ProbeMismatchError(f"probe set has no depth offset for layer {layer!r}")
        if offset.numel() != n_tokens:
            raise ProbeMismatchError(f"depth offset of {layer!r} has {offset.numel()} tokens, the "
                                     f"layer has {n_tokens}: the set was made for another model")
        if device is None:
            return offset
        key = ("offset", layer, str(device))
        if key not in self._stacked:
            self._stacked[key] = offset.to(device)
        return self._stacked[key]

    def get(self, task: str, step: int, layer: str) -> torch.Tensor:
        try:
            return self.weights[(task, int(step), layer)]
        except KeyError:
            raise KeyError(f"no {task} probe for step {step}, layer {layer!r}") from None

    def keys(self, task: str | None = None) -> list[tuple[str, int, str]]:
        return sorted(k for k in self.weights if task is None or k[0] == task)

    def depth_tokens(self, step, layer, activations) -> torch.Tensor:
        """(HW, C) activations -> (HW,) float32 z-normalised depth on the layer's token grid
        (the layout offset added, when the set has one), before any upsampling."""
        values = apply_probe(self.get("depth", step, layer), activations)[:, 0]
        offset = self.depth_offset(layer, values.shape[0], values.device)
        return values if offset is None else values + offset

    def depth_map(self, step, layer, activations, latent_hw, out_size) -> np.ndarray:
        """(HW, C) activations -> (out_size, out_size) z-normalised depth prediction."""
        return to_map(self.depth_tokens(step, layer, activations), latent_hw, out_size,
                      self.settings.readout)

    def saliency_map(self, step, layer, activations, latent_hw, out_size) -> np.ndarray:
        """(HW, C) activations -> (out_size, out_size) foreground probability (the logit
        difference is upsampled, then squashed: softmax of two logits = sigmoid of it)."""
        logits = apply_probe(self.get("saliency", step, layer), activations)
        f = to_map(logits[:, 1] - logits[:, 0], latent_hw, out_size, self.settings.readout)
        return sigmoid(f)

    def token_outputs(self, step: int, activations: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
        """Both probes of every captured layer that has them at this step, on the layer's token
        grid, computed where the activations are and left there (no host synchronisation):
        layer -> (HW, 3) float32 [depth, background logit, foreground logit].

        Layers with the same (HW, C) are read with one batched matmul: SD v1.x's 16 layers make
        four groups, so a step costs a handful of kernel launches."""
        step = int(step)
        groups: dict[tuple, list[str]] = {}
        for layer, acts in activations.items():
            if ("depth", step, layer) in self.weights:
                groups.setdefault((tuple(acts.shape), acts.device), []).append(layer)
        out = {}
        for (_, device), layers in groups.items():
            weights = self._stacked_weights(step, tuple(layers), device)  # (L, C, 3)
            acts = torch.stack([activations[l] for l in layers]).float()  # (L, HW, C)
            y = torch.bmm(acts, weights)  # (L, HW, 3)
            offsets = self._stacked_offsets(tuple(layers), acts.shape[1], device)
            if offsets is not None:
                y = y + offsets
            out.update(zip(layers, y.unbind(0)))  # each (HW, 3)
        return out

    def _stacked_offsets(self, layers: tuple[str, ...], n_tokens: int, device
                         ) -> torch.Tensor | None:
        """(L, HW, 3) [depth offset, 0, 0] of `layers`, cached per device; None without
        offsets."""
        if self.settings.depth_offset != "layout":
            return None
        key = ("offsets", layers, str(device))
        if key not in self._stacked:
            stacked = torch.zeros(len(layers), n_tokens, 3)
            for i, layer in enumerate(layers):
                stacked[i, :, 0] = self.depth_offset(layer, n_tokens)
            self._stacked[key] = stacked.to(device)
        return self._stacked[key]

    def _stacked_weights(self, step: int, layers: tuple[str, ...], device) -> torch.Tensor:
        """(L, C, 3) depth, background and foreground weights of `layers`, cached per device."""
        key = (step, layers, str(device))
        stacked = self._stacked.get(key)
        if stacked is None:
            on_device = self._device_weights(device)
            stacked = torch.stack([on_device[(step, l)] for l in layers])
            self._stacked[key] = stacked
        return stacked

    def weight_on(self, task: str, step: int, layer: str, device) -> torch.Tensor:
        """The (out, C) float32 weight of one probe on `device`, from the set's one-transfer
        device copy (a view: do not modify)."""
        both = self._device_weights(device).get((int(step), layer))  # (C, 3)
        if both is None or task not in TASKS:
            return self.get(task, step, layer).to(device)
        return both[:, :1].T if task == "depth" else both[:, 1:].T

    def _device_weights(self, device) -> dict[tuple[int, str], torch.Tensor]:
        """Every (step, layer)'s (C, 3) weights on `device`, sent there in one transfer (a GPU
        then waits for the host once per probe set, not once per step)."""
        key = ("all", str(device))
        if key not in self._stacked:
            pairs = [(s, l) for t, s, l in self.weights
                     if t == "depth" and ("saliency", s, l) in self.weights]
            blocks = [torch.cat([self.weights[("depth", s, l)],
                                 self.weights[("saliency", s, l)]]).T.contiguous()
                      for s, l in pairs]  # each (C, 3)
            flat = torch.cat([b.reshape(-1) for b in blocks]) if blocks else torch.zeros(0)
            flat = flat.float().to(device)
            views, offset = {}, 0
            for pair, b in zip(pairs, blocks):
                views[pair] = flat[offset: offset + b.numel()].view(b.shape)
                offset += b.numel()
            self._stacked[key] = views
        return self._stacked[key]

    def maps_from_tokens(self, tokens: torch.Tensor, latent_hw: tuple[int, int],
                         out_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(HW, 3) token outputs (`token_outputs`) -> (depth (S, S), P(object) (S, S)) at
        full resolution, on the host: the same numbers as depth_map and saliency_map."""
        y = tokens.detach().float().cpu()
        h, w = token_grid(y.shape[0], latent_hw)
        if self.settings.readout == "nearest" and (out_size % h or out_size % w):
            f = y[:, 2] - y[:, 1]  # no whole-pixel patches: the general path
            return (to_map(y[:, 0], latent_hw, out_size, "nearest"),
                    sigmoid(to_map(f, latent_hw, out_size, "nearest")))
        y = y.numpy().reshape(h, w, 3)
        d, f = y[..., 0], y[..., 2] - y[..., 1]  # (h, w) depth, foreground logit margin
        if self.settings.readout == "nearest":
            d, f = (g.repeat(out_size // h, 0).repeat(out_size // w, 1) for g in (d, f))
        else:  # separable bilinear interpolation, rows then columns
            rows, cols = interpolation_matrix(h, out_size), interpolation_matrix(w, out_size)
            d, f = rows @ d @ cols.T, rows @ f @ cols.T
        return d, sigmoid(f)

    def pixel_from_tokens(self, tokens: torch.Tensor, latent_hw: tuple[int, int], out_size: int,
                          y: int, x: int) -> tuple[float, float]:
        """(depth, P(object)) at pixel (y, x) of the full-resolution maps, from (HW, 3) token
        outputs, without making the maps: the same numbers as maps_from_tokens at that pixel."""
        g = tokens.detach().float().cpu()
        h, w = token_grid(g.shape[0], latent_hw)
        g = g.numpy().reshape(h, w, 3)
        if self.settings.readout == "nearest":
            v = g[y * h // out_size, x * w // out_size]
        else:
            rows, cols = interpolation_matrix(h, out_size), interpolation_matrix(w, out_size)
            v = np.einsum("i,ijk,j->k", rows[y], g, cols[x])
        return float(v[0]), float(sigmoid(v[2] - v[1]))

    def read(self, step: int, activations: dict[str, torch.Tensor], latent_hw: tuple[int, int],
             out_size: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Both full-resolution maps for every captured layer that has probes at this step:
        layer -> (depth (S, S), P(object) (S, S)). Inside a loop, prefer `token_outputs` and
        make full-resolution maps only for what is shown (`maps_from_tokens`)."""
        tokens = self.token_outputs(step, activations)
        return {layer: self.maps_from_tokens(y, latent_hw, out_size) for layer, y in tokens.items()}

    # ------------------------------------------------------------------ disk format
    def save(self, folder: str | Path) -> Path:
        """folder/probes.safetensors (one tensor per key) + folder/probes.json (settings)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"{t}/{s}/{layer}": w.contiguous() for (t, s, layer), w in self.weights.items()}
        tensors.update({f"{OFFSET_KEY}/{layer}": o.contiguous() for layer, o in self.offsets.items()})
        save_file(tensors, str(folder / "probes.safetensors"))
        meta = {"format": FORMAT_VERSION, "settings": self.settings.__dict__, "extra": self.extra}
        (folder / "probes.json").write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, expect: ProbeSettings | None = None) -> "ProbeSet":
        """Load a saved set; with `expect`, refuse one made for other settings."""
        from safetensors.torch import load_file

        folder = Path(folder)
        meta_path, tensor_path = folder / "probes.json", folder / "probes.safetensors"
        if not meta_path.is_file() or not tensor_path.is_file():
            raise FileNotFoundError(f"no probe set at {shown_path(folder)} (needs probes.json and "
                                    "probes.safetensors)")
        try:
            meta = json.loads(meta_path.read_text())
            settings = ProbeSettings(**meta["settings"])
        except (ValueError, KeyError, TypeError) as err:
            raise ProbeMismatchError(f"{folder.name}/probes.json is not a probe set description "
                                     f"({type(err).__name__}: {str(err)[:200]})") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ProbeMismatchError(f"{shown_path(meta_path)} has format {meta.get('format')!r}; "
                                     f"this version reads {FORMAT_VERSION}")
        if settings.readout not in READOUTS:
            raise ProbeMismatchError(f"{shown_path(meta_path)} asks for readout {settings.readout!r}; this "
                                     f"version reads {READOUTS}")
        if expect is not None:
            diffs = settings.differences(expect)
            if diffs:
                raise ProbeMismatchError(f"probe set {shown_path(folder)} was made for other settings: "
                                         + "; ".join(diffs))
        ps = cls(settings, extra=meta.get("extra"))
        try:
            tensors = load_file(str(tensor_path))
        except Exception as err:  # truncated or overwritten: the reader's own error varies
            raise ProbeMismatchError(f"{folder.name}/probes.safetensors cannot be read "
                                     f"({type(err).__name__}: {str(err)[:200]}): the file is "
                                     "damaged; restore it or fit the set again") from None
        if settings.depth_offset not in DEPTH_OFFSETS:
            raise ProbeMismatchError(f"{shown_path(meta_path)} asks for depth offset "
                                     f"{settings.depth_offset!r}; this version reads {DEPTH_OFFSETS}")
        try:
            for key, w in tensors.items():
                if key.startswith(OFFSET_KEY + "/"):
                    layer = key[len(OFFSET_KEY) + 1:]
                    task, step = "offset", 0
                else:
                    task, step, layer = key.split("/", 2)
                if expect is not None and expect.layers and layer not in expect.layers:
                    raise ProbeMismatchError(f"probe set {shown_path(folder)} has layer {layer!r}, "
                                             "which this model does not have")
                if task == "offset":
                    ps.set_offset(layer, w)
                else:
                    ps.add(task, int(step), layer, w)
        except ValueError as err:  # a key or shape of another format
            if isinstance(err, ProbeMismatchError):
                raise
            raise ProbeMismatchError(f"{folder.name}/probes.safetensors does not hold a probe set "
                                     f"of these settings ({str(err)[:200]})") from None
        missing = sorted({l for _, _, l in ps.weights} - set(ps.offsets))
        if settings.depth_offset == "layout" and missing:
            raise ProbeMismatchError(f"probe set {shown_path(folder)} has no depth offset for "
                                     f"{len(missing)} layer(s), e.g. {missing[0]!r}")
        return ps


def random_probe_set(unet: torch.nn.Module, settings: ProbeSettings, seed: int = 0) -> ProbeSet:
    """Probes of the right shapes for `unet` at every step and layer of `settings`, filled with
    standard normal numbers: for benchmarks and tests, whose cost and plumbing do not depend on
    the values."""
    probes = ProbeSet(settings)
    g = torch.Generator().manual_seed(seed)
    dims = {layer: unet.get_submodule(layer).to_out[0].out_features for layer in settings.layers}
    for step in range(settings.num_inference_steps):
        for layer in settings.layers:
            probes.add("depth", step, layer, torch.randn(1, dims[layer], generator=g))
            probes.add("saliency", step, layer, torch.randn(2, dims[layer], generator=g))
    return probes
