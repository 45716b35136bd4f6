"""The run a visitor sees before clicking anything: the first example prompt, generated once
when the page is built; each session gets its own shallow copy (its edits stay its own)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from ...settings import DEFAULT_STEPS, DISPLAY_SIZE
from ...viz import to_size
from ..figures import Emergence
from ..runs import Run

CURVES = ("saliency probe vs its final mask (Dice)", "depth probe vs its final map (Pearson r)",
          "labeler on each step's image vs final (Dice)",
          "labeler on each step's image vs final (Pearson r)")


def emergence_frame(e: Emergence | None) -> pd.DataFrame:
    """The emergence curves as rows (step, score, curve) for a line plot; empty without."""
    rows = []
    if e is not None:
        series = (e.probe_dice, e.probe_pearson, e.labeler_dice, e.labeler_pearson)
        for name, values in zip(CURVES, series):
            rows += [(step, float(v), name) for step, v in zip(e.steps, values)]
    return pd.DataFrame(rows, columns=["step", "score", "curve"])


@dataclass
class FinishedView:
    """A finished run's views at its last step, as the page shows them."""
    run: Run
    caption: str  # the last step's
    x0: object
    depth: object
    saliency: object
    readout: str
    film: list
    emergence: pd.DataFrame
    image: object  # (S, S, 3) the final image at display size
    words: list
    status: str = ""  # the page's status line, where it is not the caption


def finished_view(demo, run: Run, layer: str = "best", opacity: float = 0.6) -> FinishedView:
    v = demo.view(run, len(run.steps) - 1, layer, opacity)
    return FinishedView(run, v.caption, v.x0, v.depth, v.saliency, v.readout,
                        demo.filmstrip(run, layer), emergence_frame(demo.emergence(run, layer)),
                        to_size(run.image, DISPLAY_SIZE), demo.words(run))


def example_view(demo) -> FinishedView:
    """The first example prompt at seed 0 and the default steps, generated now."""
    prompt = demo.example_prompts(1)[0]
    run = None
    for run in demo.stream(prompt, 0, DEFAULT_STEPS, demo.default_guidance,
                           word_attention=True):
        pass
    demo.budget.forget(run)  # shared by every session: never released under memory pressure
    view = finished_view(demo, run)
    view.status = (f"An example run (seed 0, {run.num_inference_steps} steps): “{prompt}”. "
                   "Type a prompt and press **Generate** for your own.")
    return view


def session_copy(run: Run | None) -> Run | None:
    """The example run for one session: shared steps, its own caches and edit. Never hand a
    copy to the run budget: releasing it would drop the shared steps' resume points."""
    if run is None:
        return None
    return replace(run, maps=dict(run.maps), x0_full=dict(run.x0_full),
                   x0_labels=dict(run.x0_labels), edit=None, session=None)
