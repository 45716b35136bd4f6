"""scene-probe: the one-page Gradio app. UI wiring only; the work is in probe_core.serve.

    python app.py            # the embedded tiny-scenes model, offline, on CPU

Each session picks its model (the embedded one, a Stable Diffusion hub id in the local cache, or
a diffusers folder); one that cannot be loaded leaves the session on the model it had.
Endpoints (gradio_client): /generate (streams), /scrub, /intervene (streams), /export,
/load_model.
"""

import probe_core.offline  # noqa: F401  (before gradio imports the hub client)

import functools
import inspect
import random
import tempfile

import gradio as gr

from probe_core.edits.methods import DEFAULT_METHOD, METHOD_DEFAULTS
from probe_core.models import EMBEDDED, ModelUnavailableError
from probe_core.serve.deployment import Deployment
from probe_core.serve.facade import EditView, ProbeDemo
from probe_core.serve.model_choice import CHOICES, ModelChoice, model_key
from probe_core.serve.zerogpu import on_gpu
from probe_core.settings import (DEFAULT_STEPS, MAX_GUIDANCE, MAX_SEED, MAX_STEPS,
                                 SESSION_TTL_S)
from probe_core.viz import depth_legend

INTRO = """# scene-probe
Watch a latent diffusion model build a 3D scene, step by step. Linear probes read a **depth map**
and the **salient object** out of the UNet's self-attention activations at every denoising step
(Chen, Viégas & Wattenberg, 2023): see how early the scene's layout can be read, and compare it
with what the decoded image shows. Then steer the scene by editing what the probes read."""


def user_errors(fn):
    """Show a handler's expected failures (bad input, a model that cannot load) as a message on
    the page instead of a traceback; generators (streaming handlers) included."""
    expected = (ValueError, ModelUnavailableError)
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args):
            try:
                yield from fn(*args)
            except expected as err:
                raise gr.Error(str(err)) from None
        return stream

    @functools.wraps(fn)
    def call(*args):
        try:
            return fn(*args)
        except expected as err:
            raise gr.Error(str(err)) from None
    return call


def _slider_max(run) -> int:
    """A step slider's maximum: the run's step count (a slider needs maximum > minimum = 1)."""
    return max(run.num_inference_steps, 2)


def _model_line(demo: ProbeDemo) -> str:
    return f"Model: **{demo.name}**" + (f"\n\n> {demo.notice}" if demo.notice else "")


