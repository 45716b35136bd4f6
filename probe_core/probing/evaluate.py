"""Held-out scores of probe sets, and the train / evaluate workflows behind the CLI.

    >>> scores = evaluate_probes(probes, test)      # dice / rmse / pearson per (step, layer)
    >>> x0 = evaluate_labeler_on_x0(labeler, test)  # what the decoded x0 shows at each step
    >>> train_probe_sets(pipe, settings, labeler, prompts, seeds, "weights/probes/mine")
    >>> evaluate_probe_sets(pipe, probes, control, labeler, prompts, seeds, "docs/my-eval",
    ...                     EvaluationRun(layout=load_layout("weights/probes/mine")))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..families import denoiser_of
from ..metrics import dice, partial_correlation, partial_correlation_given, pearson, rmse
from .collect import CollectSettings, ProbeData, collect, permuted_unet
from .hooks import token_grid
from .latent_control import cross_fitted_depth
from .layout import token_readout
from .probes import ProbeSet, ProbeSettings
from .readout import to_map, upsample_tokens
from .report import write_per_image, write_report
from .shards import TrainingRun, train_sharded


def probe_scores_per_image(probes: ProbeSet, data: ProbeData, control: bool = False,
                           layout: dict | None = None) -> dict:
    """Dice (argmax mask vs labeler mask), depth RMSE and Pearson (vs the labeler's z-normalised
    inverse depth) of every image: "dice", "rmse", "pearson" -> (steps, layers, N) arrays.
    With a layout baseline also "partial" (the depth map's correlation with the labels beyond
    the fixed layout map) and "beats" (1 where its Pearson beats the fixed map's)."""
    source = data.control_acts if control else data.acts
    size = data.depth.shape[-1]
    keys = ("dice", "rmse", "pearson") + (("partial", "beats") if layout else ())
    out = {k: np.zeros((len(data.steps), len(data.layers), data.n)) for k in keys}
    fixed = [pearson(layout["depth"], d) for d in data.depth] if layout else None
    for si, step in enumerate(data.steps):
        for li, layer in enumerate(data.layers):
            a = source[(step, layer)]
            for i in range(data.n):
                sal = probes.saliency_map(step, layer, a[i], data.latent_hw, size)
                dep = probes.depth_map(step, layer, a[i], data.latent_hw, size)
                out["dice"][si, li, i] = dice(sal > 0.5, data.saliency[i])
                out["rmse"][si, li, i] = rmse(dep, data.depth[i])
                out["pearson"][si, li, i] = pearson(dep, data.depth[i])
                if layout:
                    out["partial"][si, li, i] = partial_correlation(dep, data.depth[i],
                                                                    layout["depth"])
                    out["beats"][si, li, i] = out["pearson"][si, li, i] > fixed[i]
    return out


def layout_scores_per_image(layout: dict, data: ProbeData, readout: str,
                            probes: ProbeSet | None = None) -> dict:
    """The image-blind controls, per image: the fixed layout maps' Pearson, RMSE and Dice
    ("pearson", "rmse", "dice" -> (N,)), and the ceiling of each layer's token grid: the labels
    averaged to it and read out by `readout` ("ceiling_pearson", "ceiling_partial" ->
    (layers, N)). For a probe set with depth offsets, also each layer's offset alone, read out
    the same way ("offset_pearson", "offset_partial", "offset_beats" -> (layers, N)): what the
    image-blind part of its depth maps scores by itself."""
    out = {"pearson": np.array([pearson(layout["depth"], d) for d in data.depth]),
           "rmse": np.array([rmse(layout["depth"], d) for d in data.depth]),
           "dice": np.array([dice(layout["saliency"] > 0.5, m) for m in data.saliency])}
    out["ceiling_pearson"] = np.zeros((len(data.layers), data.n))
    out["ceiling_partial"] = np.zeros((len(data.layers), data.n))
    for li, layer in enumerate(data.layers):
        grid = token_grid(data.acts[(data.steps[0], layer)].shape[1], data.latent_hw)
        for i, d in enumerate(data.depth):
            best = token_readout(d, grid, readout)
            out["ceiling_pearson"][li, i] = pearson(best, d)
            out["ceiling_partial"][li, i] = partial_correlation(best, d, layout["depth"])
    if probes is not None and probes.settings.depth_offset == "layout":
        for key in ("offset_pearson", "offset_partial", "offset_beats"):
            out[key] = np.zeros((len(data.layers), data.n))
        for li, layer in enumerate(data.layers):
            n_tokens = data.acts[(data.steps[0], layer)].shape[1]
            offset = to_map(probes.depth_offset(layer, n_tokens), data.latent_hw,
                            data.depth.shape[-1], readout)
            for i, d in enumerate(data.depth):
                out["offset_pearson"][li, i] = pearson(offset, d)
                out["offset_partial"][li, i] = partial_correlation(offset, d, layout["depth"])
                out["offset_beats"][li, i] = out["offset_pearson"][li, i] > out["pearson"][i]
    return out


def latent_probe_scores(unet_inputs: dict, depth: np.ndarray, layout: dict,
                        readout: str) -> dict:
    """The input-latent control (latent_control.cross_fitted_depth), per step and averaged over
    images: "steps", and "pearson", "rmse", "partial", "beats" -> [step] lists."""
    return latent_map_scores(cross_fitted_depth(unet_inputs, depth, layout["depth"], readout),
                             depth, layout)


def latent_map_scores(maps: dict, depth: np.ndarray, layout: dict) -> dict:
    """latent_probe_scores of the input-latent probe's maps (step -> (N, H, W))."""
    steps = sorted(maps)
    out = {"steps": steps, **{k: [] for k in ("pearson", "rmse", "partial", "beats")}}
    fixed = np.array([pearson(layout["depth"], d) for d in depth])
    for step in steps:
        r = np.array([pearson(m, d) for m, d in zip(maps[step], depth)])
        out["pearson"].append(float(r.mean()))
        out["rmse"].append(float(np.mean([rmse(m, d) for m, d in zip(maps[step], depth)])))
        out["partial"].append(float(np.mean([partial_correlation(m, d, layout["depth"])
                                             for m, d in zip(maps[step], depth)])))
        out["beats"].append(float((r > fixed).mean()))
    return out


def depth_tokens(probes: ProbeSet, data: ProbeData, control: bool = False) -> dict:
    """(step, layer) -> (N, HW) float32: every depth output the probes read from `data`, on
    the layer's token grid (small enough to keep for a whole evaluation; upsampled when
    scored)."""
    source = data.control_acts if control else data.acts
    return {(step, layer): torch.stack([probes.depth_tokens(step, layer, a)
                                        for a in source[(step, layer)]]).float().cpu()
            for step in data.steps for layer in data.layers}


def beyond_input_latent(tokens: dict, depth: np.ndarray, layout: dict, latent_maps: dict,
                        steps, layers, latent_hw: tuple[int, int], readout: str) -> np.ndarray:
    """(steps, layers, N): each depth map's correlation with the labels once both the fixed
    layout map and that step's input-latent probe map of the same image are regressed out:
    what the probe reads that the UNet's input does not already show. tokens: (step, layer)
    -> (N, HW) (depth_tokens, upsampled here by `readout`); latent_maps: step -> (N, H, W)
    (cross_fitted_depth)."""
    n, H, W = depth.shape
    out = np.zeros((len(steps), len(layers), n))
    for si, step in enumerate(steps):
        for li, layer in enumerate(layers):
            maps = upsample_tokens(tokens[(step, layer)][..., None], latent_hw, (H, W),
                                   readout).reshape(n, H, W).numpy()
            for i in range(n):
                out[si, li, i] = partial_correlation_given(
                    maps[i], depth[i], (layout["depth"], latent_maps[step][i]))
    return out


def _mean_scores(per_image: dict, steps, layers) -> dict:
    n = per_image["dice"].shape[-1]
    return {"steps": list(steps), "layers": list(layers), "n": n,
            **{k: v.mean(-1).tolist() for k, v in per_image.items()}}


def evaluate_probes(probes: ProbeSet, data: ProbeData, control: bool = False) -> dict:
    """Mean over images of probe_scores_per_image: [step][layer] lists in data.steps x
    data.layers."""
    return _mean_scores(probe_scores_per_image(probes, data, control), data.steps, data.layers)


def labeler_on_x0_per_image(labeler, data: ProbeData, layout: dict | None = None) -> dict:
    """"dice", "pearson" -> (steps, N): the labeler on each step's decoded x0 image, scored
    against the labels of the final image; with a layout baseline also "partial", "beats"."""
    if data.x0_images is None:
        raise ValueError("collect(..., keep_x0=True) is needed")
    keys = ("dice", "pearson") + (("partial", "beats") if layout else ())
    out = {k: np.zeros((len(data.steps), data.n)) for k in keys}
    fixed = np.array([pearson(layout["depth"], t) for t in data.depth]) if layout else None
    for k, _ in enumerate(data.steps):
        d, s = labeler(data.x0_images[:, k])
        out["dice"][k] = [dice(p > 0.5, m) for p, m in zip(s, data.saliency)]
        out["pearson"][k] = [pearson(p, t) for p, t in zip(d, data.depth)]
        if layout:
            out["partial"][k] = [partial_correlation(p, t, layout["depth"])
                                 for p, t in zip(d, data.depth)]
            out["beats"][k] = out["pearson"][k] > fixed
    return out


def evaluate_labeler_on_x0(labeler, data: ProbeData) -> dict:
    """Per step: the labeler applied to that step's decoded x0 image, scored against the
    labels of the final image: what a viewer (or a labeler) could see at that step."""
    return _mean_x0(labeler_on_x0_per_image(labeler, data), data.steps)


def _mean_x0(per_image: dict, steps) -> dict:
    return {"steps": list(steps), **{k: v.mean(-1).tolist() for k, v in per_image.items()}}


# ----------------------------------------------------------------------------- workflows

def train_probe_sets(pipe, settings: ProbeSettings, labeler, prompts: list[str], seeds: list[int],
                     out: str, run: TrainingRun = TrainingRun()) -> tuple:
    """Fit trained-model and control probes on (prompts, seeds); save to out/ and out/control/.
    Runs through shards.train_sharded: chunks on disk (resumable), one process or several
    under `accelerate launch`, the same result either way."""
    return train_sharded(pipe, settings, labeler, prompts, seeds, out, run,
                         permuted_unet(denoiser_of(pipe)))


@dataclass(frozen=True)
class EvaluationRun:
    """How evaluate_probe_sets generates and scores its images."""
    chunk_size: int = 16  # images generated and scored at a time (memory holds one chunk)
    layout: dict | None = None  # layout.load_layout of the probe set: adds the image-blind
    # controls
    picked: dict | None = None  # report.picked_layers of a validation evaluation: the best
    # layers, instead of choosing them on these images
    progress: bool = True  # show progress bars


def evaluate_probe_sets(pipe, probes: ProbeSet, control: ProbeSet | None, labeler,
                        prompts: list[str], seeds: list[int], out_dir: str,
                        run: EvaluationRun = EvaluationRun()) -> dict:
    """Held-out scores of both probe sets and of the labeler on x0; writes the report.
    Images are generated and scored `run.chunk_size` at a time, so memory holds one chunk. With
    a layout baseline (`run.layout`), the image-blind controls too; `run.picked` names the best
    layers instead of choosing them on these images."""
    chunk_size, layout, picked = run.chunk_size, run.layout, run.picked
    s = probes.settings
    control_unet = permuted_unet(denoiser_of(pipe)) if control is not None else None
    per: dict = {"probes": [], "control": [], "x0": [], "layout": []}
    inputs: dict = {}  # step -> [(n, 4, h, w)] the UNet's input latents, chunk by chunk
    depths = []
    tokens: dict = {"probes": [], "control": []}  # [(step, layer) -> (n, HW)] chunk by chunk
    data = None
    for start in range(0, len(seeds), chunk_size):
        end = start + chunk_size
        data = collect(pipe, prompts[start:end], seeds[start:end], labeler,
                       CollectSettings.for_probes(s, keep_x0=True), control_unet,
                       progress=run.progress)
        per["probes"].append(probe_scores_per_image(probes, data, layout=layout))
        if control is not None:
            per["control"].append(probe_scores_per_image(control, data, control=True,
                                                         layout=layout))
        per["x0"].append(labeler_on_x0_per_image(labeler, data, layout))
        if layout:
            per["layout"].append(layout_scores_per_image(layout, data, s.readout, probes))
            for step, x in data.unet_inputs.items():
                inputs.setdefault(step, []).append(x)
            depths.append(data.depth)
            tokens["probes"].append(depth_tokens(probes, data))
            if control is not None:
                tokens["control"].append(depth_tokens(control, data, control=True))

    def joined(parts):
        return {k: np.concatenate([p[k] for p in parts], axis=-1) for k in parts[0]}

    write_per_image(out_dir, seeds, joined(per["probes"]),
                    joined(per["control"]) if per["control"] else None)
    scores = _mean_scores(joined(per["probes"]), data.steps, data.layers)
    if picked:
        scores["picked"] = picked
    ctrl = _mean_scores(joined(per["control"]), data.steps, data.layers) if per["control"] else None
    x0 = _mean_x0(joined(per["x0"]), data.steps)
    fixed = ({"layers": list(data.layers), **{k: v.mean(-1).tolist()
                                              for k, v in joined(per["layout"]).items()}}
             if per["layout"] else None)
    latent = None
    if layout and len(seeds) >= 2:
        depth = np.concatenate(depths)
        latent_maps = cross_fitted_depth({k: torch.cat(v) for k, v in inputs.items()}, depth,
                                         layout["depth"], s.readout)
        latent = latent_map_scores(latent_maps, depth, layout)
        for name, into in (("probes", scores), ("control", ctrl)):
            if tokens[name]:
                joined_tokens = {k: torch.cat([t[k] for t in tokens[name]])
                                 for k in tokens[name][0]}
                beyond = beyond_input_latent(joined_tokens, depth, layout, latent_maps,
                                             data.steps, data.layers, data.latent_hw, s.readout)
                into["partial_beyond_latent"] = beyond.mean(-1).tolist()
    meta = {"settings": s.__dict__, "n_test": len(seeds), "seeds": [min(seeds), max(seeds)],
            "probe_training": probes.extra}
    return write_report(out_dir, scores, ctrl, x0, meta, fixed, latent)
