"""scene-probe: the one-page Gradio app. UI wiring only; the work is in probe_core.serve.

    python app.py            # the embedded tiny-scenes model, offline, on CPU

Each session picks its model (the embedded one, a Stable Diffusion hub id in the local cache, or
a diffusers folder, where the deployment allows it); one that cannot be loaded leaves the
session on the model it had. Endpoints (gradio_client): /generate (streams), /random_seed,
/scrub, /switch_layer, /word_map, /intervene (streams), /keep_as_a, /compare_edit, /compare,
/probe_image, /export, /load_model, /stop. Every endpoint that takes input answers bad input
with a message in its last output (the status line) and keeps its other outputs as they were;
gradio itself refuses a bad paint canvas or upload, and a visitor's second model job
(/generate, /intervene, /probe_image) while one is queued or running.
"""

import probe_core.offline  # noqa: F401  (before gradio imports the hub client)

import functools
import inspect
import random
from unittest import mock

import gradio as gr
from gradio import component_meta

from probe_core.edits.edit_settings import DEFAULT_METHOD, METHOD_DEFAULTS, defaults_of
from probe_core.models import EMBEDDED, ModelUnavailableError
from probe_core.probing.schedulers import DEFAULT as DEFAULT_SCHEDULER
from probe_core.probing.schedulers import SCHEDULERS
from probe_core.serve.deployment import Deployment
from probe_core.serve.exports import ExportFolder
from probe_core.serve.facade import RUN_BUDGET, EditView, ProbeDemo
from probe_core.serve.inputs import step_number
from probe_core.serve.model_choice import CHOICES, ModelChoice, model_key
from probe_core.serve.steering import SliderValues, plan_text
from probe_core.serve.zerogpu import on_gpu
from probe_core.viz import to_size
from probe_core.settings import (DEFAULT_STEPS, DISPLAY_SIZE, EMBEDDED_MODEL, MAX_GUIDANCE,
                                 MAX_SEED, SESSION_TTL_S, shown_path)
from probe_core.viz import depth_legend

INTRO = """# scene-probe
Watch a latent diffusion model build a 3D scene, step by step. Linear probes read a **depth map**
and the **salient object** out of the UNet's self-attention activations at every denoising step
(Chen, Viégas & Wattenberg, 2023): see how early the scene's layout can be read, and compare it
with what the decoded image shows. Then steer the scene by editing what the probes read."""
MAX_UPLOAD = "1mb"  # nothing on this page takes an upload; refuse large ones outright


def raw(component_cls):
    """A subclass of the component whose value reaches the handler as the client sent it: the
    handler's own checks then answer a wrong type with a message naming the argument (gradio's
    conversion would fail first, with a generic error). Gradio writes a .pyi stub beside the
    module of every component class it sees defined; not for these."""
    def preprocess(self, payload):
        return payload

    def get_block_name(self):  # the browser renders it as the component it extends
        return component_cls.__name__.lower()

    attrs = {"preprocess": preprocess, "get_block_name": get_block_name,
             "__module__": __name__}
    with mock.patch.object(component_meta, "create_or_modify_pyi", lambda *a, **k: None):
        return type(component_cls)(component_cls.__name__, (component_cls,), attrs)


Slider, Number, Textbox, Dropdown, Radio = (raw(c) for c in (gr.Slider, gr.Number, gr.Textbox,
                                                             gr.Dropdown, gr.Radio))


def _slider_max(n: int) -> int:
    """A step slider's maximum for n steps (a slider needs maximum > minimum = 1)."""
    return max(n, 2)


PLAY_SECONDS = 0.5  # the step player's pace: one step a tick
# the depth view's hover readout: values from the readout's data attribute under the pointer
HOVER_JS = """
document.addEventListener('mousemove', (e) => {
  const img = e.target.closest && e.target.closest('#depth-image img');
  const box = element.querySelector('.depth-readout');
  if (!img || !box) return;
  const r = img.getBoundingClientRect(), n = +box.dataset.n;
  box._values = box._values || box.dataset.depth.split(',').map(Number);
  const x = Math.floor((e.clientX - r.left) / r.width * n);
  const y = Math.floor((e.clientY - r.top) / r.height * n);
  if (x < 0 || y < 0 || x >= n || y >= n) return;
  box.firstChild.textContent = 'depth at x ' + x + ', y ' + y + ' (of ' + n + '): '
    + box._values[y * n + x].toFixed(2) + ' z-units (+ = near)';
});
"""