def build_app(models: ModelChoice | ProbeDemo) -> gr.Blocks:
    if isinstance(models, ProbeDemo):
        models = ModelChoice(embedded=models)
    home = models.embedded
    method_defaults = METHOD_DEFAULTS[DEFAULT_METHOD]

    def on_method(method):
        """The chosen edit method's own strength and step range."""
        d = METHOD_DEFAULTS.get(method, method_defaults)
        return (gr.update(value=d.strength), gr.update(value=min(d.steps) + 1),
                gr.update(value=max(d.steps) + 1))

    @user_errors
    def on_generate(prompt, seed, steps, guidance, layer, opacity, model):
        demo = models.get(model)
        for run in demo.stream(prompt, seed, steps, guidance):
            k = len(run.steps) - 1
            v = demo.view(run, k, layer, opacity)
            status = f"{v.caption} · {run.seconds:.2f} s"
            if not run.done:
                yield (run, v.x0, v.depth, v.saliency,
                       gr.update(maximum=_slider_max(run), value=k + 1),
                       gr.update(), gr.update(), status, gr.update(), gr.update())
        n, top = run.num_inference_steps, _slider_max(run)
        yield (run, v.x0, v.depth, v.saliency, gr.update(maximum=top, value=n),
               demo.filmstrip(run, layer), demo.emergence_plot(run, layer),
               status + " · done: drag the step slider to scrub",
               gr.update(maximum=top), gr.update(maximum=top))

    @user_errors
    def on_scrub(run, step, layer, opacity, model):
        demo = models.get(model)
        v = demo.view(run, int(step) - 1 if step is not None else -1, layer, opacity)
        return v.x0, v.depth, v.saliency, v.caption

    @user_errors
    def on_layer(run, step, layer, opacity, model):
        x0, depth, sal, caption = on_scrub(run, step, layer, opacity, model)
        demo = models.get(model)
        return x0, depth, sal, caption, demo.filmstrip(run, layer), demo.emergence_plot(run, layer)

    @user_errors
    def on_intervene(run, move_x, move_y, scale, depth_push, strength, first, last, method, model):
        demo = models.get(model)
        for update in demo.intervene(run, move_x, move_y, scale, depth_push, strength,
                                     int(first) - 1, int(last) - 1, method):
            if isinstance(update, EditView):
                yield (update.before, update.after), update.target, update.achieved, update.score
            else:
                yield (gr.update(), gr.update(), gr.update(),
                       f"re-running from the first edited step: step {update.step + 1}")

    @user_errors
    def on_export(run, layer, model):
        demo = models.get(model)
        return [str(p) for p in demo.export(run, tempfile.mkdtemp(prefix="scene-probe-"), layer)]

    with gr.Blocks(title="scene-probe") as app:
        run_state = gr.State(None, time_to_live=SESSION_TTL_S)
        model_state = gr.State(EMBEDDED)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                with gr.Group():
                    model = gr.Dropdown(
                        [(home.name, EMBEDDED)] + [(c, c) for c in CHOICES if c != EMBEDDED],
                        value=EMBEDDED, allow_custom_value=True, label="Model",
                        info="the embedded model, a Stable Diffusion id in the local cache, "
                             "or a diffusers folder", elem_id="model")
                    load_btn = gr.Button("Load model", size="sm")
                    model_line = gr.Markdown(_model_line(home))
                prompt = gr.Textbox(label="Prompt", value=home.example_prompts(1)[0], lines=2)
                gr.Examples(home.example_prompts(6), inputs=[prompt], label="Example prompts")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=0, precision=0, minimum=0,
                                     maximum=MAX_SEED, scale=3)
                    dice_btn = gr.Button("🎲 random seed", scale=1, size="sm")
                steps = gr.Slider(1, MAX_STEPS, value=DEFAULT_STEPS, step=1, label="Steps")
                guidance = gr.Slider(0, MAX_GUIDANCE, value=home.default_guidance, step=0.5,
                                     label="Guidance scale")
                layer = gr.Dropdown(home.layer_choices(), value="best", label="Probed layer")
                opacity = gr.Slider(0, 1, value=0.6, step=0.05, label="Overlay opacity")
                with gr.Row():
                    generate_btn = gr.Button("Generate", variant="primary")
                    stop_btn = gr.Button("Stop", variant="stop")
                with gr.Accordion("Words this model knows", open=False):
                    vocabulary = gr.Markdown(", ".join(home.vocabulary()))
            with gr.Column(scale=3):
                status = gr.Markdown("Press **Generate** to watch the scene emerge.")
                with gr.Row():
                    x0_img = gr.Image(label="Image: decoded x0 prediction", height=256,
                                      elem_id="x0-image")
                    depth_img = gr.Image(label="Depth probe (bright = near)", height=256,
                                         elem_id="depth-image")
                    sal_img = gr.Image(label="Saliency probe (magenta = object)", height=256,
                                       elem_id="saliency-image")
                gr.Image(depth_legend(), show_label=False, height=44, container=False,
                         buttons=[], elem_id="depth-legend")
                step = gr.Slider(1, DEFAULT_STEPS, value=DEFAULT_STEPS, step=1,
                                 label="Step (scrub after a run)")
                film = gr.Gallery(label="Every step: image | depth / saliency | depth with "
                                        "object outline", columns=8,
                                  rows=2, height=250, object_fit="contain")
                with gr.Row():
                    emergence_img = gr.Image(label="Emergence in this run", height=290)
                    heat_img = gr.Image(home.heatmap(), label="Probe scores on held-out images",
                                        height=290)
        with gr.Accordion("Steer the scene: edit what the probes read, and re-run", open=True):
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    move_x = gr.Slider(-home.max_move, home.max_move, value=0, step=1,
                                       label="Move object x (px, + right)", elem_id="move-x")
                    move_y = gr.Slider(-home.max_move, home.max_move, value=0, step=1,
                                       label="Move object y (px, + down)")
                    scale = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Scale object")
                    depth_push = gr.Slider(-2.0, 2.0, value=0.0, step=0.1,
                                           label="Push depth (+ nearer; used when not moving)")
                    method = gr.Dropdown(["guided", "activation"], value=home.default_method,
                                         label="Edit method")
                    strength = gr.Slider(0, 1, value=method_defaults.strength, step=0.01,
                                         label="Strength")
                    with gr.Row():
                        first = gr.Slider(1, MAX_STEPS, value=min(method_defaults.steps) + 1,
                                          step=1, label="First edited step")
                        last = gr.Slider(1, MAX_STEPS, value=max(method_defaults.steps) + 1,
                                         step=1, label="Last edited step")
                    apply_btn = gr.Button("Apply edit", variant="primary")
                with gr.Column(scale=3):
                    with gr.Row():
                        compare = gr.ImageSlider(label="Before | after (drag)", max_height=256)
                        target_img = gr.Image(label="Target", height=256)
                        achieved_img = gr.Image(label="Achieved (labelled edited image)",
                                                height=256)
                    score = gr.Markdown("Generate an image, then move a slider.")
        with gr.Accordion("Export this run", open=False):
            export_btn = gr.Button("Export GIF, PNGs and JSON")
            files = gr.File(label="Files", file_count="multiple")

        def on_load_model(name, current):
            """Switch this session's model; on failure stay on the current one and say why."""
            try:
                demo = models.get(model_key(name))
            except (ModelUnavailableError, ValueError) as err:
                gr.Warning(str(err))
                return {model_state: current, model: gr.update(value=current),
                        model_line: f"**Could not load {name!r}.** {err}\n\n"
                                    f"Still on **{models.get(current).name}**."}
            words = demo.vocabulary()
            strength_update, first_update, last_update = on_method(demo.default_method)
            return {model_state: model_key(name), run_state: None,
                    model: gr.update(value=model_key(name)), model_line: _model_line(demo),
                    layer: gr.update(choices=demo.layer_choices(), value="best"),
                    vocabulary: ", ".join(words) if words else "Open vocabulary (CLIP tokenizer).",
                    heat_img: demo.heatmap(),
                    move_x: gr.update(minimum=-demo.max_move, maximum=demo.max_move, value=0),
                    move_y: gr.update(minimum=-demo.max_move, maximum=demo.max_move, value=0),
                    guidance: gr.update(value=demo.default_guidance),
                    method: gr.update(value=demo.default_method),
                    strength: strength_update, first: first_update, last: last_update}

        # on a ZeroGPU Space the model-running handlers hold a GPU while they run
        gpu_generate, gpu_intervene = on_gpu(on_generate, 120), on_gpu(on_intervene, 120)
        gen_event = generate_btn.click(
            gpu_generate, [prompt, seed, steps, guidance, layer, opacity, model_state],
            [run_state, x0_img, depth_img, sal_img, step, film, emergence_img, status, first,
             last], api_name="generate", concurrency_id="model", concurrency_limit=1)
        stop_btn.click(None, None, None, cancels=[gen_event])
        dice_btn.click(lambda: random.randint(0, 2**31 - 1), None, seed, api_name="random_seed")
        step.input(on_scrub, [run_state, step, layer, opacity, model_state],
                   [x0_img, depth_img, sal_img, status], api_name="scrub",
                   show_progress="hidden")
        opacity.input(on_scrub, [run_state, step, layer, opacity, model_state],
                      [x0_img, depth_img, sal_img, status], api_name="set_opacity",
                      api_visibility="undocumented", show_progress="hidden")
        layer.input(on_layer, [run_state, step, layer, opacity, model_state],
                    [x0_img, depth_img, sal_img, status, film, emergence_img],
                    api_name="switch_layer")
        edit_inputs = [run_state, move_x, move_y, scale, depth_push, strength, first, last, method,
                       model_state]
        edit_outputs = [compare, target_img, achieved_img, score]
        apply_btn.click(gpu_intervene, edit_inputs, edit_outputs, api_name="intervene",
                        concurrency_id="model", concurrency_limit=1)
        for name, slider in (("move_x", move_x), ("move_y", move_y), ("scale", scale),
                             ("depth_push", depth_push)):
            slider.release(gpu_intervene, edit_inputs, edit_outputs,
                           api_name=f"intervene_on_{name}", api_visibility="undocumented",
                           concurrency_id="model", concurrency_limit=1)
        method.input(on_method, method, [strength, first, last], api_name="method_defaults",
                     api_visibility="undocumented")
        export_btn.click(on_export, [run_state, layer, model_state], files, api_name="export")
        load_btn.click(on_load_model, [model, model_state],
                    [model_state, run_state, model, model_line, layer, vocabulary, heat_img,
                     move_x, move_y, guidance, method, strength, first, last],
                    api_name="load_model",
                    concurrency_id="load", concurrency_limit=1)
    return app


if __name__ == "__main__":
    deployment = Deployment.from_env()
    build_app(ModelChoice(allow_any=deployment.allow_any_model)).queue(
        default_concurrency_limit=2, max_size=deployment.max_queue).launch(
        server_name=deployment.server_name)
