"""Write an evaluation: metrics.json (every number), a Markdown table, and paper-style figures.

    >>> write_report("docs/probe-eval", scores, control_scores, x0_scores, meta={...})
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..viz import pyplot


def best_layer(scores: dict, metric: str, step_index: int = -1) -> int:
    """Index of the best layer for `metric`: the one picked on other images when
    `scores["picked"]` names it (a clean protocol: chosen on validation seeds, reported on test
    seeds), else the one with the highest score at a step (last by default)."""
    picked = (scores.get("picked") or {}).get(metric)
    if picked is not None:
        return scores["layers"].index(picked)
    return int(np.argmax(np.array(scores[metric])[step_index]))


def picked_layers(metrics: dict) -> dict:
    """{"dice": layer, "pearson": layer, "seeds": [first, last]} from another evaluation's
    metrics.json (its best layers at the last step)."""
    head = metrics["summary"]
    return {"dice": head["dice"]["best_layer"], "pearson": head["pearson"]["best_layer"],
            "seeds": metrics.get("meta", {}).get("seeds")}


def summary(scores: dict, control: dict | None, x0: dict | None) -> dict:
    """The headline numbers: best layer at the last step, its control, its emergence by step."""
    out = {}
    for metric in ("dice", "pearson"):
        arr = np.array(scores[metric])  # (steps, layers)
        b = best_layer(scores, metric)
        row = {"best_layer": scores["layers"][b], "last_step": float(arr[-1, b])}
        if arr.shape[0] > 3:
            row["step3"] = float(arr[3, b])
            row["step3_fraction_of_last"] = float(arr[3, b] / arr[-1, b]) if arr[-1, b] else None
        if control is not None:
            row["control_last_step"] = float(np.array(control[metric])[-1, b])
        if x0 is not None:
            row["labeler_on_x0_step3"] = float(x0[metric][3]) if len(x0[metric]) > 3 else None
            row["labeler_on_x0"] = x0[metric]
        out[metric] = row
    return out


def markdown_table(scores: dict, control: dict | None, x0: dict | None) -> str:
    """One row per step: best-layer Dice / Pearson / RMSE, the control's, the labeler's on x0."""
    layers = scores["layers"]
    bd, bp = best_layer(scores, "dice"), best_layer(scores, "pearson")
    picked = scores.get("picked")
    how = (f"picked on other images (seeds {picked['seeds'][0]}-{picked['seeds'][1]})"
           if picked and picked.get("seeds") else "picked on these images")
    lines = [f"Best layers at the last step ({how}): saliency `{layers[bd]}`, depth "
             f"`{layers[bp]}`. {scores['n']} held-out images.", "",
             "| step | Dice | Dice control | Dice labeler(x0) | Pearson | Pearson control "
             "| Pearson labeler(x0) | RMSE |", "|---|---|---|---|---|---|---|---|"]
    def at(d, metric, k, layer=None):
        if d is None:
            return "-"
        v = d[metric][k] if layer is None else d[metric][k][layer]
        return f"{v:.3f}"

    for k, step in enumerate(scores["steps"]):
        cells = [str(step), at(scores, "dice", k, bd), at(control, "dice", k, bd),
                 at(x0, "dice", k), at(scores, "pearson", k, bp), at(control, "pearson", k, bp),
                 at(x0, "pearson", k), at(scores, "rmse", k, bp)]
        lines.append("| " + " | ".join(cells) + " |")
    beyond = "partial" in scores  # depth beyond the layout, when the set has a layout baseline
    lines += ["", "All layers, last step:", "",
              "| layer | Dice | Pearson | RMSE |" + (" partial | beats fixed map |" if beyond else ""),
              "|---|---|---|---|" + ("---|---|" if beyond else "")]
    for j, layer in enumerate(layers):
        extra = (f" {scores['partial'][-1][j]:.3f} | {100 * scores['beats'][-1][j]:.0f}% |"
                 if beyond else "")
        lines.append(f"| `{layer}` | {scores['dice'][-1][j]:.3f} | {scores['pearson'][-1][j]:.3f} "
                     f"| {scores['rmse'][-1][j]:.3f} |" + extra)
    return "\n".join(lines) + "\n"


def plot_scores(scores: dict, control: dict | None, x0: dict | None, path: Path) -> None:
    """Two panels (saliency Dice, depth Pearson) vs step: every layer, the best layer's control
    dashed, the labeler on x0 dotted."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    steps = scores["steps"]
    for ax, metric, title in ((axes[0], "dice", "saliency: Dice"),
                              (axes[1], "pearson", "depth: Pearson")):
        arr = np.array(scores[metric])
        for j, layer in enumerate(scores["layers"]):
            ax.plot(steps, arr[:, j], lw=1.2, label=layer.replace(".transformer_blocks.0.attn1", ""))
        b = best_layer(scores, metric)
        if control is not None:
            ax.plot(steps, np.array(control[metric])[:, b], "k--", lw=1.5,
                    label="control (permuted weights), best layer")
        if x0 is not None:
            ax.plot(steps, x0[metric], "k:", lw=2, label="labeler on decoded x0")
        ax.set_title(title)
        ax.set_xlabel("denoising step")
        ax.set_ylim(min(0, float(np.nanmin(arr))), 1)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def layout_summary(scores: dict, control: dict | None, x0: dict | None, fixed: dict,
                   latent: dict | None = None) -> dict:
    """Depth beyond the scene layout, for the best depth layer: the fixed layout map's own
    scores, the probe's partial correlation with the labels once the fixed map is regressed
    out, the share of images where the probe beats the fixed map, the same for the permuted
    control, the input-latent probe and the labeler on x0, and the ceiling of the layer's token
    grid."""
    b = best_layer(scores, "pearson")
    partial = np.array(scores["partial"])[:, b]
    ceiling = fixed["ceiling_partial"][b]
    out = {"layer": scores["layers"][b],
           "fixed_map": {"pearson": fixed["pearson"], "rmse": fixed["rmse"],
                         "saliency_dice": fixed["dice"]},
           "partial_last_step": float(partial[-1]),
           "partial_step3": float(partial[3]) if len(partial) > 3 else None,
           "beats_fixed_map_last_step": float(np.array(scores["beats"])[-1, b]),
           "ceiling_partial": ceiling, "ceiling_pearson": fixed["ceiling_pearson"][b],
           "partial_last_step_of_ceiling": float(partial[-1] / ceiling) if ceiling else None}
    if "offset_partial" in fixed:  # the image-blind offset of this layer, by itself
        out["offset_alone"] = {"pearson": fixed["offset_pearson"][b],
                               "partial": fixed["offset_partial"][b],
                               "beats_fixed_map": fixed["offset_beats"][b]}
    if control is not None:
        out["control_partial_last_step"] = float(np.array(control["partial"])[-1, b])
        out["control_beats_fixed_map_last_step"] = float(np.array(control["beats"])[-1, b])
    for name, d in (("", scores), ("control_", control)):  # beyond the input latent as well
        if d is not None and "partial_beyond_latent" in d:
            beyond = np.array(d["partial_beyond_latent"])[:, b]
            out[f"{name}partial_beyond_latent_last_step"] = float(beyond[-1])
            out[f"{name}partial_beyond_latent_step3"] = (float(beyond[3]) if len(beyond) > 3
                                                          else None)
    if latent is not None:
        out["latent_probe"] = {"partial": latent["partial"], "pearson": latent["pearson"],
                               "beats_fixed_map": latent["beats"]}
    if x0 is not None:
        out["labeler_on_x0_partial"] = x0["partial"]
    return out


