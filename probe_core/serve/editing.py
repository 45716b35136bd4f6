"""The app's edit action: sliders -> request and settings -> plan -> the edited generation,
streamed step by step -> the outcome and its score card.

    >>> for update in edit_run(demo, run, SliderValues(move_x=16)):
    ...     update             # EditProgress per re-run step, then the EditView

The edit is planned and scored by the library (`edits.plan`, `edits.outcome`), exactly as
`intervene-eval` plans and scores its edits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .. import settings as app_settings
from ..edits.outcome import outcome
from ..edits.plan import plan
from ..edits.run import EditRun, intervene_stream
from ..probing.generation import Generation
from ..edits.scene import SceneLabels
from ..viz import to_size
from .inputs import check_finished
from .runs import Run, return_free_memory, step_tokens
from .steering import SliderValues, SteerLimits, steer_request
from .zerogpu import keep_on_host

S = app_settings.DISPLAY_SIZE


@dataclass
class EditProgress:
    step: int  # 0-based index of the step just re-run
    x0: np.ndarray  # (S, S, 3) uint8 its decoded x0 prediction


@dataclass
class EditView:
    """The finished edit as displayed: images DISPLAY_SIZE square, and the score card."""
    before: np.ndarray
    after: np.ndarray
    target: np.ndarray
    achieved: np.ndarray
    score: str


def scene_of(demo, run: Run) -> SceneLabels:
    """The scene of a run's final image: the labeler's labels (kept with the run, or made now
    for a run that has none, such as an edited one), else, for a model without a labeler, the
    best layer's probe maps at the last step (then nothing is scored)."""
    if run.labels is not None:
        depth, saliency = run.labels
        return SceneLabels(run.image, depth, saliency > 0.5, run.prompt, demo.labeler)
    if demo.labeler is not None:
        return SceneLabels.label(demo.labeler, run.prompt, run.image)
    last = demo.maps(run, len(run.steps) - 1, demo.best_layer())
    if last is None:
        raise ValueError("this run's probe maps were dropped to free server memory: generate "
                         "it again to steer it")
    depth, saliency = last
    return SceneLabels(run.image, depth, saliency > 0.5, run.prompt, None)


def generation_of(run: Run) -> Generation:
    return Generation(run.prompt, run.seed, run.num_inference_steps, run.guidance_scale,
                      run.negative_prompt or None, run.scheduler)


def edit_run(demo, run: Run | None, sliders: SliderValues
             ) -> Iterator[EditProgress | EditRun]:
    """Edit the scene of a finished run and re-run from the first edited step: yields an
    EditProgress per re-run step, then keeps the outcome on `run.edit` and yields the EditRun.
    Everything asked is one edit; the outcome scores every part."""
    check_finished(run, "steer it")
    if demo.probes is None:
        raise ValueError("this model has no probe set, so it cannot be steered")
    limits = SteerLimits(demo.max_move, run.num_inference_steps, demo.image_size)
    request, settings = steer_request(sliders, limits, demo.default_method)
    scene = scene_of(demo, run)
    edit_plan = plan(request, settings.for_layers(demo.layers), scene)
    generation = generation_of(run)
    t0 = time.perf_counter()
    tokens = []  # the re-run steps' probe outputs, for the compare view
    with demo.lock:
        for item in intervene_stream(demo.pipe, demo.probes, edit_plan.edit, generation,
                                     None if run.released else run.steps,
                                     capture_layers=demo.layers, decode_x0=True,
                                     preview=demo.preview):
            if isinstance(item, EditRun):
                result = item
            else:
                tokens.append(step_tokens(demo.probes, demo.probe_steps, item))
                item.activations = {}
                yield EditProgress(item.index, to_size(item.x0_image, S))
    seconds = time.perf_counter() - t0
    scored = outcome(scene, result.image, edit_plan)
    scored.probe_steps, scored.carried, scored.seconds = (result.probe_steps, result.carried,
                                                          seconds)
    scored.run = Run(run.prompt, run.seed, run.num_inference_steps, run.guidance_scale,
                     run.negative_prompt, run.scheduler, run.schedule_note,
                     steps=result.steps, image=result.image,
                     tokens=run.tokens[:len(result.steps) - len(tokens)] + tokens)
    keep_on_host(scored.run)
    run.edit = scored
    return_free_memory()
    yield result
