"""Running an edit: re-run a generation with an `Edit` applied, resuming from the cached
original run at the first edited step (the steps before it are not recomputed).

    >>> generation = Generation(prompt, seed=0, num_inference_steps=15, guidance_scale=4.0)
    >>> original = run_generation(pipe, generation)               # keeps its resume points
    >>> edited = intervene(pipe, probes, edit_plan.edit, generation, original)
    >>> edited.image                                              # (64, 64, 3) uint8
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ..families import denoiser_of, family_of
from ..probing.denoise import DenoiseHooks, ResumePoint, StepState, decode_latents, denoise
from ..probing.generation import Generation
from ..probing.hooks import resolve_layers
from ..probing.probes import ProbeSet
from ..probing.step_map import ProbeStepMap
from .methods import ActivationEdit, Edit, GuidedEdit, LatentShift


@dataclass
class EditRun:
    image: np.ndarray  # (H, W, 3) uint8
    steps: list[StepState]  # every step, the cached ones before the edit included
    probe_loss: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (before, after)
    probe_steps: dict[int, int] = field(default_factory=dict)  # edited step -> probe step used
    carried: tuple[int, int] | None = None  # guided: the latent pixels (dx, dy) a moved object's
    # latent was carried by; None when nothing was carried (no move, or one under half a pixel)


def run_generation(pipe, generation: Generation, layers: list[str] | None = None,
                   keep_resume: bool = True, decode_x0: bool = True) -> list[StepState]:
    """An unedited run that keeps everything an edit needs to resume from any step."""
    settings = generation.denoise_settings(capture_layers=layers if layers is not None else (),
                                           keep_resume=keep_resume, decode_x0=decode_x0)
    return list(denoise(pipe, generation.prompt, settings, generation.generator(),
                        scheduler=generation.sampler(pipe)))


def probe_step_map(pipe, probes: ProbeSet | None, num_inference_steps: int,
                   scheduler=None) -> dict[int, int]:
    """{run step: probe step}: the same index on the probe set's own schedule, else the probed
    step nearest in time (as the maps are read), so edits on a run of any length or sampler
    (`scheduler`, default the pipeline's) use the probes of the right noise level."""
    if probes is None:
        return {i: i for i in range(num_inference_steps)}
    return ProbeStepMap(pipe.scheduler, probes.settings.num_inference_steps, pipe).for_run(
        num_inference_steps, scheduler)


def resume_point(original: list[StepState], step: int) -> ResumePoint | None:
    """The cached state entering `step` (None for step 0: start from the seed)."""
    if step == 0:
        return None
    point = original[step - 1].resume_next
    if point is None:
        raise ValueError("the original run kept no resume points (keep_resume=True)")
    return point


def editor_for(pipe, probes: ProbeSet | None, edit: Edit, probe_steps: dict[int, int]):
    """(the method's editor, the `denoise` hooks that apply it)."""
    layers = resolve_layers(denoiser_of(pipe), edit.layers if edit.layers is not None else (
        probes.settings.layers if probes is not None and probes.settings.layers else None))
    if edit.method == "activation":
        family = family_of(pipe)
        latent_hw = family.latent_size(pipe, family.default_size(pipe))
        editor = ActivationEdit(edit, probes, latent_hw, probe_steps)
        return editor, DenoiseHooks(activation_edit=editor, edit_layers=layers)
    if edit.method == "guided":
        editor = GuidedEdit(edit, probes, pipe, layers, probe_steps)
    else:
        editor = LatentShift(edit, pipe.vae_scale_factor)
    return editor, DenoiseHooks(latent_edit=editor)


def intervene_stream(pipe, probes: ProbeSet | None, edit: Edit, generation: Generation,
                     original: list[StepState] | None = None, capture_layers=(),
                     decode_x0: bool = False, preview=None) -> Iterator[StepState | EditRun]:
    """Re-run `generation` with `edit` applied, yielding every newly computed StepState and,
    last, the EditRun. With `original` (a `run_generation` of the same generation), the steps
    before the first edited step are reused from it. `capture_layers` are recorded on the new
    steps; `preview` makes their x0 images when `decode_x0` (default: the VAE decode)."""
    scheduler = generation.sampler(pipe)
    probe_steps = probe_step_map(pipe, probes, generation.num_inference_steps, scheduler)
    edit.check(probes, generation.num_inference_steps, probe_steps)
    first = min(edit.steps)
    start = resume_point(original, first) if original is not None else None
    editor, hooks = editor_for(pipe, probes, edit, probe_steps)
    hooks.preview = preview
    new_steps = []
    settings = generation.denoise_settings(
        capture_layers=capture_layers, decode_x0=decode_x0,
        site=probes.settings.site if probes is not None else "attn1")
    for state in denoise(pipe, generation.prompt, settings, generation.generator(),
                         scheduler=scheduler, start=start, hooks=hooks):
        new_steps.append(state)
        yield state
    steps = (list(original[:first]) if start is not None else []) + new_steps
    losses = {s: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])))
              for s, v in getattr(editor, "losses", {}).items()}
    yield EditRun(image=decode_latents(pipe, steps[-1].latents), steps=steps, probe_loss=losses,
                  probe_steps={i: probe_steps[i] for i in edit.steps},
                  carried=getattr(editor, "carried", None))


def intervene(pipe, probes: ProbeSet | None, edit: Edit, generation: Generation,
              original: list[StepState] | None = None) -> EditRun:
    """`intervene_stream` run to the end: the EditRun."""
    *_, run = intervene_stream(pipe, probes, edit, generation, original)
    return run
