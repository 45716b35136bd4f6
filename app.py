"""scene-probe: the one-page Gradio app. UI wiring only; the work is in probe_core.demo.

Run `python app.py` and open the printed address. For now the page generates an image from a
caption with the embedded tiny-scenes model; the probes, scrubbing and interventions follow.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402

from probe_core.demo import MAX_GUIDANCE, MAX_SEED, MAX_STEPS, ProbeDemo  # noqa: E402
from probe_core.tiny_ldm import DEFAULT_GUIDANCE  # noqa: E402


def build_app(demo: ProbeDemo) -> gr.Blocks:
    def on_generate(prompt, seed, steps, guidance):
        try:
            return demo.generate(prompt, seed, steps, guidance)
        except ValueError as err:
            raise gr.Error(str(err)) from None

    with gr.Blocks(title="scene-probe") as app:
        gr.Markdown("# scene-probe\nWatch a latent diffusion model build a 3D scene. "
                    f"Model: **{demo.name}**.")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", value=demo.example_prompts(1)[0])
                seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=MAX_SEED)
                steps = gr.Slider(1, MAX_STEPS, value=25, step=1, label="Steps")
                guidance = gr.Slider(0, MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.5,
                                     label="Guidance scale")
                button = gr.Button("Generate", variant="primary")
                gr.Examples(demo.example_prompts(6), inputs=[prompt])
                gr.Markdown("**Words this model knows:** " + ", ".join(demo.vocabulary()))
            image = gr.Image(label="Generated image", type="numpy", height=320)
        button.click(on_generate, [prompt, seed, steps, guidance], image, api_name="generate")
    return app


if __name__ == "__main__":
    build_app(ProbeDemo.embedded()).queue(default_concurrency_limit=2, max_size=32).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
