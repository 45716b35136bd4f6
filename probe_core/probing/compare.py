"""Two models' probe evaluations on the same seeds, side by side: what each represents, when it
emerges over the denoising steps, and where in the network.

    >>> a = load_evaluation("UNet", "eval/unet-test", picked_from="eval/unet-validation")
    >>> b = load_evaluation("DiT", "eval/dit-test", picked_from="eval/dit-validation")
    >>> result = compare_evaluations([a, b])   # per model: curves, profiles, emergence; paired
    >>> write_comparison(result, "docs/backbones/test-452000")   # .json, .md, emergence.png

Each evaluation is a folder `evaluate` wrote (metrics.json and per_image.npz). A model's best
layer for each measure is picked on another evaluation (its validation seeds), never on the images
it is scored on. Intervals are 95% bootstrap intervals over images (2,000 resamples); the
difference between the models is paired by image (both were scored on the same seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..viz import pyplot
from .report import best_layer

MEASURES = {"dice": "saliency Dice", "partial": "depth beyond the layout (partial r)"}
EMERGED = 0.9  # a measure has emerged at the first step reaching this share of its last value
RESAMPLES = 2000


@dataclass
class Evaluation:
    """One model's held-out scores: scores[k]: (steps, layers, N) per image ("probes_dice",
    "control_partial", ...), picked[measure]: the layer index its validation run found best."""
    name: str
    layers: list[str]
    steps: list[int]
    seeds: np.ndarray  # (N,)
    scores: dict
    picked: dict
    picked_on: list | None  # the validation seeds' [first, last]


def load_evaluation(name: str, folder, picked_from=None) -> Evaluation:
    """An `evaluate` folder; its best layers picked on `picked_from` (another evaluation of the
    same probe set), or on itself when None (said in the report)."""
    folder = Path(folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    missing = [m for m in MEASURES if m not in metrics["probes"]]
    if missing or not (folder / "per_image.npz").is_file():
        raise ValueError(f"{folder} has no per-image {', '.join(missing) or 'scores'}: evaluate "
                         f"a probe set with a layout baseline again to write them")
    with np.load(folder / "per_image.npz") as f:
        scores = {k: f[k].astype(np.float64) for k in f.files if k != "seeds"}
        seeds = f["seeds"]
    picked_metrics = (json.loads((Path(picked_from) / "metrics.json").read_text())
                      if picked_from else metrics)
    if picked_metrics["probes"]["layers"] != metrics["probes"]["layers"]:
        raise ValueError(f"{picked_from} evaluates other layers than {folder}")
    return Evaluation(name, metrics["probes"]["layers"], metrics["probes"]["steps"], seeds,
                      scores, {m: best_layer(picked_metrics["probes"], m) for m in MEASURES},
                      picked_metrics.get("meta", {}).get("seeds") if picked_from else None)


def emergence_step(curve: np.ndarray) -> int | None:
    """The first step index whose value reaches EMERGED of the last step's (None if the last
    is not positive: nothing emerged)."""
    curve = np.asarray(curve, float)
    if not curve[-1] > 0:
        return None
    return int(np.argmax(curve >= EMERGED * curve[-1]))


def _resamples(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, (RESAMPLES, n))  # (R, N) image indices


def _interval(values: np.ndarray) -> list[float]:
    return [float(np.nanpercentile(values, 2.5)), float(np.nanpercentile(values, 97.5))]


def curve_summary(per_image: np.ndarray) -> dict:
    """per_image: (steps, N) at one layer -> mean per step with 95% intervals, and the
    emergence step with its interval (resampling images, then reading the mean curve)."""
    pick = _resamples(per_image.shape[1])
    means = per_image[:, pick].mean(-1)  # (steps, R)
    emerged = np.array([emergence_step(means[:, r]) for r in range(RESAMPLES)], dtype=float)
    low, high = np.percentile(means, 2.5, axis=1), np.percentile(means, 97.5, axis=1)
    return {"mean": per_image.mean(-1).tolist(), "low": low.tolist(), "high": high.tolist(),
            "emergence_step": emergence_step(per_image.mean(-1)),
            "emergence_interval": _interval(emerged)}


def model_summary(ev: Evaluation) -> dict:
    """For each measure: the picked layer's curve over steps (and its permuted control's), and
    the last step's profile over the layers (relative depth 0 = first layer, 1 = last)."""
    out = {"name": ev.name, "n": int(len(ev.seeds)), "steps": ev.steps, "layers": ev.layers,
           "picked_on": ev.picked_on,
           "relative_depth": np.linspace(0, 1, len(ev.layers)).round(3).tolist()}
    for m in MEASURES:
        li = ev.picked[m]
        row = {"layer": ev.layers[li], **curve_summary(ev.scores[f"probes_{m}"][:, li])}
        last = ev.scores[f"probes_{m}"][-1]  # (layers, N)
        row["last_step_by_layer"] = last.mean(-1).tolist()
        control = ev.scores.get(f"control_{m}")
        if control is not None:
            row["control"] = curve_summary(control[:, li])
            row["control_last_step_by_layer"] = control[-1].mean(-1).tolist()
        row["last_step_interval"] = [row["low"][-1], row["high"][-1]]
        out[m] = row
    return out


