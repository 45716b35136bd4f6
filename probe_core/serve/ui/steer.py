"""The Steer tab's actions: an edit re-run (streamed, one model job per session) and the edit
method's own defaults."""

from __future__ import annotations

import time
from contextlib import closing

import gradio as gr

from ...edits.edit_settings import DEFAULT_METHOD, METHOD_DEFAULTS, defaults_of
from ..editing import EditView
from ..inputs import step_number
from ..steering import SliderValues
from ..tickets import EDIT
from .jobs import model_job
from .texts import idle_progress, progress_html

DONE = "Edit done: see the score card below."


def brush_layer(painted):
    """The brush layer of the paint canvas's value ({"background", "layers", "composite"}), or
    None when nothing was painted; the library checks what it holds."""
    if isinstance(painted, dict):
        layers = painted.get("layers") or []
        return layers[0] if layers else None
    return painted


def slider_values(form) -> SliderValues:
    """The steering controls as the library takes them: edited steps 0-based, within the run."""
    run = form.run
    n = run.num_inference_steps if run is not None else 1
    first = step_number("first edited step", form.first_value, 1, n) if run is not None else 0
    last = (step_number("last edited step", form.last_value, first + 1, n) if run is not None
            else 0)
    return SliderValues(form.move_x, form.move_y, form.scale, form.depth_push, form.strength,
                        first, last, form.method, form.drawn, brush_layer(form.painted),
                        form.shift_x, form.shift_y)


class SteerActions:
    def __init__(self, page, models, tickets):
        self.page, self.models, self.tickets = page, models, tickets

    def intervene(self, form, request=None):
        """Re-run the generation with the edit, streaming its steps; Stop or a newer job ends
        it at its next step, the run left as it was."""
        p = self.page
        with model_job(self.tickets, request, form.job_id, EDIT) as job:
            if not job.current():  # stopped or replaced before it started
                if job.stopped():
                    yield {p.edit_progress: idle_progress("stopped"),
                           p.edit_status: "Stopped before it started."}
                return
            demo, sliders = self.models.get(form.model), slider_values(form)
            t0, n = time.perf_counter(), form.run.num_inference_steps if form.run else 1
            updates = demo.intervene(form.run, sliders)
            with closing(updates):
                for update in updates:
                    if isinstance(update, EditView):  # done (and kept): shown even if
                        # Stop came while it was being scored
                        yield {p.compare_slider: (update.before, update.after),
                               p.target: update.target, p.achieved: update.achieved,
                               p.score: update.score, p.edited: update.after,
                               p.edit_progress: idle_progress("edit done"),
                               p.edit_status: DONE}
                        return
                    if not job.current():
                        break
                    yield {p.edited: update.x0,
                           p.edit_progress: progress_html(update.step + 1, n,
                                                          time.perf_counter() - t0,
                                                          "re-running step"),
                           p.edit_status: f"Re-running the edited generation: step "
                                          f"{update.step + 1} of {n}"}
            if job.stopped():
                yield {p.edit_progress: idle_progress("stopped"),
                       p.edit_status: "Stopped. The run is as it was before the edit."}

    def method_defaults(self, method, run) -> dict:
        """The chosen edit method's own strength and step range (within the run's)."""
        p = self.page
        d = defaults_of(method) or METHOD_DEFAULTS[DEFAULT_METHOD]
        lo, hi = d.steps_within(run.num_inference_steps if run is not None else None)
        return {p.strength: gr.update(value=d.strength), p.first_value: gr.update(value=lo + 1),
                p.last_value: gr.update(value=hi + 1)}
