"""The page put together: layout, then the events that connect controls to actions.

    >>> app = build_app(ModelChoice())    # a gr.Blocks; app.py queues and launches it

Endpoints (gradio_client): /generate (streams), /random_seed, /scrub, /switch_layer, /stop,
/intervene (streams), /word_map, /inspect_pixel, /keep_as_a, /compare_edit, /compare,
/probe_image (streams), /export, /load_model. Every endpoint that takes input answers bad input
with a message in its last output (its tab's status line) and keeps its other outputs as they
were. A visitor has one model job (generate, edit, probe an image) at a time: a newer one
replaces the older at its next step, Stop ends it; an edit asked during a generation is refused.
"""

from __future__ import annotations

import gradio as gr

from ...models import EMBEDDED
from ...settings import SESSION_TTL_S
from ..exports import ExportFolder
from ..facade import RUN_BUDGET, ProbeDemo
from ..model_choice import ModelChoice
from ..steering import plan_text
from ..tickets import EDIT, GENERATE, PROBE, JobTickets
from ..zerogpu import GpuDuration, on_gpu
from .example import example_view
from .forms import (CompareForm, EditForm, GenerateForm, ProbeImageForm, ViewForm, WordForm,
                    READ_EDIT, READ_GENERATE, READ_PROBE, inputs, takes)
from .jobs import announcer, shown
from .layout_tabs import about_tab, compare_tab, image_tab, look_tab, steer_tab
from .layout_watch import Page, header, watch_tab
from .look import LookActions
from .steer import SteerActions
from .texts import CSS, job_js
from .watch import WatchActions

QUIET = dict(show_progress="hidden")


def build_app(models: ModelChoice | ProbeDemo, exports: ExportFolder | None = None) -> gr.Blocks:
    if isinstance(models, ProbeDemo):
        models = ModelChoice(embedded=models)
    exports = exports or ExportFolder()
    home, tickets, page = models.embedded, JobTickets(SESSION_TTL_S), Page()
    first = example_view(home)
    # exports live an hour in gradio's cache too; checked every hour
    with gr.Blocks(title="scene-probe", delete_cache=(3600, 3600)) as app:
        page.run = gr.State(None, time_to_live=SESSION_TTL_S)
        page.pair = gr.State(None, time_to_live=SESSION_TTL_S)  # (A, B or None: the current)
        page.playing = gr.State(False)
        page.model = gr.State(EMBEDDED)
        page.job_id = gr.Textbox("", visible=False)  # set by the page per click
        header(page, models, home)
        with gr.Tabs():
            watch_tab(page, models, home, first)
            steer_tab(page, home, first)
            look_tab(page, home, first)
            image_tab(page)
            compare_tab(page, home)
            about_tab()
        watch = WatchActions(page, models, tickets, first)
        steer = SteerActions(page, models, tickets)
        look = LookActions(page, models, tickets)
        _wire_watch(page, watch, look, tickets, exports)
        _wire_steer(page, steer, tickets)
        _wire_look(page, look, tickets)
        app.load(watch.load, None, [page.run], api_visibility="private", **QUIET)

        def on_unload(request: gr.Request):
            """A closed tab's cached activations go now, not when gradio's state expires (its
            job record goes when idle: gradio closes a closed page's running job itself)."""
            RUN_BUDGET.drop_session(request.session_hash)

        app.unload(on_unload)
    return app


LAUNCH = dict(css=CSS)  # gradio takes the page's styles at launch


# model runs take turns (one at a time on the shared model); a click while the page's own job
# is pending is still sent: the newer job replaces the older
MODEL_JOBS = dict(concurrency_id="model", concurrency_limit=1, trigger_mode="multiple")


def _wire_watch(page, watch, look, tickets, exports) -> None:
    p = page
    generate = on_gpu(shown(p.status)(takes(GenerateForm)(watch.generate)),
                      GpuDuration(watch.models, READ_GENERATE, "generate"))
    outputs = [p.run, p.x0, p.depth, p.saliency, p.step_value, p.film, p.emergence,
               p.first_value, p.last_value, p.painted, p.word, p.word_image, p.word_compare,
               p.word_text, p.readout, p.original, p.pick, p.edited, p.progress, p.status]
    gen_inputs = inputs(GenerateForm, p)
    job = dict(validator=announcer(tickets, GenerateForm, GENERATE),
               js=job_js(len(gen_inputs), "status"), **MODEL_JOBS)
    event = p.generate.click(generate, gen_inputs, outputs, api_name="generate", **job)
    submitted = p.prompt.submit(generate, gen_inputs, outputs, api_visibility="private", **job)
    for then in (event.then, submitted.then):  # B, the current run, redrawn in Compare
        then(takes(CompareForm)(look.refresh_compare), inputs(CompareForm, p),
             [p.compare_image, p.compare_text, p.compare_status], api_visibility="private",
             **QUIET)
    p.stop.click(watch.stop, [p.run], [p.status, p.edit_status], api_name="stop",
                 queue=False)
    p.dice.click(watch.random_seed, None, p.seed, api_name="random_seed")
    view = inputs(ViewForm, p)
    shown_view = [p.x0, p.depth, p.saliency, p.readout]
    scrub = shown(p.status)(takes(ViewForm)(watch.scrub))
    p.step_value.input(scrub, view, [*shown_view, p.status], api_name="scrub", **QUIET)
    p.opacity.input(scrub, view, [*shown_view, p.status], api_name="set_opacity",
                    api_visibility="undocumented", **QUIET)
    p.step_value.release(shown(p.status)(takes(ViewForm)(watch.mark)), view, [p.film],
                         api_visibility="undocumented", **QUIET)
    p.layer.input(shown(p.status)(takes(ViewForm)(watch.layer)), view,
                  [*shown_view, p.film, p.emergence, p.status], api_name="switch_layer")
    p.play.click(watch.play, [p.run, p.playing], [p.player, p.playing, p.play],
                 api_visibility="undocumented", **QUIET)
    p.player.tick(shown(p.status)(takes(ViewForm)(watch.tick)), view,
                  [*shown_view, p.step_value, p.film, p.status, p.player],
                  api_visibility="undocumented", **QUIET)
    p.film.select(shown(p.status)(takes(ViewForm, evt=gr.SelectData)(watch.tile)), view,
                  [*shown_view, p.step_value, p.film, p.status],
                  api_visibility="undocumented", **QUIET)

    @shown(p.status)
    def export(run, layer, model=EMBEDDED):
        return watch.export(run, layer, model, exports.new())

    p.export.click(export, [p.run, p.layer, p.model], [p.files, p.status], api_name="export")


