"""Probe data: generate, label and record activations; the paper's experiment, for any SD pipeline.

    >>> data = collect(pipe, prompts, seeds, labeler, CollectSettings(15, guidance_scale=4.0))
    >>> train, test = data.split(n_train=200)
    >>> probes = fit_probes(train, settings)        # fitting.fit_probe_set on in-memory data
    >>> settings = settings_for(pipe, "tiny-scenes", 15, 4.0)   # what a probe set is tied to

`collect` generates every image, labels the final one with the labeler (as the paper labels with
MiDaS and TRACER), and keeps every step's self-attention activations (conditional half, float16),
x0 prediction and the latent the UNet saw. With `control_unet`, the same steps' UNet
inputs are also fed through a control UNet (every weight tensor permuted) and its activations
kept: the paper's control.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from ..settings import shown_path
from ..families import denoiser_of, family_of
from .denoise import DenoiseSettings, decode_latents, denoise
from .hooks import capture, resolve_layers
from .fitting import FitOptions, fit_probe_set
from .probes import ProbeSet, ProbeSettings, unet_fingerprint


@dataclass
class ProbeData:
    layers: list[str]
    latent_hw: tuple[int, int]
    acts: dict[tuple[int, str], torch.Tensor]  # (step, layer) -> (N, HW, C) float16
    depth: np.ndarray  # (N, H, W) z-normalised inverse depth of the final image (labeler)
    saliency: np.ndarray  # (N, H, W) bool object mask of the final image (labeler, p > 0.5)
    x0_images: np.ndarray | None  # (N, S, H, W, 3) uint8, each step's decoded x0 prediction
    prompts: list[str]
    seeds: list[int]
    control_acts: dict[tuple[int, str], torch.Tensor] = field(default_factory=dict)
    unet_inputs: dict[int, torch.Tensor] = field(default_factory=dict)  # step -> (N, 4, h, w)

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def steps(self) -> list[int]:
        return sorted({s for s, _ in self.acts})

    def subset(self, idx) -> "ProbeData":
        idx = list(idx)
        return ProbeData(
            layers=self.layers, latent_hw=self.latent_hw,
            acts={k: v[idx] for k, v in self.acts.items()},
            depth=self.depth[idx], saliency=self.saliency[idx],
            x0_images=None if self.x0_images is None else self.x0_images[idx],
            prompts=[self.prompts[i] for i in idx], seeds=[self.seeds[i] for i in idx],
            control_acts={k: v[idx] for k, v in self.control_acts.items()},
            unet_inputs={k: v[idx] for k, v in self.unet_inputs.items()},
        )

    def split(self, n_train: int) -> tuple["ProbeData", "ProbeData"]:
        """First n_train images for fitting, the rest held out."""
        if not 0 < n_train < self.n:
            raise ValueError(f"n_train must be between 1 and {self.n - 1}, got {n_train}")
        return self.subset(range(n_train)), self.subset(range(n_train, self.n))


def permuted_unet(unet: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The paper's control: a copy of `unet` with every weight tensor's entries permuted."""
    control = copy.deepcopy(unet)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in control.parameters():
            flat = p.reshape(-1)
            p.copy_(flat[torch.randperm(flat.numel(), generator=g)].reshape(p.shape))
    return control


@dataclass(frozen=True)
class CollectSettings:
    """How `collect` generates its images and what it keeps of each."""
    num_inference_steps: int = 15  # the sampler's steps per image
    guidance_scale: float = 7.5  # classifier-free guidance scale
    layers: list[str] | None = None  # self-attention layers to record; None: all of them
    site: str = "attn1"  # "attn1": their output (the paper's); "block": their transformer
    # block's output (the residual stream)
    keep_x0: bool = True  # also decode every step's x0 prediction (ProbeData.x0_images)

    @classmethod
    def for_probes(cls, settings: ProbeSettings, keep_x0: bool = True) -> "CollectSettings":
        """The schedule, layers and site a probe set is tied to."""
        return cls(settings.num_inference_steps, settings.guidance_scale, settings.layers,
                   settings.site, keep_x0)