def paired_difference(a: Evaluation, b: Evaluation, measure: str) -> dict:
    """a's minus b's last-step score at each one's picked layer, paired by image."""
    if not np.array_equal(a.seeds, b.seeds):
        raise ValueError(f"{a.name} and {b.name} were scored on different seeds: a paired "
                         f"comparison needs the same images")
    diff = (a.scores[f"probes_{measure}"][-1, a.picked[measure]]
            - b.scores[f"probes_{measure}"][-1, b.picked[measure]])  # (N,)
    return {"mean": float(diff.mean()), "interval": _interval(diff[_resamples(len(diff))].mean(-1))}


def compare_evaluations(evaluations: list[Evaluation]) -> dict:
    """Every model's summary, and the first model minus each other, paired, per measure."""
    first = evaluations[0]
    return {"emerged_at": EMERGED, "models": [model_summary(ev) for ev in evaluations],
            "differences": {f"{first.name} - {ev.name}": {m: paired_difference(first, ev, m)
                                                          for m in MEASURES}
                            for ev in evaluations[1:]}}


def _fmt(x: float, lo: float, hi: float) -> str:
    return f"{x:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(result: dict) -> str:
    """The comparison as a Markdown table and the paired differences."""
    lines = ["| model | measure | picked layer | last step | permuted control | emerges at step |",
             "|---|---|---|---|---|---|"]
    for model in result["models"]:
        for m, label in MEASURES.items():
            row = model[m]
            control = row.get("control")
            emerged = row["emergence_step"]
            lo, hi = row["emergence_interval"]
            lines.append(
                f"| {model['name']} | {label} | `{row['layer']}` | "
                f"{_fmt(row['mean'][-1], *row['last_step_interval'])} | "
                + (f"{control['mean'][-1]:.3f}" if control else "-") + " | "
                + (f"{emerged} [{lo:.0f}, {hi:.0f}]" if emerged is not None else "never") + " |")
    lines.append("")
    for model in result["models"]:
        on = model["picked_on"]
        lines.append(f"- {model['name']} ({model['n']} images): layers picked on "
                     + (f"other images (seeds {on[0]}-{on[1]})" if on else
                        "these same images (an optimistic pick: no validation run was given)"))
    lines += ["", "Paired differences at the last step (each model at its own picked layer):", ""]
    for pair, by_measure in result["differences"].items():
        for m, d in by_measure.items():
            lines.append(f"- {pair}, {MEASURES[m]}: {_fmt(d['mean'], *d['interval'])}")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """Top: each measure over the steps at the picked layer (band: 95% interval; dashed: the
    permuted control). Bottom: the last step over the layers, by relative depth."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(MEASURES), figsize=(10, 7))
    for col, (m, label) in enumerate(MEASURES.items()):
        top, bottom = axes[0, col], axes[1, col]
        for k, model in enumerate(result["models"]):
            colour = f"C{k}"
            row, steps = model[m], np.arange(len(model["steps"]))
            top.plot(steps, row["mean"], color=colour, label=model["name"])
            top.fill_between(steps, row["low"], row["high"], color=colour, alpha=0.2)
            if row.get("control"):
                top.plot(steps, row["control"]["mean"], color=colour, ls="--",
                         label=f"{model['name']}, permuted")
            if row["emergence_step"] is not None:
                top.axvline(row["emergence_step"], color=colour, ls=":", lw=1)
            bottom.plot(model["relative_depth"], row["last_step_by_layer"], "o-", color=colour,
                        label=model["name"])
            if row.get("control_last_step_by_layer"):
                bottom.plot(model["relative_depth"], row["control_last_step_by_layer"], "x--",
                            color=colour, alpha=0.6)
        top.set(title=f"{label}, picked layer", xlabel="denoising step")
        bottom.set(title=f"{label}, last step", xlabel="relative depth (first layer 0, last 1)")
        top.legend(fontsize=7)
        bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_comparison(result: dict, out_dir) -> Path:
    """comparison.json, comparison.md and emergence.png in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "comparison.md").write_text(markdown(result))
    plot(result, out_dir / "emergence.png")
    return out_dir