def _wire_steer(page, steer, tickets) -> None:
    p = page
    intervene = on_gpu(shown(p.edit_status)(takes(EditForm)(steer.intervene)),
                       GpuDuration(steer.models, READ_EDIT, "edit"))
    edit_inputs = inputs(EditForm, p)
    outputs = [p.edited, p.edit_progress, p.compare_slider, p.target, p.achieved, p.score,
               p.edit_status]
    job = dict(validator=announcer(tickets, EditForm, EDIT),
               js=job_js(len(edit_inputs), "edit-status"), **MODEL_JOBS)
    p.apply.click(intervene, edit_inputs, outputs, api_name="intervene", **job)
    plan_inputs = [p.move_x, p.move_y, p.scale, p.depth_push, p.drawn, p.shift_x, p.shift_y,
                   p.method]
    for name in ("move_x", "move_y", "scale", "depth_push", "shift_x", "shift_y"):
        slider = getattr(p, name)
        slider.release(intervene, edit_inputs, outputs, api_name=f"intervene_on_{name}",
                       api_visibility="undocumented", **job)
        slider.change(plan_text, plan_inputs, p.plan, api_visibility="private", **QUIET)
    for control in (p.drawn, p.method):
        control.change(plan_text, plan_inputs, p.plan, api_visibility="private", **QUIET)
    p.method.input(steer.method_defaults, [p.method, p.run],
                   [p.strength, p.first_value, p.last_value], api_name="method_defaults",
                   api_visibility="undocumented")


def _wire_look(page, look, tickets) -> None:
    p = page
    p.pick.select(shown(p.look_status)(look.pixel), [p.run, p.layer, p.model],
                  [p.pixel, p.look_status], api_visibility="undocumented", **QUIET)
    word = shown(p.look_status)(takes(WordForm)(look.word))
    word_outputs = [p.word_image, p.word_compare, p.word_text, p.look_status]
    p.word.input(word, inputs(WordForm, p), word_outputs, api_name="word_map", **QUIET)
    for trigger in (p.when.input, p.step_value.release, p.layer.input):
        trigger(word, inputs(WordForm, p), word_outputs, api_visibility="undocumented", **QUIET)
    probe = on_gpu(shown(p.probe_status)(takes(ProbeImageForm)(look.probe_image)),
                   GpuDuration(look.models, READ_PROBE, "probe"))
    probe_inputs = inputs(ProbeImageForm, p)
    p.probe_image.click(probe, probe_inputs, [p.probe_tiles, p.probe_table, p.probe_status],
                        api_name="probe_image",
                        validator=announcer(tickets, ProbeImageForm, PROBE),
                        js=job_js(len(probe_inputs), "probe-status"), **MODEL_JOBS)
    compare_outputs = [p.compare_image, p.compare_text, p.compare_status]
    for button, with_edit in ((p.keep, False), (p.keep_edit, True)):
        keep = shown(p.compare_status)(takes(CompareForm)(
            lambda form, request=None, e=with_edit: look.keep(form, e)))
        button.click(keep, inputs(CompareForm, p), [p.pair, p.compare_step, *compare_outputs],
                     api_name="compare_edit" if with_edit else "keep_as_a")
    compare = shown(p.compare_status)(takes(CompareForm)(look.compare))
    p.compare_step.input(compare, inputs(CompareForm, p), compare_outputs, api_name="compare",
                         **QUIET)
    for trigger in (p.layer_a.input, p.layer_b.input):
        trigger(compare, inputs(CompareForm, p), compare_outputs, api_visibility="undocumented",
                **QUIET)
    p.load.click(look.load_model, [p.model_pick, p.model],
                 [p.model, p.run, p.pair, p.model_pick, p.layer, p.layer_a, p.layer_b,
                  p.vocabulary, p.heatmap, p.move_x, p.move_y, p.guidance, p.method,
                  p.strength, p.first_value, p.last_value, p.model_line],
                 api_name="load_model", concurrency_id="load", concurrency_limit=1)