def offset_note(summary: dict) -> str:
    """A sentence on what the layer's image-blind depth offset scores by itself, if it has one."""
    alone = summary.get("offset_alone")
    if not alone:
        return ""
    return (f" The layer's depth offset alone (no probe) scores Pearson {alone['pearson']:.3f}, "
            f"partial {alone['partial']:.3f}, and beats the fixed map on "
            f"{100 * alone['beats_fixed_map']:.0f}% of images: what a probe with this offset starts from.")


def latent_note(latent: dict | None, beyond: bool = False) -> str:
    """A sentence on the input-latent control, if it was run."""
    if not latent:
        return ""
    return (" Latent probe = a linear probe of the UNet's input latent (each latent pixel's 3x3 "
            "neighbourhood, 4 channels, plus the same layout offset), cross-fitted on these "
            "images in two folds: what the noisy latent itself shows, with no UNet."
            + (" Beyond latent = the partial correlation once both the fixed map and that "
               "image's latent-probe map are regressed out: what a probe reads that the UNet's "
               "input does not already show." if beyond else ""))


def layout_table(scores: dict, control: dict | None, x0: dict | None, fixed: dict,
                 latent: dict | None = None) -> str:
    """Per step, best depth layer: Pearson next to the fixed map's, and what lies beyond it."""
    s = layout_summary(scores, control, x0, fixed, latent)
    b = scores["layers"].index(s["layer"])
    beyond = "partial_beyond_latent" in scores
    lines = ["", f"Depth beyond the layout (`{s['layer']}`): the fixed layout map (the mean "
             f"depth label of the probe-training images, the same for every image) scores "
             f"Pearson {fixed['pearson']:.3f}, RMSE {fixed['rmse']:.3f}. Partial = correlation "
             "with the labels once the fixed map is regressed out; ceiling = the labels "
             f"averaged to this layer's token grid and read out the same way (partial "
             f"{s['ceiling_partial']:.3f})." + offset_note(s) + latent_note(latent, beyond), "",
             "| step | Pearson | RMSE | partial | beats fixed map | control partial "
             "| latent probe partial | labeler(x0) partial |"
             + (" beyond latent | control beyond latent |" if beyond else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if beyond else "")]
    for k, step in enumerate(scores["steps"]):
        cells = [str(step), f"{scores['pearson'][k][b]:.3f}", f"{scores['rmse'][k][b]:.3f}",
                 f"{scores['partial'][k][b]:.3f}", f"{100 * scores['beats'][k][b]:.0f}%",
                 f"{control['partial'][k][b]:.3f}" if control else "-",
                 f"{latent['partial'][k]:.3f}" if latent else "-",
                 f"{x0['partial'][k]:.3f}" if x0 else "-"]
        if beyond:
            cells += [f"{scores['partial_beyond_latent'][k][b]:.3f}",
                      f"{control['partial_beyond_latent'][k][b]:.3f}"
                      if control and "partial_beyond_latent" in control else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, scores: dict, control: dict | None = None,
                 x0: dict | None = None, meta: dict | None = None,
                 fixed: dict | None = None, latent: dict | None = None) -> dict:
    """metrics.json, table.md and probe_scores.png; `fixed`: the image-blind layout controls
    (evaluate.layout_scores_per_image, averaged), when the probe set has a layout baseline;
    `latent`: the input-latent control (evaluate.latent_probe_scores)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    head = summary(scores, control, x0)
    if fixed is not None:
        head["depth_beyond_layout"] = layout_summary(scores, control, x0, fixed, latent)
    everything = {"meta": meta or {}, "summary": head, "probes": scores, "control": control,
                  "labeler_on_x0": x0, "layout_controls": fixed, "latent_probe": latent}
    (out_dir / "metrics.json").write_text(json.dumps(everything, indent=2) + "\n")
    settings = (meta or {}).get("settings", {})
    offset = settings.get("depth_offset", "none")
    probed = (f"Probes read the `{settings.get('site', 'attn1')}` output, upsampled to pixels by "
              f"the `{settings.get('readout', 'nearest')}` readout"
              + ("; every depth output adds the layout offset (the probe-training images' mean "
                 "depth label on the layer's token grid), so the probe itself reads only how an "
                 "image departs from the average layout. " if offset == "layout" else ". ")
              if settings else "")
    (out_dir / "table.md").write_text(
        probed + markdown_table(scores, control, x0)
        + (layout_table(scores, control, x0, fixed, latent) if fixed is not None else ""))
    plot_scores(scores, control, x0, out_dir / "probe_scores.png")
    return head


def write_per_image(out_dir: str | Path, seeds: list[int], probes: dict,
                    control: dict | None = None) -> Path:
    """per_image.npz beside metrics.json: every image's scores ("probes_dice", "control_partial",
    ...: (steps, layers, N) arrays, images in `seeds` order), for bootstrap intervals and paired
    comparisons of two models on the same seeds."""
    arrays = {f"probes_{k}": np.asarray(v, dtype=np.float32) for k, v in probes.items()}
    arrays.update({f"control_{k}": np.asarray(v, dtype=np.float32)
                   for k, v in (control or {}).items()})
    path = Path(out_dir) / "per_image.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, seeds=np.asarray(seeds, dtype=np.int64), **arrays)
    return path
