"""The assets a model is shown with: its probe set, labeler and held-out evaluation.

    >>> probes, labeler, evaluation, notice = load_assets(pipe, "tiny-scenes", probe_dir,
    ...                                                   labeler_dir, "docs/probe-eval/metrics.json")

What cannot be used is left out and explained in `notice`: a missing folder, or a probe set made
for another model, schedule or set of weights (refused by `ProbeSet.load`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..probing.collect import load_probes_for
from ..families import denoiser_of
from ..probing.probes import ProbeMismatchError, unet_fingerprint
from ..settings import shown_path
from ..world.labeler import SceneLabeler


def load_assets(pipe, model_name: str, probes, labeler, evaluation):
    """(ProbeSet | None, SceneLabeler | None, evaluation dict | None, notice)."""
    notes, probe_set, lab, ev = [], None, None, None
    try:
        probe_set = load_probes_for(pipe, model_name, probes)
    except (OSError, ProbeMismatchError, KeyError, ValueError) as err:
        notes.append(f"No probe maps: {err}")
    try:
        lab = SceneLabeler.load(labeler) if labeler is not None else None
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        notes.append(f"No labeler: {err}")
    if evaluation and Path(evaluation).is_file():
        try:
            ev = check_evaluation(json.loads(Path(evaluation).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as err:
            notes.append(f"No held-out scores: {shown_path(evaluation)} cannot be read "
                         f"({type(err).__name__}: {str(err)[:120]}).")
    return probe_set, lab, ev, " ".join(notes)


def check_evaluation(ev) -> dict:
    """An evaluation's metrics.json as the app reads it: probe scores [step][layer] for its
    layers and steps, and a summary naming the best layer."""
    scores = ev["probes"]
    n_steps, n_layers = len(scores["steps"]), len(scores["layers"])
    for metric in ("dice", "pearson"):
        rows = scores[metric]
        if len(rows) != n_steps or any(len(r) != n_layers for r in rows):
            raise ValueError(f"{metric} scores are not {n_steps} x {n_layers}")
        if not all(isinstance(v, (int, float)) for r in rows for v in r):
            raise ValueError(f"{metric} scores are not numbers")
    int(scores["n"])
    str(ev["summary"]["dice"]["best_layer"])
    return ev


def model_warning(pipe, shipped_fingerprint: str) -> str:
    """A notice when a model's UNet is not the one shipped (damaged or replaced files)."""
    found = unet_fingerprint(denoiser_of(pipe))
    if found == shipped_fingerprint:
        return ""
    return (f"The model's weights are not the shipped ones (fingerprint {found}, shipped "
            f"{shipped_fingerprint}): its images may be wrong. Restore its folder or train it "
            "again (scene-probe train-model).")
