"""scene-probe: watch a latent diffusion model build a 3D scene, step by step, and reach into it.

    >>> import probe_core as pc
    >>> pipe, preset = pc.load_model("tiny-scenes")              # or an SD hub id / folder
    >>> probes = pc.ProbeSet.load(pc.settings.EMBEDDED_PROBES)
    >>> for state in pc.denoise(pipe, "a large red sphere on a gray plain floor",
    ...                         num_inference_steps=15, guidance_scale=4.0,
    ...                         capture_layers=pc.self_attention_layers(pipe.unet)):
    ...     maps = probes.read(state.index, state.activations, (16, 16), 64)
    >>> run = pc.intervene(pipe, probes, prompt, 0, pc.Edit("saliency", target), 15, 4.0)

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
    "Edit": "edits.methods", "intervene": "edits.methods", "run_generation": "edits.methods",
    "SceneLabeler": "world.labeler", "render_scene": "world.scenes",
    "sample_scene": "world.scenes",
    "ProbeDemo": "serve.facade",
}
__all__ = ["settings", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'probe_core' has no attribute {name!r}")
