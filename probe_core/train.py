"""Probe data, fitting and evaluation: the paper's experiment, for any diffusers SD pipeline.

    >>> data = collect(pipe, prompts, seeds, labeler, num_inference_steps=15, guidance_scale=4.0)
    >>> train, test = data.split(n_train=200)
    >>> probes = fit_probes(train, settings)
    >>> scores = evaluate_probes(probes, test)      # dice / rmse / pearson per (step, layer)

`collect` generates every image, labels the final one with the labeler (as the paper labels with
MiDaS and TRACER), and keeps every step's self-attention activations (conditional half, float16)
and x0 prediction. With `control_unet`, the same steps' UNet inputs are also fed through a
control UNet (every weight tensor permuted) and its activations kept: the paper's control.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch

from .denoise import decode_latents, denoise, encode
from .hooks import capture, resolve_layers, token_grid
from .metrics import dice, pearson, rmse
from .probes import (ProbeSet, ProbeSettings, area_means, fit_logistic, fit_ridge,
                     patch_means, unet_fingerprint, upsample_tokens)


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


@torch.no_grad()
def collect(pipe, prompts: list[str], seeds: list[int], labeler, num_inference_steps: int = 15,
            guidance_scale: float = 7.5, layers: list[str] | None = None,
            control_unet: torch.nn.Module | None = None, keep_x0: bool = True,
            progress: bool = False, site: str = "attn1") -> ProbeData:
    """Generate one image per (prompt, seed), label it, and keep every step's activations."""
    from tqdm.auto import tqdm

    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    layers = resolve_layers(pipe.unet, layers)
    acts: dict = {}
    control: dict = {}
    depths, sals, x0s = [], [], []
    latent_hw = None
    for prompt, seed in tqdm(list(zip(prompts, seeds)), desc="collect", disable=not progress):
        embeds, do_cfg = encode(pipe, prompt, guidance_scale)
        steps = list(denoise(pipe, prompt, num_inference_steps=num_inference_steps,
                             guidance_scale=guidance_scale,
                             generator=torch.Generator().manual_seed(int(seed)),
                             capture_layers=layers, decode_x0=keep_x0, site=site))
        latent_hw = tuple(steps[0].latents.shape[-2:])
        for st in steps:
            for layer, a in st.activations.items():
                acts.setdefault((st.index, layer), []).append(a.half().cpu())
            if control_unet is not None:
                x = torch.cat([st.unet_input] * 2) if do_cfg else st.unet_input
                with capture(control_unet, layers, conditional_only=do_cfg, site=site) as c:
                    control_unet(x, st.timestep, encoder_hidden_states=embeds)
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
    )


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
               latent_hw: tuple[int, int], readout: str = "nearest"):
    """What one (step, layer) probe is fitted on, for a probe set read out by `readout`:
    acts (N, HW, C), labels (N, H, W) -> X (M, C) float32, depth (M,), foreground fraction (M,).

    nearest: one row per token, against its patch's mean label (M = N * HW).
    bilinear: one row per pixel of a grid twice the layer's (at most the labels' size and
    FIT_GRID_MAX a side, which bounds memory for SD's 64x64 layers), holding the bilinearly
    upsampled activations, against the area-averaged labels; a linear probe of upsampled
    activations is the upsampled probe output, so this fits the bilinear readout."""
    if readout == "nearest":
        depth_t, sal_t = token_targets(depth, saliency, latent_hw, acts.shape[1])
        return acts.float().reshape(-1, acts.shape[-1]), depth_t, sal_t
    h, w = token_grid(acts.shape[1], latent_hw)
    size = (min(2 * h, depth.shape[-2], FIT_GRID_MAX), min(2 * w, depth.shape[-1], FIT_GRID_MAX))
    X = upsample_tokens(acts, latent_hw, size, readout).reshape(-1, acts.shape[-1])
    return X, area_means(depth, size), area_means(saliency, size)


