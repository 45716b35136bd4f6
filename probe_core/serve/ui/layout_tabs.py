"""The page's other tabs: Steer, Look closer, Your image, Compare, About."""

from __future__ import annotations

import gradio as gr

from ...edits.edit_settings import DEFAULT_METHOD, METHOD_DEFAULTS
from ...settings import DEFAULT_STEPS, DISPLAY_SIZE
from ..steering import plan_text
from .layout_watch import IMAGE_SIZE, Page
from .raw_inputs import Dropdown, Number, Radio, Slider, Textbox
from .texts import ABOUT, GLOSSARY, glossary_markdown, idle_progress, legends_html

METHOD_INFO = ("guided: a move first carries the object's latent to its new place, then the "
               "probes' gradient steers the latent (a farther push keeps the objects' "
               "outlines); its two halves, to see what each does: the probes' gradient "
               "without the carry, and the carry without the probes (it moves, it cannot "
               "push); activation: the paper's edit of the probed activations")
METHOD_CHOICES = [("guided (carry, then the probes' gradient)", "guided"),
                  ("probes' gradient only (no carry)", "guidance_only"),
                  ("carry only (no probes: a control)", "carry_only"),
                  ("activation (the paper's)", "activation")]


def move_label(axis: str, demo) -> str:
    """A move slider's label, with its unit: pixels of this model's image."""
    way = "+ right" if axis == "x" else "+ down"
    return f"Move object {axis} (px of the {demo.image_size}-px image, {way})"


def _steer_controls(page: Page, home) -> None:
    defaults = METHOD_DEFAULTS[DEFAULT_METHOD]
    page.move_x = Slider(-home.max_move, home.max_move, value=0, step=1,
                         label=move_label("x", home), elem_id="move-x")
    page.move_y = Slider(-home.max_move, home.max_move, value=0, step=1,
                         label=move_label("y", home), elem_id="move-y")
    page.scale = Slider(0.5, 2.0, value=1.0, step=0.05, label="Scale object",
                        info="the object's size about its centre: x2 is twice as wide and tall")
    page.depth_push = Slider(-2.0, 2.0, value=0.0, step=0.1, label="Push depth (+ nearer)",
                             info="in z-units: " + GLOSSARY["z-units"], elem_id="depth-push")
    page.plan = gr.Markdown(plan_text(0, 0, 1.0, 0.0), elem_id="edit-plan")
    page.apply = gr.Button("Apply edit", variant="primary", elem_id="apply")
    with gr.Accordion("Draw a target: paint, flip, swap near and far", open=False,
                      elem_id="draw-box"):
        page.drawn = Radio([("none", "none"), ("painted mask", "paint"),
                            ("flip object", "flip"), ("swap near and far", "swap")],
                           value="none", label="Drawn target (adds to the sliders)",
                           elem_id="drawn")
        with gr.Row():
            page.shift_x = Slider(-home.max_move, home.max_move, value=0, step=1,
                                  label="Shift depth map x (px)")
            page.shift_y = Slider(-home.max_move, home.max_move, value=0, step=1,
                                  label="Shift depth map y (px)")
        page.painted = gr.ImageEditor(
            label="Paint where the object should be (pick 'painted mask')", type="numpy",
            image_mode="RGBA", sources=(), transforms=(), layers=False, format="png",
            brush=gr.Brush(default_size=24, colors=["#ff00ff"], color_mode="fixed"),
            canvas_size=(DISPLAY_SIZE, DISPLAY_SIZE), fixed_canvas=True, height=380,
            min_width=330, elem_id="paint")
    with gr.Accordion("Edit method and strength", open=False):
        page.method = Dropdown(METHOD_CHOICES, value=home.default_method, label="Edit method",
                               info=METHOD_INFO)
        page.strength = Slider(0, 1, value=defaults.strength, step=0.01, label="Strength",
                               info="activation: the edit's step size; guided: how far each "
                                    "edited step moves the latent along the probes' gradient "
                                    "(0: the carry alone)")
        with gr.Row():
            page.first_value = Slider(1, DEFAULT_STEPS, value=min(defaults.steps) + 1, step=1,
                                      label="First edited step",
                                      info="the run is re-run from here")
            page.last_value = Slider(1, DEFAULT_STEPS, value=max(defaults.steps) + 1, step=1,
                                     label="Last edited step",
                                     info="later steps run unedited")


