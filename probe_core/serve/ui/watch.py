"""The Watch tab's actions: generate (streamed, one model job per session), Stop, scrubbing,
playback, filmstrip clicks, a layer change, export, and the example run at page load."""

from __future__ import annotations

import random
from contextlib import closing

import gradio as gr

from ..inputs import step_number
from ..tickets import GENERATE
from .example import emergence_frame, finished_view, session_copy
from .jobs import model_job, session_of
from .texts import idle_progress, progress_html


def slider_max(n: int) -> int:
    """A step slider's maximum for n steps (a slider needs maximum > minimum = 1)."""
    return max(n, 2)


def int_or(value, default: int) -> int:
    """A slider's current value as an int, or `default` when it is not a number."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default


class WatchActions:
    def __init__(self, page, models, tickets, example):
        self.page, self.models, self.tickets, self.example = page, models, tickets, example

    # ------------------------------------------------------------------ generation
    def generate(self, form, request=None):
        """Stream a run step by step; Stop or a newer job ends it at its next step, and this
        job writes the last update itself."""
        with model_job(self.tickets, request, form.job_id, GENERATE) as job:
            if not job.current():  # stopped or replaced before it started: the run stays
                if job.stopped():
                    yield {self.page.progress: idle_progress("stopped"),
                           self.page.status: "Stopped before it started."}
                return
            demo = self.models.get(form.model)
            run = None
            stream = demo.stream(form.prompt, form.seed, form.steps, form.guidance,
                                 session_of(request), form.negative_prompt or "",
                                 form.scheduler, form.word_attention is True)
            with closing(stream):
                for run in stream:
                    if not job.current():
                        break
                    if not run.done:
                        yield self._step(demo, run, form, job.replaced_another())
            if not job.current() and not job.stopped():
                return  # a newer run replaced it: that run's updates follow
            if run is not None and run.done:
                yield self._finished(demo, run, form)
            else:
                yield self._stopped(run)

    def _step(self, demo, run, form, replacing: bool = False) -> dict:
        p, k = self.page, len(run.steps) - 1
        v = demo.view(run, k, form.layer, form.opacity)
        note = " (the run before it was stopped for this one)" if replacing else ""
        return {p.run: run, p.x0: v.x0, p.depth: v.depth, p.saliency: v.saliency,
                p.readout: v.readout,
                p.step_value: gr.update(maximum=slider_max(run.num_inference_steps), value=k + 1),
                p.progress: progress_html(k + 1, run.num_inference_steps, run.seconds),
                p.status: f"Generating{note}: {v.caption}"}

    def _finished(self, demo, run, form) -> dict:
        p, n = self.page, run.num_inference_steps
        v = finished_view(demo, run, form.layer, form.opacity)
        return {p.run: run, p.x0: v.x0, p.depth: v.depth, p.saliency: v.saliency,
                p.readout: v.readout, p.step_value: gr.update(maximum=slider_max(n), value=n),
                p.film: v.film, p.emergence: v.emergence,
                p.painted: v.image, p.word: gr.update(choices=v.words, value=None),
                p.word_image: None, p.word_compare: None,
                p.word_text: ("Pick a word to see where it attends." if run.word_attention
                              else "This run kept no word attention."),
                p.original: v.image, p.pick: v.image, p.edited: None,
                p.progress: progress_html(n, n, run.seconds),
                p.status: f"{v.caption} · {run.seconds:.2f} s · done: drag the step slider to "
                          "scrub" + (f"\n\n{run.schedule_note}" if run.schedule_note else ""),
                **self._edit_steps(run, form.first_value, form.last_value)}

    def _stopped(self, run) -> dict:
        p = self.page
        if run is None or not run.steps:
            return {p.progress: idle_progress("stopped"),
                    p.status: "Stopped before the first step."}
        k, n = len(run.steps), run.num_inference_steps
        return {p.run: run, p.step_value: gr.update(maximum=slider_max(k), value=k),
                p.film: None, p.emergence: emergence_frame(None),
                p.progress: idle_progress(f"stopped at step {k} of {n}"),
                p.status: f"**Stopped at step {k} of {n}.** Scrub steps 1-{k}; generate again "
                          "to the end to steer or export."}

    def _edit_steps(self, run, first_value, last_value) -> dict:
        """The first- and last-edited-step sliders fitted to a run's steps."""
        p, n = self.page, run.num_inference_steps
        lo = min(max(int_or(first_value, 1), 1), n)
        hi = min(max(int_or(last_value, n), lo), n)
        return {p.first_value: gr.update(maximum=slider_max(n), value=lo),
                p.last_value: gr.update(maximum=slider_max(n), value=hi)}

    def stop(self, run, request: gr.Request = None) -> dict:
        """Stop this session's generation or edit. A running job ends at its next step and
        says so itself; with none running, the status says what there is."""
        p = self.page
        if self.tickets.stop(session_of(request)):
            return {p.status: gr.skip(), p.edit_status: gr.skip()}
        if run is None or not run.steps:
            return {p.status: "Stopped before the first step.", p.edit_status: "Nothing to stop."}
        return {p.status: "Nothing is running: the run is as it was.",
                p.edit_status: "Nothing is running: the run is as it was before the edit."}

    # ------------------------------------------------------------------ looking at a run
    def scrub(self, form) -> dict:
        p, demo = self.page, self.models.get(form.model)
        if form.run is None or not form.run.steps:
            raise ValueError("generate an image first")
        k = step_number("step", form.step_value, 1, len(form.run.steps))  # 0-based
        v = demo.view(form.run, k, form.layer, form.opacity)
        return {p.x0: v.x0, p.depth: v.depth, p.saliency: v.saliency, p.readout: v.readout,
                p.status: v.caption}

    def _show_step(self, form, k: int) -> dict:
        """Step k's views, with the step slider and the filmstrip moved there."""
        form.step_value = k
        out = self.scrub(form)
        out[self.page.step_value] = gr.update(value=k)
        out[self.page.film] = gr.update(selected_index=k - 1)
        return out

    def mark(self, form) -> dict:
        """The shown step selected on the filmstrip (a scrub ended)."""
        if form.run is None or not form.run.done:
            return {self.page.film: gr.skip()}
        k = step_number("step", form.step_value, 1, len(form.run.steps))
        return {self.page.film: gr.update(selected_index=k)}

    def play(self, run, playing) -> dict:
        """Play / pause: the timer walks through the run's steps, one a tick."""
        p = self.page
        playing = not playing and run is not None and bool(run.steps)
        return {p.player: gr.Timer(active=playing), p.playing: playing,
                p.play: gr.Button("Pause" if playing else "Play steps")}

    def tick(self, form) -> dict:
        """The next step (after the last, the first again)."""
        if form.run is None or not form.run.steps:
            return {self.page.player: gr.Timer(active=False)}
        k = int_or(form.step_value, 0) % len(form.run.steps) + 1
        return self._show_step(form, k)

    def tile(self, form, evt: gr.SelectData = None) -> dict:
        """A filmstrip tile jumps to its step."""
        if evt is None:
            raise ValueError("click a tile of the filmstrip")
        index = evt.index if not isinstance(evt.index, (list, tuple)) else evt.index[0]
        return self._show_step(form, int(index) + 1)

    def layer(self, form) -> dict:
        """Another probed layer: the step's views, the filmstrip and the curves redrawn."""
        out = self.scrub(form)
        demo = self.models.get(form.model)
        if form.run.done:
            out.update({self.page.film: demo.filmstrip(form.run, form.layer),
                        self.page.emergence: emergence_frame(demo.emergence(form.run,
                                                                            form.layer))})
        return out

    def export(self, run, layer, model, folder) -> dict:
        paths = self.models.get(model).export(run, folder, layer)
        return {self.page.files: [str(p) for p in paths],
                self.page.status: f"Exported {len(paths)} files."}

    def load(self) -> dict:
        """A new page: its own copy of the example run."""
        return {self.page.run: session_copy(self.example.run)}

    @staticmethod
    def random_seed() -> int:
        return random.randint(0, 2**31 - 1)