def fit_key(X: torch.Tensor, depth_t: torch.Tensor, sal_t: torch.Tensor, lam: float = 1e-3):
    """The paper's two probes for one (step, layer): X (N*HW, C) -> depth (1, C) by ridge,
    saliency (2, C) by logistic regression."""
    return fit_ridge(X, depth_t, lam), fit_logistic(X, sal_t, lam)


def fit_probes(data: ProbeData, settings: ProbeSettings, lam: float = 1e-3,
               control: bool = False, progress: bool = False) -> ProbeSet:
    """One depth (ridge) and one saliency (logistic) probe per (step, layer), in memory."""
    from tqdm.auto import tqdm

    source = data.control_acts if control else data.acts
    if not source:
        raise ValueError("no control activations collected" if control else "no activations")
    probes = ProbeSet(settings)
    for (step, layer), a in tqdm(sorted(source.items()), desc="fit", disable=not progress):
        X, depth_t, sal_t = fit_inputs(a, data.depth, data.saliency, data.latent_hw,
                                       settings.readout)
        wd, ws = fit_key(X, depth_t, sal_t, lam)
        probes.add("depth", step, layer, wd)
        probes.add("saliency", step, layer, ws)
    return probes


def probe_scores_per_image(probes: ProbeSet, data: ProbeData, control: bool = False) -> dict:
    """Dice (argmax mask vs labeler mask), depth RMSE and Pearson (vs the labeler's z-normalised
    inverse depth) of every image: "dice", "rmse", "pearson" -> (steps, layers, N) arrays."""
    source = data.control_acts if control else data.acts
    size = data.depth.shape[-1]
    out = {k: np.zeros((len(data.steps), len(data.layers), data.n)) for k in
           ("dice", "rmse", "pearson")}
    for si, step in enumerate(data.steps):
        for li, layer in enumerate(data.layers):
            a = source[(step, layer)]
            for i in range(data.n):
                sal = probes.saliency_map(step, layer, a[i], data.latent_hw, size)
                dep = probes.depth_map(step, layer, a[i], data.latent_hw, size)
                out["dice"][si, li, i] = dice(sal > 0.5, data.saliency[i])
                out["rmse"][si, li, i] = rmse(dep, data.depth[i])
                out["pearson"][si, li, i] = pearson(dep, data.depth[i])
    return out


def _mean_scores(per_image: dict, steps, layers) -> dict:
    n = per_image["dice"].shape[-1]
    return {"steps": list(steps), "layers": list(layers), "n": n,
            **{k: v.mean(-1).tolist() for k, v in per_image.items()}}


def evaluate_probes(probes: ProbeSet, data: ProbeData, control: bool = False) -> dict:
    """Mean over images of probe_scores_per_image: [step][layer] lists in data.steps x
    data.layers."""
    return _mean_scores(probe_scores_per_image(probes, data, control), data.steps, data.layers)


def labeler_on_x0_per_image(labeler, data: ProbeData) -> dict:
    """"dice", "pearson" -> (steps, N): the labeler on each step's decoded x0 image, scored
    against the labels of the final image."""
    if data.x0_images is None:
        raise ValueError("collect(..., keep_x0=True) is needed")
    out = {k: np.zeros((len(data.steps), data.n)) for k in ("dice", "pearson")}
    for k, _ in enumerate(data.steps):
        d, s = labeler(data.x0_images[:, k])
        out["dice"][k] = [dice(p > 0.5, m) for p, m in zip(s, data.saliency)]
        out["pearson"][k] = [pearson(p, t) for p, t in zip(d, data.depth)]
    return out


def evaluate_labeler_on_x0(labeler, data: ProbeData) -> dict:
    """Per step: the labeler applied to that step's decoded x0 image, scored against the
    labels of the final image: what a viewer (or a labeler) could see at that step."""
    return _mean_x0(labeler_on_x0_per_image(labeler, data), data.steps)


def _mean_x0(per_image: dict, steps) -> dict:
    return {"steps": list(steps), **{k: v.mean(-1).tolist() for k, v in per_image.items()}}


