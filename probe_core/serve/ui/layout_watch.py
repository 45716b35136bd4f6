"""The page's header and its Watch tab: prompt, Generate, the live step views, scrubbing,
playback, the filmstrip and the emergence curves."""

from __future__ import annotations

import gradio as gr

from ...models import EMBEDDED
from ...probing.schedulers import DEFAULT as DEFAULT_SCHEDULER
from ...probing.schedulers import SCHEDULERS
from ...settings import DEFAULT_STEPS, MAX_GUIDANCE, MAX_SEED
from ..model_choice import CHOICES
from .raw_inputs import Dropdown, Number, Slider, Textbox
from .texts import GLOSSARY, HOVER_JS, PITCH, idle_progress, legends_html

IMAGE_SIZE = 256  # pixels a side of every image view


class Page:
    """The page's components by name (attributes), set by the layout functions."""


def model_line(demo, sampler: str = DEFAULT_SCHEDULER) -> str:
    """The model and sampler in use, one line."""
    own = type(demo.pipe.scheduler).__name__.replace("Scheduler", "")
    used = own if sampler in (None, DEFAULT_SCHEDULER) else sampler
    text = f"Model: **{demo.name}** · sampler: **{used}**"
    if sampler in (None, DEFAULT_SCHEDULER):
        text += " (the model's own)"
    if demo.notice:
        text += f" · {demo.notice}"
    return text


def header(page: Page, models, home) -> None:
    with gr.Row(equal_height=True):
        gr.Markdown(PITCH, elem_classes="sp-pitch")
    page.model_line = gr.Markdown(model_line(home), elem_id="model-line",
                                  elem_classes="sp-model-line")


def _settings(page: Page, models, home) -> None:
    """Everything below Generate: seed and steps, then the rest folded."""
    with gr.Row(equal_height=True):
        page.seed = Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED,
                           scale=3, min_width=100,
                           info="the starting noise: the same seed gives the same image")
        page.dice = gr.Button("Random seed", scale=2, size="sm", min_width=80)
    page.steps = Slider(1, home.max_steps, value=DEFAULT_STEPS, step=1, label="Steps", elem_id="steps",
                        info=GLOSSARY["denoising step"])
    with gr.Accordion("More settings: guidance, layer, sampler, model", open=False):
        page.guidance = Slider(0, MAX_GUIDANCE, value=home.default_guidance, step=0.5,
                               label="Guidance scale", info=GLOSSARY["guidance scale"])
        page.layer = Dropdown(home.layer_choices(), value="best", label="Probed layer",
                              info=GLOSSARY["layer"], allow_custom_value=True)
        page.opacity = Slider(0, 1, value=0.6, step=0.05, label="Saliency overlay opacity",
                              info="how strongly the magenta object mask covers the image")
        page.negative_prompt = Textbox(label="Negative prompt", value="", lines=1,
                                       info="replaces the empty prompt that guidance steers "
                                            "away from", elem_id="negative-prompt")
        page.scheduler = Dropdown([("the model's own", DEFAULT_SCHEDULER)]
                                  + [(k, k) for k in SCHEDULERS], value=DEFAULT_SCHEDULER,
                                  label="Sampler (scheduler)",
                                  info="probes are read at the probed timestep nearest each "
                                       "step's; the status line says when they differ")
        page.word_attention = gr.Checkbox(True, label="Keep per-word attention maps "
                                                      "(a few % slower)", elem_id="word-on")
        page.model_pick = Dropdown(
            [(home.name, EMBEDDED)] + [(c, c) for c in CHOICES if c != EMBEDDED],
            value=EMBEDDED, allow_custom_value=models.allow_any, label="Model",
            info=("the embedded model, a hub id in the local cache (SD 1.x / 2.x, SDXL, SD3, "
                  "PixArt, FLUX), or a diffusers folder" if models.allow_any else
                  "the embedded model or a listed hub id this server has"),
            elem_id="model")
        page.load = gr.Button("Load model", size="sm")
    words = home.vocabulary()
    with gr.Accordion("Words this model knows", open=False):
        page.vocabulary = gr.Markdown(", ".join(words) if words
                                      else "Open vocabulary (CLIP tokenizer).")


def _views(page: Page, first) -> None:
    """The live step: status, progress, the three images with their legend, the step slider."""
    page.status = gr.Markdown(first.status, elem_id="status")
    page.progress = gr.HTML(idle_progress(), elem_id="progress")
    with gr.Row(elem_id="watch-views"):
        page.x0 = gr.Image(first.x0, label="Image: x0, the model's current guess",
                           height=IMAGE_SIZE, min_width=IMAGE_SIZE, elem_id="x0-image",
                           elem_classes="sp-pixelated")
        page.depth = gr.Image(first.depth, label="Depth probe: bright = near",
                              height=IMAGE_SIZE, min_width=IMAGE_SIZE, elem_id="depth-image",
                              elem_classes="sp-pixelated")
        page.saliency = gr.Image(first.saliency, label="Saliency probe: magenta = object",
                                 height=IMAGE_SIZE, min_width=IMAGE_SIZE,
                                 elem_id="saliency-image", elem_classes="sp-pixelated",
)
    with gr.Row(equal_height=True):
        gr.HTML(legends_html(), elem_id="legends")
        page.readout = gr.HTML(first.readout, js_on_load=HOVER_JS, elem_id="depth-readout")
    with gr.Row(equal_height=True):
        n = first.run.num_inference_steps
        page.step_value = Slider(1, max(n, 2), value=n, step=1,
                                 label="Step (drag to scrub through the run)", scale=6,
                                 elem_id="step")
        page.play = gr.Button("Play steps", size="sm", scale=1, elem_id="play")
    page.player = gr.Timer(0.5, active=False)


def watch_tab(page: Page, models, home, first) -> None:
    """`first`: the example run's views, shown before anyone clicks."""
    with gr.Tab("Watch", id="watch"):
        # on a phone the settings go below the views (CSS order): Generate and the live
        # image both in the first screen
        with gr.Row(elem_id="watch-main"):
            with gr.Column(scale=1, min_width=300, elem_id="watch-controls"):
                page.prompt = Textbox(label="Prompt", value=first.run.prompt, lines=2,
                                      elem_id="prompt")
                with gr.Row(elem_id="watch-buttons"):
                    page.generate = gr.Button("Generate", variant="primary", elem_id="generate",
                                              scale=2, min_width=100)
                    page.stop = gr.Button("Stop", variant="stop", elem_id="stop", scale=1,
                                          min_width=80)
                with gr.Column(elem_id="watch-settings"):
                    _settings(page, models, home)
                    gr.Examples(home.example_prompts(6), inputs=[page.prompt],
                                label="Example prompts")
            with gr.Column(scale=3, elem_id="watch-right"):
                _views(page, first)
        page.film = gr.Gallery(first.film, label="Every step: image | depth / saliency | depth "
                                                 "with the object's outline (click a tile)",
                               columns=8, height="auto", object_fit="contain",
                               elem_id="filmstrip", allow_preview=False)
        page.emergence = gr.LinePlot(first.emergence, x="step", y="score", color="curve",
                                     title="When does the scene appear? Agreement of each "
                                           "step with the final reading (1 = the same)",
                                     y_lim=[0, 1], x_title="denoising step",
                                     y_title="agreement (Dice or Pearson r)", height=300,
                                     elem_id="emergence")
        with gr.Accordion("Export this run: GIF, PNGs and JSON", open=False):
            page.export = gr.Button("Export")
            page.files = gr.File(label="Files", file_count="multiple")