def _move_label(axis: str, demo: ProbeDemo) -> str:
    """A move slider's label, with its unit: pixels of this model's image."""
    way = "+ right" if axis == "x" else "+ down"
    return f"Move object {axis} (px of the {demo.image_size}-px image, {way})"


def _model_line(demo: ProbeDemo) -> str:
    return f"Model: **{demo.name}**" + (f"\n\n> {demo.notice}" if demo.notice else "")


def build_app(models: ModelChoice | ProbeDemo, exports: ExportFolder | None = None) -> gr.Blocks:
    if isinstance(models, ProbeDemo):
        models = ModelChoice(embedded=models)
    exports = exports or ExportFolder()
    home = models.embedded
    method_defaults = METHOD_DEFAULTS[DEFAULT_METHOD]

    # exports live an hour in gradio's cache too; checked every hour
    with gr.Blocks(title="scene-probe", delete_cache=(3600, 3600)) as app:
        run_state = gr.State(None, time_to_live=SESSION_TTL_S)
        pair_state = gr.State(None, time_to_live=SESSION_TTL_S)  # (A, B or None: the current)
        play_state = gr.State(False)  # whether the step player is playing
        model_state = gr.State(EMBEDDED)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                with gr.Group():
                    model = Dropdown(
                        [(home.name, EMBEDDED)] + [(c, c) for c in CHOICES if c != EMBEDDED],
                        value=EMBEDDED, allow_custom_value=models.allow_any, label="Model",
                        info=("the embedded model, a Stable Diffusion id in the local cache, "
                              "or a diffusers folder" if models.allow_any else
                              "the embedded model or a Stable Diffusion id this server has"),
                        elem_id="model")
                    load_btn = gr.Button("Load model", size="sm")
                    model_line = gr.Markdown(_model_line(home))
                prompt = Textbox(label="Prompt", value=home.example_prompts(1)[0], lines=2)
                with gr.Row():  # right under the prompt: visible without scrolling
                    generate_btn = gr.Button("Generate", variant="primary")
                    stop_btn = gr.Button("Stop", variant="stop")
                gr.Examples(home.example_prompts(6), inputs=[prompt], label="Example prompts")
                with gr.Row():
                    seed = Number(label="Seed", value=0, precision=0, minimum=0,
                                  maximum=MAX_SEED, scale=3)
                    dice_btn = gr.Button("🎲 random seed", scale=1, size="sm")
                steps = Slider(1, home.max_steps, value=DEFAULT_STEPS, step=1, label="Steps")
                guidance = Slider(0, MAX_GUIDANCE, value=home.default_guidance, step=0.5,
                                  label="Guidance scale")
                with gr.Accordion("Sampling: negative prompt, scheduler", open=False):
                    negative = Textbox(label="Negative prompt (replaces the empty prompt that "
                                             "guidance steers away from)", value="", lines=1,
                                       elem_id="negative-prompt")
                    sampler = Dropdown([("the model's own", DEFAULT_SCHEDULER)]
                                       + [(k, k) for k in SCHEDULERS], value=DEFAULT_SCHEDULER,
                                       label="Scheduler",
                                       info="probes are read at the probed timestep nearest "
                                            "each step's; the page says when they differ")
                layer = Dropdown(home.layer_choices(), value="best", label="Probed layer")
                opacity = Slider(0, 1, value=0.6, step=0.05, label="Overlay opacity")
                word_on = gr.Checkbox(True, label="Keep per-word attention maps (cross-attention;"
                                                  " a few % slower)", elem_id="word-on")
                with gr.Accordion("Words this model knows", open=False):
                    vocabulary = gr.Markdown(", ".join(home.vocabulary()))
            with gr.Column(scale=3):
                status = gr.Markdown("Press **Generate** to watch the scene emerge.",
                                     elem_id="status")
                with gr.Row():
                    x0_img = gr.Image(label="Image: decoded x0 prediction", height=256,
                                      elem_id="x0-image")
                    depth_img = gr.Image(label="Depth probe (bright = near; hover for values)",
                                         height=256,
                                         elem_id="depth-image")
                    sal_img = gr.Image(label="Saliency probe (magenta = object)", height=256,
                                       elem_id="saliency-image")
                with gr.Row(equal_height=True):
                    gr.Image(depth_legend(), show_label=False, height=44, container=False,
                             buttons=[], elem_id="depth-legend", scale=1)
                    readout = gr.HTML("", js_on_load=HOVER_JS, elem_id="depth-readout",
                                      scale=2)
                with gr.Row(equal_height=True):
                    step = Slider(1, DEFAULT_STEPS, value=DEFAULT_STEPS, step=1,
                                  label="Step (scrub after a run)", scale=6)
                    play_btn = gr.Button("Play steps", size="sm", scale=1, elem_id="play")
                player = gr.Timer(PLAY_SECONDS, active=False)
                film = gr.Gallery(label="Every step: image | depth / saliency | depth with "
                                        "object outline (the shown step selected)",
                                  columns=8, height="auto", object_fit="contain",
                                  elem_id="filmstrip", allow_preview=False)
                pixel_img = gr.Image(label="Pixel inspector: click a pixel of the image, depth or "
                                           "saliency view above", height=300,
                                     elem_id="pixel-inspector")
                with gr.Group():
                    with gr.Row(equal_height=True):
                        word = Dropdown([], value=None, label="Word of the prompt", scale=2,
                                        elem_id="word")
                        word_steps = Radio([("this step", "step"), ("all steps", "all")],
                                           value="step", label="Attention at", scale=1)
                    with gr.Row():
                        word_img = gr.Image(label="Where the word attends (cross-attention)",
                                            height=290, scale=1, elem_id="word-image")
                        word_cmp = gr.Image(label="Compare: saliency probe vs the word's "
                                                  "attention", height=290, scale=3)
                    word_text = gr.Markdown("")
                with gr.Row():
                    emergence_img = gr.Image(label="Emergence in this run", height=290)
                    heat_img = gr.Image(home.heatmap(), label="Probe scores on held-out images",
                                        height=290)
        with gr.Accordion("Steer the scene: edit what the probes read, and re-run", open=True):
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    move_x = Slider(-home.max_move, home.max_move, value=0, step=1,
                                    label=_move_label("x", home), elem_id="move-x")
                    move_y = Slider(-home.max_move, home.max_move, value=0, step=1,
                                    label=_move_label("y", home))
                    scale = Slider(0.5, 2.0, value=1.0, step=0.05, label="Scale object")
                    depth_push = Slider(-2.0, 2.0, value=0.0, step=0.1,
                                        label="Push depth (+ nearer; z-units)")
                    drawn = Radio([("none", "none"), ("painted mask", "paint"),
                                   ("flip object", "flip"), ("swap near and far", "swap")],
                                  value="none", label="Drawn target (adds to the sliders)",
                                  elem_id="drawn")
                    with gr.Row():
                        shift_x = Slider(-home.max_move, home.max_move, value=0, step=1,
                                         label="Shift depth map x (px)")
                        shift_y = Slider(-home.max_move, home.max_move, value=0, step=1,
                                         label="Shift depth map y (px)")
                    plan = gr.Markdown(plan_text(0, 0, 1.0, 0.0), elem_id="edit-plan")
                    method = Dropdown(["guided", "activation"], value=home.default_method,
                                      label="Edit method",
                                      info=("guided: a move first carries the object's latent "
                                            "to its new place, then the probes' gradient "
                                            "steers the latent (a farther push keeps the "
                                            "objects' outlines); activation: the paper's edit "
                                            "of the probed activations"))
                    strength = Slider(0, 1, value=method_defaults.strength, step=0.01,
                                      label="Strength")
                    with gr.Row():
                        first = Slider(1, DEFAULT_STEPS, value=min(method_defaults.steps) + 1,
                                       step=1, label="First edited step")
                        last = Slider(1, DEFAULT_STEPS, value=max(method_defaults.steps) + 1,
                                      step=1, label="Last edited step")
                    apply_btn = gr.Button("Apply edit", variant="primary")
                with gr.Column(scale=3):
                    with gr.Row():
                        compare = gr.ImageSlider(label="Before | after (drag)", max_height=256)
                        target_img = gr.Image(label="Target", height=256)
                        achieved_img = gr.Image(label="Achieved (labelled edited image)",
                                                height=256)
                    # depth pushes show target and achieved depth in the probes' colours
                    gr.Image(depth_legend(), show_label=False, height=44, container=False,
                             buttons=[], elem_id="edit-depth-legend")
                    with gr.Row():
                        canvas = gr.ImageEditor(
                            label="Paint the target mask (pick 'painted mask'): where the "
                                  "object should be", type="numpy", image_mode="RGBA",
                            sources=(), transforms=(), layers=False, format="png",
                            brush=gr.Brush(default_size=24, colors=["#ff00ff"],
                                           color_mode="fixed"),
                            canvas_size=(DISPLAY_SIZE, DISPLAY_SIZE), fixed_canvas=True,
                            height=380, min_width=330, scale=1, elem_id="paint")
                        score = gr.Markdown("Generate an image, then move a slider or draw "
                                            "a target.")
        with gr.Accordion("Compare two runs side by side", open=False):
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    keep_btn = gr.Button("Keep the current run as A", elem_id="keep-a")
                    edit_cmp_btn = gr.Button("Compare the current run with its edit")
                    gr.Markdown("Then generate B (another seed, prompt, sampler...) or pick "
                                "other layers: B is the current run.")
                    cmp_step = Slider(1, DEFAULT_STEPS, value=DEFAULT_STEPS, step=1,
                                      label="Step (of A; B at the same point of its schedule)")
                    layer_a = Dropdown(home.layer_choices(), value="best", label="Layer of A")
                    layer_b = Dropdown(home.layer_choices(), value="best", label="Layer of B")
                with gr.Column(scale=3):
                    cmp_img = gr.Image(label="A | B | B - A", height=460, elem_id="compare")
                    cmp_text = gr.Markdown("")
        with gr.Accordion("Probe your own image: is the scene in there?", open=False):
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    upload = gr.Image(label="An image (resized to the model's size)",
                                      type="numpy", sources=["upload"], height=200,
                                      elem_id="probe-upload")
                    render_seed = Number(label="...or a held-out render: its seed (exact depth "
                                               "and mask)", value=None, precision=0,
                                         elem_id="render-seed")
                    probe_prompt = Textbox(label="Text for the UNet (may be empty; a render's "
                                                 "caption when empty)", value="", lines=1)
                    probe_btn = gr.Button("Probe this image", elem_id="probe-image")
                with gr.Column(scale=3):
                    probe_tiles = gr.Gallery(label="Per step: image | probe depth / probe "
                                                   "object | true or labelled depth", columns=8,
                                             rows=2, height=250, object_fit="contain",
                                             allow_preview=False)
                    probe_table = gr.Markdown("")
        with gr.Accordion("Export this run", open=False):
            export_btn = gr.Button("Export GIF, PNGs and JSON")
            files = gr.File(label="Files", file_count="multiple")

        running: set[str] = set()  # sessions whose model job runs now

        def one_job_each(request: gr.Request | None, n_inputs: int) -> list:
            """Checked before a model job is queued: a visitor (session) has at most one model
            job queued or running; a second is refused with a message."""
            session = request.session_hash if request is not None else None
            waiting = getattr(app, "_queue", None)
            waiting = getattr(waiting, "event_queue_per_concurrency_id", {}).get("model")
            queued = waiting is not None and any(e.session_hash == session
                                                 for e in waiting.queue)
            busy = session is not None and (queued or session in running)
            message = "you already have a run or an edit queued or running: wait for it or Stop"
            return [gr.validate(not busy, message)] + [gr.validate(True, "")] * (n_inputs - 1)

        def before_generate(prompt, seed, steps, guidance, layer, opacity, first_value,
                            last_value, negative_prompt, scheduler, word_attention, model,
                            request: gr.Request):
            return one_job_each(request, 12)

        def before_intervene(run, move_x, move_y, scale, depth_push, strength, first_value,
                             last_value, method, drawn, painted, shift_x, shift_y, model,
                             request: gr.Request):
            return one_job_each(request, 14)

        def before_probe_image(image, seed_value, prompt_text, layer, model,
                               request: gr.Request):
            return one_job_each(request, 5)

        def model_job(fn):
            """Marks the session as running while a model job runs (one_job_each reads it)."""
            @functools.wraps(fn)  # gradio reads fn's signature and passes the request in it
            def run(*args, **kwargs):
                request = next((a for a in (*args, *kwargs.values())
                                if isinstance(a, gr.Request)), None)
                session = request.session_hash if request is not None else None
                running.add(session)
                try:
                    yield from fn(*args, **kwargs)
                finally:
                    running.discard(session)
            return run

        def shown(fn):
            """Expected failures (bad input, a model that cannot load) become a message in the
            status line and a toast; every other output keeps its last good value."""
            def message(err):
                gr.Warning(str(err))
                return {status: f"**Not done:** {err}"}

            if inspect.isgeneratorfunction(fn):
                @functools.wraps(fn)
                def stream(*args, **kwargs):
                    try:
                        yield from fn(*args, **kwargs)
                    except (ValueError, ModelUnavailableError) as err:
                        yield message(err)
                return stream

            @functools.wraps(fn)
            def call(*args, **kwargs):
                try:
                    return fn(*args, **kwargs)
                except (ValueError, ModelUnavailableError) as err:
                    return message(err)
            return call

        def step_sliders(run, first_value, last_value):
            """The first- and last-edited-step sliders fitted to a run's steps."""
            n = run.num_inference_steps
            top = _slider_max(n)
            lo = min(max(_int_or(first_value, 1), 1), n)
            hi = min(max(_int_or(last_value, n), lo), n)
            return {first: gr.update(maximum=top, value=lo),
                    last: gr.update(maximum=top, value=hi)}

        @shown
        def on_generate(prompt, seed, steps, guidance, layer, opacity, first_value, last_value,
                        negative_prompt="", scheduler="default", word_attention=True,
                        model=EMBEDDED, request: gr.Request = None):
            demo = models.get(model)
            run = None
            session = request.session_hash if request is not None else None
            for run in demo.stream(prompt, seed, steps, guidance, session, negative_prompt,
                                   scheduler, word_attention is True):
                k = len(run.steps) - 1
                v = demo.view(run, k, layer, opacity)
                line = f"{v.caption} · {run.seconds:.2f} s"
                if not run.done:
                    yield {run_state: run, x0_img: v.x0, depth_img: v.depth, sal_img: v.saliency,
                           readout: v.readout,
                           step: gr.update(maximum=_slider_max(run.num_inference_steps),
                                           value=k + 1),
                           status: line}
            yield {run_state: run, x0_img: v.x0, depth_img: v.depth, sal_img: v.saliency,
                   readout: v.readout, step: gr.update(maximum=_slider_max(run.num_inference_steps),
                                   value=run.num_inference_steps),
                   film: demo.filmstrip(run, layer), emergence_img: demo.emergence_plot(run, layer),
                   canvas: to_size(run.image, DISPLAY_SIZE),
                   word: gr.update(choices=demo.words(run), value=None),
                   word_img: None, word_cmp: None,
                   word_text: ("Pick a word to see where it attends." if run.word_attention
                               else "This run kept no word attention."),
                   status: line + " · done: drag the step slider to scrub"
                   + (f"\n\n{run.schedule_note}" if run.schedule_note else ""),
                   **step_sliders(run, first_value, last_value)}

        def on_stop(run):
            """Stop a generation or an edit; a partial run stays, marked, for scrubbing."""
            if run is None or not run.steps:
                return {status: "Stopped before the first step."}
            if run.done:
                return {status: "Stopped. The run is as it was before the edit."}
            k, n = len(run.steps), run.num_inference_steps
            return {status: f"**Stopped at step {k} of {n}.** Scrub steps 1-{k}; generate again "
                            "to the end to steer or export.",
                    step: gr.update(maximum=_slider_max(k), value=k),
                    film: None, emergence_img: None}

        @shown
        def on_scrub(run, step_value, layer, opacity, model):
            demo = models.get(model)
            if run is None or not run.steps:
                raise ValueError("generate an image first")
            k = step_number("step", step_value, 1, len(run.steps))
            v = demo.view(run, k, layer, opacity)
            return {x0_img: v.x0, depth_img: v.depth, sal_img: v.saliency, readout: v.readout,
                    status: v.caption}

        def show_step(run, k, layer, opacity, model):
            """Step k's views, and the step slider and filmstrip moved there (playback,
            filmstrip)."""
            out = on_scrub(run, k, layer, opacity, model)
            if x0_img in out:
                out[step] = gr.update(value=k)
                out[film] = gr.update(selected_index=k - 1)
            return out

        @shown
        def on_mark(run, step_value, layer, model):
            """The shown step marked on the filmstrip and the emergence plot (a scrub ended)."""
            if run is None or not run.done:
                return {}
            k = step_number("step", step_value, 1, len(run.steps))
            return {film: gr.update(selected_index=k),
                    emergence_img: models.get(model).emergence_plot(run, layer, k)}

        def on_play(run, playing):
            """Play / pause: the timer walks through the run's steps, one a tick."""
            playing = not playing and run is not None and bool(run.steps)
            return {player: gr.Timer(active=playing), play_state: playing,
                    play_btn: gr.Button("Pause" if playing else "Play steps")}

        @shown
        def on_tick(run, step_value, layer, opacity, model):
            """The next step (after the last, the first again)."""
            if run is None or not run.steps:
                return {player: gr.Timer(active=False)}
            k = int(step_value) % len(run.steps) + 1 if step_value else 1
            return show_step(run, k, layer, opacity, model)

        @shown
        def on_pixel(run, layer, model, evt: gr.SelectData):
            """A click on a shown image: that pixel through the run (pixel inspector)."""
            demo = models.get(model)
            x, y = (int(v) * demo.image_size // DISPLAY_SIZE for v in evt.index[:2])
            return {pixel_img: demo.inspect_pixel(run, x, y, layer),
                    status: f"pixel (x {x}, y {y}) of the {demo.image_size}-px image: its probe "
                            "readings at every step and layer, below the images"}

        @shown
        def on_tile(run, layer, opacity, model, evt: gr.SelectData):
            """A filmstrip tile jumps to its step."""
            k = int(evt.index if not isinstance(evt.index, (list, tuple)) else evt.index[0]) + 1
            return show_step(run, k, layer, opacity, model)

        @shown
        def on_layer(run, step_value, layer, opacity, model):
            out = on_scrub(run, step_value, layer, opacity, model)
            if x0_img in out:  # the scrub worked: redraw the per-layer figures too
                demo = models.get(model)
                out.update({film: demo.filmstrip(run, layer),
                            emergence_img: demo.emergence_plot(run, layer)})
            return out

        @shown
        def on_intervene(run, move_x, move_y, scale, depth_push, strength, first_value,
                         last_value, method, drawn="none", painted=None, shift_x=0, shift_y=0,
                         model=EMBEDDED, request: gr.Request = None):
            demo = models.get(model)
            n = run.num_inference_steps if run is not None else 1
            k0 = step_number("first edited step", first_value, 1, n) if run is not None else 0
            k1 = (step_number("last edited step", last_value, k0 + 1, n) if run is not None
                  else 0)
            sliders = SliderValues(move_x, move_y, scale, depth_push, strength, k0, k1, method,
                                   drawn, brush_layer(painted), shift_x, shift_y)
            for update in demo.intervene(run, sliders):
                if isinstance(update, EditView):
                    yield {compare: (update.before, update.after), target_img: update.target,
                           achieved_img: update.achieved, score: update.score,
                           status: "Edit done: see the score card below."}
                else:
                    yield {status: f"Re-running the edited generation: step {update.step + 1} "
                                   f"of {n}"}

        @shown
        def on_probe_image(image, seed_value, prompt_text, layer, model,
                           request: gr.Request = None):
            """An upload (or else the held-out render of a seed) read by the probes."""
            demo = models.get(model)
            with_render = seed_value not in (None, "") and image is None
            view = demo.probe_image(None if with_render else image, prompt_text or "",
                                    render_seed=seed_value if with_render else None,
                                    layer=layer)
            yield {probe_tiles: view.tiles, probe_table: view.table,
                   status: f"Probed the image at every step in {view.seconds:.2f} s."}

        @shown
        def on_word(run, word, when, step_value, layer, model):  # word: the text, not the menu
            """A word's attention at the shown step (or over all steps), and the compare view."""
            demo = models.get(model)
            if word in (None, ""):
                return {word_img: None, word_cmp: None,
                        status: "Pick a word of the prompt to see where it attends."}
            if run is None or not run.steps:
                raise ValueError("generate an image first")
            k = (None if when == "all" else
                 step_number("step", step_value, 1, len(run.word_attention or run.steps)))
            v = demo.word_view(run, word, k, layer)
            return {word_img: v.image, word_cmp: v.compare, word_text: v.text}

        @shown
        def on_compare(pair, run, step_value, layer_a, layer_b, model):
            """A | B | B - A at one step: A the kept run, B its edit or the current run."""
            if pair is None:
                raise ValueError("keep a run as A first (or compare a run with its edit)")
            a, b = pair
            v = models.get(model).compare(a, b if b is not None else run, step_value, layer_a,
                                          layer_b)
            return {cmp_img: v.image, cmp_text: v.text, status: "Compared A and B."}

        def on_keep(run, with_edit, step_value):
            """Keep the current run as A (and its edit as B when `with_edit`)."""
            if run is None or not run.steps:
                raise ValueError("generate an image first")
            if with_edit and (run.edit is None or run.edit.run is None):
                raise ValueError("this run has no edit yet: apply one first")
            pair = (run, run.edit.run if with_edit else None)
            n = len(run.steps)
            k = min(max(_int_or(step_value, n), 1), n)
            return {pair_state: pair, cmp_step: gr.update(maximum=_slider_max(n), value=k)}

        @shown
        def on_keep_and_compare(run, with_edit, step_value, layer_a, layer_b, model):
            out = on_keep(run, with_edit, step_value)
            pair, k = out[pair_state], out[cmp_step]["value"]
            out.update(on_compare(pair, run, k, layer_a, layer_b, model))
            return out

        @shown
        def on_export(run, layer, model):
            demo = models.get(model)
            paths = demo.export(run, exports.new(), layer)
            return {files: [str(p) for p in paths], status: f"Exported {len(paths)} files."}

        def on_method(method, run):
            """The chosen edit method's own strength and step range (within the run's)."""
            d = defaults_of(method) or method_defaults
            lo, hi = d.steps_within(run.num_inference_steps if run is not None else None)
            return {strength: gr.update(value=d.strength), first: gr.update(value=lo + 1),
                    last: gr.update(value=hi + 1)}

        def on_load_model(name, current):
            """Switch this session's model; on failure stay on the current one and say why."""
            try:
                demo = models.get(model_key(name))
            except (ModelUnavailableError, ValueError) as err:
                gr.Warning(str(err))
                text = (f"**Could not load that model.** {err}\n\n"
                        f"Still on **{models.get(current).name}**.")
                return {model_state: current, model: gr.update(value=current), model_line: text,
                        status: text}
            words = demo.vocabulary()
            return {model_state: model_key(name), run_state: None,
                    model: gr.update(value=model_key(name)), model_line: _model_line(demo),
                    layer: gr.update(choices=demo.layer_choices(), value="best"),
                    layer_a: gr.update(choices=demo.layer_choices(), value="best"),
                    layer_b: gr.update(choices=demo.layer_choices(), value="best"),
                    pair_state: None,
                    vocabulary: ", ".join(words) if words else "Open vocabulary (CLIP tokenizer).",
                    heat_img: demo.heatmap(),
                    move_x: gr.update(minimum=-demo.max_move, maximum=demo.max_move, value=0,
                                      label=_move_label("x", demo)),
                    move_y: gr.update(minimum=-demo.max_move, maximum=demo.max_move, value=0,
                                      label=_move_label("y", demo)),
                    guidance: gr.update(value=demo.default_guidance),
                    method: gr.update(value=demo.default_method),
                    **on_method(demo.default_method, None), status: _model_line(demo)}

        # on a ZeroGPU Space the model-running handlers hold a GPU while they run
        gpu_generate = on_gpu(model_job(on_generate), 120)
        gpu_intervene = on_gpu(model_job(on_intervene), 120)
        gpu_probe_image = on_gpu(model_job(on_probe_image), 60)
        # model runs take turns; each visitor has at most one queued or running, and a click
        # while this page's own run is pending is ignored
        model_jobs = dict(concurrency_id="model", concurrency_limit=1, trigger_mode="once")
        gen_event = generate_btn.click(
            gpu_generate,
            [prompt, seed, steps, guidance, layer, opacity, first, last, negative, sampler,
             word_on, model_state],
            [run_state, x0_img, depth_img, sal_img, step, film, emergence_img, first, last,
             canvas, word, word_img, word_cmp, word_text, readout, status], api_name="generate",
            validator=before_generate, **model_jobs)
        dice_btn.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_name="random_seed")
        view_inputs = [run_state, step, layer, opacity, model_state]
        step.input(on_scrub, view_inputs, [x0_img, depth_img, sal_img, readout, status],
                   api_name="scrub",
                   show_progress="hidden")
        opacity.input(on_scrub, view_inputs, [x0_img, depth_img, sal_img, readout, status],
                      api_name="set_opacity", api_visibility="undocumented",
                      show_progress="hidden")
        probe_btn.click(gpu_probe_image, [upload, render_seed, probe_prompt, layer, model_state],
                        [probe_tiles, probe_table, status], api_name="probe_image",
                        validator=before_probe_image, **model_jobs)
        play_btn.click(on_play, [run_state, play_state], [player, play_state, play_btn],
                       api_visibility="undocumented", show_progress="hidden")
        player.tick(on_tick, view_inputs,
                    [x0_img, depth_img, sal_img, readout, step, film, status, player],
                    api_visibility="undocumented", show_progress="hidden")
        for shown_img in (x0_img, depth_img, sal_img):
            shown_img.select(on_pixel, [run_state, layer, model_state], [pixel_img, status],
                             api_visibility="undocumented", show_progress="hidden")
        film.select(on_tile, [run_state, layer, opacity, model_state],
                    [x0_img, depth_img, sal_img, readout, step, film, status],
                    api_visibility="undocumented",
                    show_progress="hidden")
        layer.input(on_layer, view_inputs,
                    [x0_img, depth_img, sal_img, readout, film, emergence_img, status],
                    api_name="switch_layer")
        edit_inputs = [run_state, move_x, move_y, scale, depth_push, strength, first, last, method,
                       drawn, canvas, shift_x, shift_y, model_state]
        edit_outputs = [compare, target_img, achieved_img, score, status]
        edit_events = [apply_btn.click(gpu_intervene, edit_inputs, edit_outputs,
                                       api_name="intervene", validator=before_intervene,
                                       **model_jobs)]
        sliders = (("move_x", move_x), ("move_y", move_y), ("scale", scale),
                   ("depth_push", depth_push), ("shift_x", shift_x), ("shift_y", shift_y))
        plan_inputs = [move_x, move_y, scale, depth_push, drawn, shift_x, shift_y, method]
        for name, slider in sliders:
            edit_events.append(slider.release(
                gpu_intervene, edit_inputs, edit_outputs, api_name=f"intervene_on_{name}",
                api_visibility="undocumented", validator=before_intervene, **model_jobs))
            slider.change(plan_text, plan_inputs, plan, api_visibility="private",
                          show_progress="hidden")
        for control in (drawn, method):
            control.change(plan_text, plan_inputs, plan, api_visibility="private",
                           show_progress="hidden")
        stop_btn.click(on_stop, run_state, [status, step, film, emergence_img], api_name="stop",
                       cancels=[gen_event, *edit_events])
        method.input(on_method, [method, run_state], [strength, first, last],
                     api_name="method_defaults", api_visibility="undocumented")
        step.release(on_mark, [run_state, step, layer, model_state],
                     [film, emergence_img, status], api_visibility="undocumented",
                     show_progress="hidden")
        word_inputs = [run_state, word, word_steps, step, layer, model_state]
        word_outputs = [word_img, word_cmp, word_text, status]
        word.input(on_word, word_inputs, word_outputs, api_name="word_map",
                   show_progress="hidden")
        for trigger in (word_steps.input, step.release, layer.input):
            trigger(on_word, word_inputs, word_outputs, api_visibility="undocumented",
                    show_progress="hidden")
        cmp_outputs = [cmp_img, cmp_text, status]
        cmp_inputs = [pair_state, run_state, cmp_step, layer_a, layer_b, model_state]
        for button, with_edit in ((keep_btn, False), (edit_cmp_btn, True)):
            button.click(on_keep_and_compare,
                         [run_state, gr.State(with_edit), cmp_step, layer_a, layer_b,
                          model_state], [pair_state, cmp_step, *cmp_outputs],
                         api_name="compare_edit" if with_edit else "keep_as_a")
        cmp_step.input(on_compare, cmp_inputs, cmp_outputs, api_name="compare",
                       show_progress="hidden")
        for trigger in (layer_a.input, layer_b.input):
            trigger(on_compare, cmp_inputs, cmp_outputs, api_visibility="undocumented",
                    show_progress="hidden")
        export_btn.click(on_export, [run_state, layer, model_state], [files, status],
                         api_name="export")
        def on_unload(request: gr.Request):
            """A closed tab's cached activations go now, not when gradio's state expires."""
            RUN_BUDGET.drop_session(request.session_hash)

        app.unload(on_unload)
        load_btn.click(on_load_model, [model, model_state],
                       [model_state, run_state, model, model_line, layer, layer_a, layer_b,
                        pair_state, vocabulary, heat_img,
                        move_x, move_y, guidance, method, strength, first, last, status],
                       api_name="load_model", concurrency_id="load", concurrency_limit=1)
    return app


def brush_layer(painted):
    """The brush layer of the paint canvas's value ({"background", "layers", "composite"}), or
    None when nothing was painted; the library checks what it holds."""
    if isinstance(painted, dict):
        layers = painted.get("layers") or []
        return layers[0] if layers else None
    return painted


def _int_or(value, default: int) -> int:
    """A slider's current value as an int, or `default` when it is not a number."""
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return default


def launch(deployment: Deployment) -> None:
    try:
        models = ModelChoice(allow_any=deployment.allow_any_model,
                             max_steps=deployment.max_steps)
    except Exception as err:  # the app cannot start without its model: one line, no traceback
        raise SystemExit(
            f"scene-probe: the embedded model in {shown_path(EMBEDDED_MODEL)} cannot be loaded "
            f"({type(err).__name__}: {str(err)[:200]}). Restore it (git checkout "
            "weights/tiny-scenes) or train it (scene-probe train-model).") from None
    build_app(models).queue(default_concurrency_limit=2, max_size=deployment.max_queue).launch(
        server_name=deployment.server_name, max_file_size=MAX_UPLOAD)


if __name__ == "__main__":
    launch(Deployment.from_env())