def steer_tab(page: Page, home, first) -> None:
    with gr.Tab("Steer", id="steer"):
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                _steer_controls(page, home)
            with gr.Column(scale=3):
                page.edit_status = gr.Markdown("Move a slider: the run is edited and re-run, "
                                               "and scored below.", elem_id="edit-status")
                page.edit_progress = gr.HTML(idle_progress(), elem_id="edit-progress")
                with gr.Row(elem_id="steer-views"):
                    page.original = gr.Image(first.image, label="Original (the current run)",
                                             height=IMAGE_SIZE, min_width=200,
                                             elem_classes="sp-pixelated", elem_id="original")
                    page.edited = gr.Image(None, label="Edited (re-run with the edit)",
                                           height=IMAGE_SIZE, min_width=200,
                                           elem_classes="sp-pixelated", elem_id="edited")
                    page.compare_slider = gr.ImageSlider(label="Before | after (drag)",
                                                         max_height=IMAGE_SIZE, min_width=200)
                page.score = gr.Markdown("Generate an image, then move a slider or draw a "
                                         "target.", elem_id="score")
                with gr.Row():
                    page.target = gr.Image(label="Target: what the edit asked the probes to read",
                                           height=IMAGE_SIZE, min_width=200,
                                           elem_classes="sp-pixelated")
                    page.achieved = gr.Image(label="Achieved: the labeler on the edited image",
                                             height=IMAGE_SIZE, min_width=200,
                                             elem_classes="sp-pixelated")
                gr.HTML(legends_html())


def look_tab(page: Page, home, first) -> None:
    with gr.Tab("Look closer", id="look"):
        page.look_status = gr.Markdown("Click a pixel of the image to follow it through the run "
                                       "and every layer.", elem_id="look-status")
        with gr.Row():
            page.pick = gr.Image(first.image, label="Click a pixel (the final image)",
                                 height=IMAGE_SIZE, min_width=IMAGE_SIZE, scale=1,
                                 elem_classes="sp-pixelated", elem_id="pick-image",
)
            page.pixel = gr.Image(label="That pixel at every step: depth (left axis) and "
                                        "P(object) (right axis, 0 to 1); every layer (heat "
                                        "maps)", height=300, scale=3, elem_id="pixel-inspector")
        with gr.Row(equal_height=True):
            page.word = Dropdown(first.words, value=None, label="Word of the prompt", scale=2,
                                 elem_id="word", allow_custom_value=True)
            page.when = Radio([("this step", "step"), ("all steps", "all")], value="step",
                              label="Attention at", scale=1)
        with gr.Row():
            page.word_image = gr.Image(label="Where the word attends (cross-attention)",
                                       height=290, scale=1, elem_id="word-image")
            page.word_compare = gr.Image(label="The saliency probe beside the word's attention",
                                         height=290, scale=3)
        page.word_text = gr.Markdown("Pick a word to see where it attends.", elem_id="word-text")
        page.heatmap = gr.Image(home.heatmap(), label="How well each layer's probes read the "
                                                      "scene at each step (held-out images)",
                                height=320)


def image_tab(page: Page) -> None:
    with gr.Tab("Your image", id="image"):
        page.probe_status = gr.Markdown("Upload an image (or pick a held-out render by seed) "
                                        "and the probes read it at every step.",
                                        elem_id="probe-status")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                page.upload = gr.Image(label="An image (resized to the model's size)",
                                       type="numpy", sources=["upload"], height=200,
                                       elem_id="probe-upload")
                page.render_seed = Number(label="...or a held-out render: its seed (exact depth "
                                                "and mask known)", value=None, precision=0,
                                          elem_id="render-seed")
                page.probe_prompt = Textbox(label="Text for the model (may be empty; a render's "
                                                  "caption when empty)", value="", lines=1)
                page.probe_image = gr.Button("Probe this image", variant="primary",
                                             elem_id="probe-image")
            with gr.Column(scale=3):
                page.probe_tiles = gr.Gallery(label="Per step: image | probe depth / probe "
                                                    "object | true or labelled depth",
                                              columns=8, rows=2, height=250,
                                              object_fit="contain", allow_preview=False)
                page.probe_table = gr.Markdown("")


def compare_tab(page: Page, home) -> None:
    with gr.Tab("Compare", id="compare-tab"):
        page.compare_status = gr.Markdown("Keep a run as A, then generate B (another seed, "
                                          "prompt or sampler) or pick other layers.",
                                          elem_id="compare-status")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                page.keep = gr.Button("Keep the current run as A", elem_id="keep-a")
                page.keep_edit = gr.Button("Compare the current run with its edit")
                page.compare_step = Slider(1, DEFAULT_STEPS, value=DEFAULT_STEPS, step=1,
                                           label="Step (of A; B at the same point of its "
                                                 "schedule)")
                page.layer_a = Dropdown(home.layer_choices(), value="best", label="Layer of A",
                                        allow_custom_value=True)
                page.layer_b = Dropdown(home.layer_choices(), value="best", label="Layer of B",
                                        allow_custom_value=True)
            with gr.Column(scale=3):
                page.compare_image = gr.Image(label="A | B | B - A", height=460,
                                              elem_id="compare")
                page.compare_text = gr.Markdown("")


def about_tab() -> None:
    with gr.Tab("About", id="about"):
        gr.Markdown(ABOUT)
        gr.Markdown(glossary_markdown(), elem_id="glossary")