# ----------------------------------------------------------------------------- workflows

def settings_for(pipe, model_name: str, num_inference_steps: int, guidance_scale: float,
                 layers: list[str] | None = None, site: str = "attn1",
                 readout: str = "nearest") -> ProbeSettings:
    return ProbeSettings(
        model=model_name, scheduler=type(pipe.scheduler).__name__,
        num_inference_steps=num_inference_steps,
        image_size=pipe.unet.config.sample_size * pipe.vae_scale_factor,
        guidance_scale=float(guidance_scale), layers=resolve_layers(pipe.unet, layers),
        model_fingerprint=unet_fingerprint(pipe.unet), site=site, readout=readout)


def expected_settings(pipe, model_name: str, folder) -> ProbeSettings:
    """What the saved probe set at `folder` must match to be used with `pipe`: this pipe and
    model, at the set's own schedule (steps, guidance) and site."""
    import json
    from pathlib import Path

    meta = json.loads((Path(folder) / "probes.json").read_text())["settings"]
    return settings_for(pipe, model_name, meta["num_inference_steps"], meta["guidance_scale"],
                        site=meta.get("site", "attn1"), readout=meta.get("readout", "nearest"))


def prompts_for(seeds: list[int], prompts: list[str] | None = None) -> list[str]:
    """The given prompts, cycled over the seeds; without any, each seed's own scene caption."""
    if prompts:
        return [prompts[k % len(prompts)] for k in range(len(seeds))]
    from .scenes import render_scene, sample_scene

    return [render_scene(sample_scene(s), size=16).caption for s in seeds]


def train_probe_sets(pipe, settings: ProbeSettings, labeler, prompts: list[str], seeds: list[int],
                     out: str, lam: float = 1e-3, progress: bool = True,
                     workdir: str | None = None, chunk_size: int = 16) -> tuple:
    """Fit trained-model and control probes on (prompts, seeds); save to out/ and out/control/.
    Runs through shards.train_sharded: chunks on disk (resumable), one process or several
    under `accelerate launch`, the same result either way."""
    from .shards import train_sharded

    return train_sharded(pipe, settings, labeler, prompts, seeds, out, lam, workdir, chunk_size,
                         permuted_unet(pipe.unet), progress=progress)


def evaluate_probe_sets(pipe, probes: ProbeSet, control: ProbeSet | None, labeler,
                        prompts: list[str], seeds: list[int], out_dir: str,
                        progress: bool = True, chunk_size: int = 16) -> dict:
    """Held-out scores of both probe sets and of the labeler on x0; writes the report.
    Images are generated and scored `chunk_size` at a time, so memory holds one chunk."""
    from .report import write_report

    s = probes.settings
    control_unet = permuted_unet(pipe.unet) if control is not None else None
    per: dict = {"probes": [], "control": [], "x0": []}
    data = None
    for start in range(0, len(seeds), chunk_size):
        end = start + chunk_size
        data = collect(pipe, prompts[start:end], seeds[start:end], labeler,
                       s.num_inference_steps, s.guidance_scale, s.layers, control_unet,
                       keep_x0=True, progress=progress, site=s.site)
        per["probes"].append(probe_scores_per_image(probes, data))
        if control is not None:
            per["control"].append(probe_scores_per_image(control, data, control=True))
        per["x0"].append(labeler_on_x0_per_image(labeler, data))

    def joined(parts):
        return {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}

    scores = _mean_scores(joined(per["probes"]), data.steps, data.layers)
    ctrl = _mean_scores(joined(per["control"]), data.steps, data.layers) if per["control"] else None
    x0 = _mean_x0(joined(per["x0"]), data.steps)
    meta = {"settings": s.__dict__, "n_test": len(seeds), "seeds": [min(seeds), max(seeds)],
            "probe_training": probes.extra}
    return write_report(out_dir, scores, ctrl, x0, meta)
