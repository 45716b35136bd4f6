"""The assets a model is shown with: its probe set, labeler and held-out evaluation.

    >>> probes, labeler, evaluation, notice = load_assets(pipe, "tiny-scenes", probe_dir,
    ...                                                   labeler_dir, "docs/probe-eval/metrics.json")

What cannot be used is left out and explained in `notice`: a missing folder, or a probe set made
for another model, schedule or set of weights (refused by `ProbeSet.load`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..probing.collect import expected_settings
from ..probing.probes import ProbeMismatchError, ProbeSet
from ..world.labeler import SceneLabeler


def load_assets(pipe, model_name: str, probes, labeler, evaluation):
    """(ProbeSet | None, SceneLabeler | None, evaluation dict | None, notice)."""
    notes, probe_set, lab, ev = [], None, None, None
    try:
        probe_set = ProbeSet.load(probes, expect=expected_settings(pipe, model_name, probes))
    except (FileNotFoundError, ProbeMismatchError, KeyError, ValueError) as err:
        notes.append(f"No probe maps: {err}")
    try:
        lab = SceneLabeler.load(labeler) if labeler is not None else None
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        notes.append(f"No labeler: {err}")
    if evaluation and Path(evaluation).is_file():
        ev = json.loads(Path(evaluation).read_text())
    return probe_set, lab, ev, " ".join(notes)
