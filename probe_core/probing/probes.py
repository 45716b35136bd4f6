"""Bias-free per-token linear probes (the paper's 1x1 convolutions) and probe sets on disk.

    >>> probes = ProbeSet.load("weights/probes/tiny-scenes", expect=settings)
    >>> depth = probes.depth_map(3, layer, acts, latent_hw=(16, 16), out_size=64)     # (64, 64)
    >>> saliency = probes.saliency_map(3, layer, acts, latent_hw=(16, 16), out_size=64)  # P(fg)

A probe is a weight matrix (out, C): depth has out=1 (regression on per-image z-normalised
depth), saliency out=2 (background/foreground logits). A set whose `depth_offset` is "layout"
also holds, per layer, the training images' mean depth label averaged to the layer's token grid
(HW,), added to every depth output: its depth probe reads how an image's depth departs from the
average layout, and a bias-free probe no longer spends its weights rebuilding the layout.

How a grid of probe outputs becomes pixels (the set's `readout`) is in readout.py; how a probe
is fitted, in fitting.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..settings import shown_path
from .hooks import layer_width
from .readout import (READOUTS, apply_probe, sigmoid, to_map, token_maps,
                      token_pixel)
# also importable from here for modules not yet switched to readout.py

TASKS = {"depth": 1, "saliency": 2}  # task -> probe outputs
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
    family: str = "sd"  # probe_core.families name of the model (sets saved before: "sd")
    channels: str = "raw"  # how the fit saw the channels (fitting.CHANNELS); the readout is
    # the same linear map whatever it is

    def differences(self, other: "ProbeSettings") -> list[str]:
        if self.family != other.family:  # say it first and alone: nothing else can match
            return [f"the probes were trained on a {self.family} model ({self.model!r}), "
                    f"the run uses a {other.family} model ({other.model!r})"]
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

    @property
    def layers(self) -> list[str]:
        """The layers this set was made for (its settings')."""
        return list(self.settings.layers)

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
        return token_maps(tokens, latent_hw, out_size, self.settings.readout)

    def pixel_from_tokens(self, tokens: torch.Tensor, latent_hw: tuple[int, int], out_size: int,
                          y: int, x: int) -> tuple[float, float]:
        """(depth, P(object)) at pixel (y, x) of the full-resolution maps, from (HW, 3) token
        outputs, without making the maps: the same numbers as maps_from_tokens at that pixel."""
        return token_pixel(tokens, latent_hw, out_size, (y, x), self.settings.readout)

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
    dims = {layer: layer_width(unet, layer) for layer in settings.layers}
    for step in range(settings.num_inference_steps):
        for layer in settings.layers:
            probes.add("depth", step, layer, torch.randn(1, dims[layer], generator=g))
            probes.add("saliency", step, layer, torch.randn(2, dims[layer], generator=g))
    return probes
