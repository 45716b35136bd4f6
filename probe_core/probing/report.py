"""Write an evaluation: metrics.json (every number), a Markdown table, and paper-style figures.

    >>> write_report("docs/probe-eval", scores, control_scores, x0_scores, meta={...})
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..viz import pyplot


def best_layer(scores: dict, metric: str, step_index: int = -1) -> int:
    """Index of the layer with the highest `metric` at a step (last by default)."""
    return int(np.argmax(np.array(scores[metric])[step_index]))


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
    lines = [f"Best layers at the last step: saliency `{layers[bd]}`, depth `{layers[bp]}`. "
             f"{scores['n']} held-out images.", "",
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
    lines += ["", "All layers, last step:", "", "| layer | Dice | Pearson | RMSE |", "|---|---|---|---|"]
    for j, layer in enumerate(layers):
        lines.append(f"| `{layer}` | {scores['dice'][-1][j]:.3f} | {scores['pearson'][-1][j]:.3f} "
                     f"| {scores['rmse'][-1][j]:.3f} |")
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


def write_report(out_dir: str | Path, scores: dict, control: dict | None = None,
                 x0: dict | None = None, meta: dict | None = None) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    head = summary(scores, control, x0)
    everything = {"meta": meta or {}, "summary": head, "probes": scores, "control": control,
                  "labeler_on_x0": x0}
    (out_dir / "metrics.json").write_text(json.dumps(everything, indent=2) + "\n")
    settings = (meta or {}).get("settings", {})
    probed = (f"Probes read the `{settings.get('site', 'attn1')}` output, upsampled to pixels by "
              f"the `{settings.get('readout', 'nearest')}` readout. " if settings else "")
    (out_dir / "table.md").write_text(probed + markdown_table(scores, control, x0))
    plot_scores(scores, control, x0, out_dir / "probe_scores.png")
    return head
