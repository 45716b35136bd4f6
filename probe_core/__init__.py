"""scene-probe: watch a latent diffusion model build a 3D scene, step by step, and reach into it.

    >>> import probe_core as pc
    >>> pipe, preset = pc.load_model("tiny-scenes")              # or an SD hub id / folder
    >>> probes = pc.ProbeSet.load(pc.settings.EMBEDDED_PROBES)
    >>> for state in pc.denoise(pipe, "a large red sphere on a gray plain floor",
    ...                         num_inference_steps=15, guidance_scale=4.0,
    ...                         capture_layers=pc.self_attention_layers(pipe.unet)):
    ...     maps = probes.read(state.index, state.activations, (16, 16), 64)
    >>> scene = pc.SceneLabels.label(labeler, prompt, image)      # the image to edit
    >>> edit_plan = pc.plan(pc.EditRequest(move_x=16), pc.METHOD_DEFAULTS["guided"], scene)
    >>> run = pc.intervene(pipe, probes, edit_plan.edit, pc.Generation(prompt, seed=0))
    >>> pc.outcome(scene, run.image, edit_plan).scores              # the one scorer

The parts, bottom to top: `settings`, `metrics`, `viz` and `models` (shared); `world` (the
embedded model's scenes) and `probing` (denoise, hooks, probes, training, evaluation); `edits`;
`sd` (Stable Diffusion adapters); `serve` (the app's facade) and `cli`.
"""

from importlib import import_module

from . import settings

# name -> module: imported on first use, so `import probe_core` stays cheap
_PUBLIC = {
    "load_model": "models", "ModelUnavailableError": "models",
    "denoise": "probing.denoise", "decode_latents": "probing.denoise",
    "StepState": "probing.denoise",
    "capture": "probing.hooks", "edit": "probing.hooks",
    "self_attention_layers": "probing.hooks",
    "ProbeSet": "probing.probes", "ProbeSettings": "probing.probes",
    "ProbeMismatchError": "probing.probes",
    "EditRequest": "edits.request", "EditSettings": "edits.edit_settings",
    "METHOD_DEFAULTS": "edits.edit_settings", "SceneLabels": "edits.scene",
    "plan": "edits.plan", "outcome": "edits.outcome", "Generation": "probing.generation",
    "intervene": "edits.run", "run_generation": "edits.run",
    "SceneLabeler": "world.labeler", "render_scene": "world.scenes",
    "sample_scene": "world.scenes",
    "ProbeDemo": "serve.facade",
}
__all__ = ["settings", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'probe_core' has no attribute {name!r}")
