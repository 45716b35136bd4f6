"""The actions of the Look closer, Your image and Compare tabs, and switching the model."""

from __future__ import annotations

import gradio as gr

from ...edits.edit_settings import DEFAULT_METHOD, METHOD_DEFAULTS, defaults_of
from ...models import ModelUnavailableError
from ...settings import DISPLAY_SIZE
from ..inputs import step_number
from ..model_choice import model_key
from ..tickets import PROBE
from .jobs import model_job, session_of
from .layout_tabs import move_label
from .layout_watch import model_line
from .watch import int_or, slider_max


class LookActions:
    def __init__(self, page, models, tickets):
        self.page, self.models, self.tickets = page, models, tickets

    # ------------------------------------------------------------------ Look closer
    def pixel(self, run, layer, model, evt: gr.SelectData = None) -> dict:
        """A click on the image: that pixel through the run."""
        demo = self.models.get(model)
        if evt is None:
            raise ValueError("click a pixel of the image")
        x, y = (int(v) * demo.image_size // DISPLAY_SIZE for v in evt.index[:2])
        return {self.page.pixel: demo.inspect_pixel(run, x, y, layer),
                self.page.look_status: f"Pixel (x {x}, y {y}) of the {demo.image_size}-px "
                                       "image: its probe readings at every step and layer."}

    def word(self, form) -> dict:
        """A word's attention at the shown step (or over all steps), beside the probe."""
        p, demo = self.page, self.models.get(form.model)
        if form.word in (None, ""):
            return {p.word_image: None, p.word_compare: None,
                    p.look_status: "Pick a word of the prompt to see where it attends."}
        run = form.run
        if run is None or not run.steps:
            raise ValueError("generate an image first")
        k = (None if form.when == "all" else
             step_number("step", form.step_value, 1, len(run.word_attention or run.steps)))
        v = demo.word_view(run, form.word, k, form.layer)
        return {p.word_image: v.image, p.word_compare: v.compare, p.word_text: v.text,
                p.look_status: f"Where '{form.word}' attends."}

    # ------------------------------------------------------------------ Your image
    def probe_image(self, form, request=None):
        """An upload (or else the held-out render of a seed) read by the probes."""
        p = self.page
        with model_job(self.tickets, request, form.job_id, PROBE) as job:
            if not job.current():  # stopped or replaced before it started
                if job.stopped():
                    yield {p.probe_status: "Stopped before it started."}
                return
            demo = self.models.get(form.model)
            with_render = form.render_seed not in (None, "") and form.upload is None
            view = demo.probe_image(None if with_render else form.upload,
                                    form.probe_prompt or "",
                                    render_seed=form.render_seed if with_render else None,
                                    layer=form.layer)
            yield {p.probe_tiles: view.tiles, p.probe_table: view.table,
                   p.probe_status: f"Probed the image at every step in {view.seconds:.2f} s."}

    # ------------------------------------------------------------------ Compare
    def compare(self, form) -> dict:
        """A | B | B - A at one step: A the kept run, B its edit or the current run."""
        p = self.page
        if form.pair is None:
            raise ValueError("keep a run as A first (or compare a run with its edit)")
        a, b = form.pair
        v = self.models.get(form.model).compare(a, b if b is not None else form.run,
                                                form.compare_step, form.layer_a, form.layer_b)
        return {p.compare_image: v.image, p.compare_text: v.text,
                p.compare_status: "Compared A and B."}

    def refresh_compare(self, form) -> dict:
        """After a new run: the compare view redrawn when B is the current run."""
        unchanged = {c: gr.skip() for c in (self.page.compare_image, self.page.compare_text,
                                             self.page.compare_status)}
        if form.pair is None or form.pair[1] is not None or form.run is None \
                or not form.run.done:
            return unchanged
        try:
            return self.compare(form)
        except ValueError:
            return unchanged

    def keep(self, form, with_edit: bool) -> dict:
        """Keep the current run as A (and its edit as B when `with_edit`), and compare."""
        p, run = self.page, form.run
        if run is None or not run.steps:
            raise ValueError("generate an image first")
        if with_edit and (run.edit is None or run.edit.run is None):
            raise ValueError("this run has no edit yet: apply one first")
        form.pair = (run, run.edit.run if with_edit else None)
        n = len(run.steps)
        form.compare_step = min(max(int_or(form.compare_step, n), 1), n)
        out = {p.pair: form.pair,
               p.compare_step: gr.update(maximum=slider_max(n), value=form.compare_step)}
        out.update(self.compare(form))
        return out

    # ------------------------------------------------------------------ the model
    def load_model(self, name, current, request: gr.Request = None) -> dict:
        """Switch this session's model (its running jobs stop: their runs belong to the model
        they ran on); on failure stay on the current one and say why, in the model line only."""
        p = self.page
        try:
            demo = self.models.get(model_key(name))
        except (ModelUnavailableError, ValueError) as err:
            reason = " ".join(str(err).split())
            reason = reason if len(reason) <= 400 else reason[:400].rsplit(" ", 1)[0] + " …"
            return {p.model: current, p.model_pick: gr.update(value=current),
                    p.model_line: f"**Could not load that model.** {reason} Still on "
                                  f"**{self.models.get(current).name}**."}
        self.tickets.stop(session_of(request))
        words = demo.vocabulary()
        choices = demo.layer_choices()
        method = defaults_of(demo.default_method) or METHOD_DEFAULTS[DEFAULT_METHOD]
        lo, hi = method.steps_within(None)
        return {p.model: model_key(name), p.run: None, p.pair: None,
                p.model_pick: gr.update(value=model_key(name)),
                p.layer: gr.update(choices=choices, value="best"),
                p.layer_a: gr.update(choices=choices, value="best"),
                p.layer_b: gr.update(choices=choices, value="best"),
                p.vocabulary: ", ".join(words) if words else "Open vocabulary (CLIP tokenizer).",
                p.heatmap: demo.heatmap(),
                p.move_x: gr.update(minimum=-demo.max_move, maximum=demo.max_move, value=0,
                                    label=move_label("x", demo)),
                p.move_y: gr.update(minimum=-demo.max_move, maximum=demo.max_move, value=0,
                                    label=move_label("y", demo)),
                p.guidance: gr.update(value=demo.default_guidance),
                p.method: gr.update(value=demo.default_method),
                p.strength: gr.update(value=method.strength),
                p.first_value: gr.update(value=lo + 1), p.last_value: gr.update(value=hi + 1),
                p.model_line: model_line(demo)}