@torch.no_grad()
def collect(pipe, prompts: list[str], seeds: list[int], labeler,
            options: CollectSettings = CollectSettings(),
            control_unet: torch.nn.Module | None = None, progress: bool = False) -> ProbeData:
    """Generate one image per (prompt, seed), label it, and keep every step's activations."""
    from tqdm.auto import tqdm

    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    num_inference_steps, guidance_scale = options.num_inference_steps, options.guidance_scale
    keep_x0, site = options.keep_x0, options.site
    family = family_of(pipe)
    layers = resolve_layers(family.denoiser(pipe), options.layers)
    acts: dict = {}
    control: dict = {}
    inputs: dict = {}
    depths, sals, x0s = [], [], []
    latent_hw = None
    for prompt, seed in tqdm(list(zip(prompts, seeds)), desc="collect", disable=not progress):
        cond = (family.encode(pipe, prompt, guidance_scale, None, family.default_size(pipe))
                if control_unet is not None else None)
        settings = DenoiseSettings(num_inference_steps, guidance_scale, capture_layers=layers,
                                   decode_x0=keep_x0, site=site)
        steps = list(denoise(pipe, prompt, settings, torch.Generator().manual_seed(int(seed))))
        latent_hw = tuple(steps[0].latents.shape[-2:])
        for st in steps:
            inputs.setdefault(st.index, []).append(st.unet_input[0].float().cpu())
            for layer, a in st.activations.items():
                acts.setdefault((st.index, layer), []).append(a.half().cpu())
            if control_unet is not None:
                x = family.from_grid(st.unet_input)
                x = torch.cat([x] * 2) if cond.do_cfg else x
                with capture(control_unet, layers, conditional_only=cond.do_cfg, site=site) as c:
                    family.predict(control_unet, x, st.model_timestep, cond)
                for layer, a in c.items():
                    control.setdefault((st.index, layer), []).append(a[0].half().cpu())
        final = decode_latents(pipe, steps[-1].latents)
        d, s = labeler(final[None])  # one image at a time: labels do not depend on batching
        depths.append(d[0])
        sals.append(s[0])
        if keep_x0:
            x0s.append(np.stack([st.x0_image for st in steps]))
    depth, sal = np.stack(depths), np.stack(sals)
    return ProbeData(
        layers=layers, latent_hw=latent_hw,
        acts={k: torch.stack(v) for k, v in acts.items()},
        depth=depth, saliency=sal > 0.5,
        x0_images=np.stack(x0s) if keep_x0 else None,
        prompts=list(prompts), seeds=[int(s) for s in seeds],
        control_acts={k: torch.stack(v) for k, v in control.items()},
        unet_inputs={k: torch.stack(v) for k, v in inputs.items()},
    )


def fit_probes(data: ProbeData, settings: ProbeSettings, lam: float = 1e-3,
               control: bool = False, progress: bool = False) -> ProbeSet:
    """One depth (ridge) and one saliency (logistic) probe per (step, layer), in memory."""
    source = data.control_acts if control else data.acts
    if not source:
        raise ValueError("no control activations collected" if control else "no activations")
    return fit_probe_set(settings, sorted(source), lambda step, layer: source[(step, layer)],
                         data.depth, data.saliency, data.latent_hw, FitOptions(lam, progress))


# ----------------------------------------------------------------------------- settings

def settings_for(pipe, model_name: str, num_inference_steps: int, guidance_scale: float,
                 layers: list[str] | None = None, site: str = "attn1",
                 readout: str = "nearest", depth_offset: str = "none") -> ProbeSettings:
    return ProbeSettings(
        model=model_name, scheduler=type(pipe.scheduler).__name__,
        num_inference_steps=num_inference_steps,
        image_size=family_of(pipe).default_size(pipe)[0],
        guidance_scale=float(guidance_scale), layers=resolve_layers(denoiser_of(pipe), layers),
        model_fingerprint=unet_fingerprint(denoiser_of(pipe)), site=site, readout=readout,
        depth_offset=depth_offset, family=family_of(pipe).name)


def expected_settings(pipe, model_name: str, folder) -> ProbeSettings:
    """What the saved probe set at `folder` must match to be used with `pipe`: this pipe and
    model, at the set's own schedule (steps, guidance) and site."""
    import json
    from pathlib import Path

    from .probes import ProbeMismatchError

    if not (Path(folder) / "probes.json").is_file():
        raise FileNotFoundError(f"no probe set at {shown_path(folder)} (needs probes.json and "
                                "probes.safetensors)")
    try:
        meta = json.loads((Path(folder) / "probes.json").read_text())["settings"]
        steps, guidance = int(meta["num_inference_steps"]), float(meta["guidance_scale"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ProbeMismatchError(f"{Path(folder).name}/probes.json is not a probe set "
                                 f"description ({type(err).__name__}: {str(err)[:200]})") from None
    return settings_for(pipe, model_name, steps, guidance,
                        site=meta.get("site", "attn1"), readout=meta.get("readout", "nearest"),
                        depth_offset=meta.get("depth_offset", "none"))


def load_probes_for(pipe, model_name: str, folder) -> ProbeSet:
    """The probe set at `folder`, checked against `pipe`: every probe's width must be its
    layer's (a set for another hidden size is refused naming both widths), and its settings
    this model's (`expected_settings`: family, model, schedule, site, weights)."""
    from .hooks import layer_width
    from .probes import ProbeMismatchError

    expect = expected_settings(pipe, model_name, folder)
    found = ProbeSet.load(folder)
    denoiser = denoiser_of(pipe)
    for (task, step, layer), weight in found.weights.items():
        try:
            width = layer_width(denoiser, layer)
        except AttributeError:
            continue  # a layer this model lacks: the settings check names it
        if weight.shape[-1] != width:
            raise ProbeMismatchError(
                f"probe set {shown_path(folder)} reads {weight.shape[-1]} channels at {layer}, "
                f"where this model ({model_name}, {family_of(pipe).label}) has {width}: it "
                f"was made for a model with another hidden size "
                f"({found.settings.model!r}, {found.settings.family})")
    return ProbeSet.load(folder, expect=expect)
