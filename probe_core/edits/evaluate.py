"""Batch evaluation of interventions with controls: `python -m probe_core intervene-eval`.

For every (prompt, seed): generate the original and label it. The edited object is the largest
connected piece of the labelled object mask (in a crowded scene the others should stay put:
every request asks for `objects="largest"`), or, with the suite's `objects="all"`, every
labelled object as one (what the app's sliders move and push).
- Moves in 8 directions (right, down-right, down, ..., up-right), each by a quarter of the image
  width or less, so the object stays wholly in frame (a direction with under MIN_MOVE pixels of
  room is skipped). The opposite of a direction is the direction 180 degrees away, so every
  direction's opposite control comes from the same run; a random-direction move is the random
  control, scored along each asked direction.
- Depth pushes nearer and farther by `depth_delta` for every image, each with a random target
  field of the same size inside the object (its control).
Every edit is planned by `plan.plan` and scored by `outcome.outcome`, the scorer the app's
verdict card reads: the labeler and, where the caption's colour tells the object apart, a
colour segmenter that does not use the labeler (for pushes its near/far verdict from the
object's bottom edge and area); each object followed through the edit by `tracker`; every
edit's row also says whether the app's verdict card (`verdict.verdict`) would pass it.
`report` summarises the rows.

    >>> model = ProbedModel(pipe, probes, labeler, num_inference_steps=15, guidance_scale=4.0)
    >>> summary, examples = evaluate_edits(model, EditSuite(), METHOD_DEFAULTS["guided"],
    ...                                    prompts, seeds)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..probing.denoise import decode_latents
from ..probing.generation import Generation
from ..probing.probes import ProbeSet
from ..probing.schedulers import DEFAULT as DEFAULT_SCHEDULER
from ..probing.schedulers import check_scheduler
from .edit_settings import EditSettings
from .outcome import EditOutcome, outcome
from .plan import plan
from .report import summarise
from .request import EditRequest
from .run import intervene, run_generation
from .scene import SceneLabels
from .suite import MIN_MOVE, EditSuite, move_vector, random_depth_field, room, unit
from .verdict import verdict


@dataclass(frozen=True)
class ProbedModel:
    """A pipeline with its probe set and labeler, and the sampling its probes were fitted for."""
    pipe: object
    probes: ProbeSet | None
    labeler: object
    num_inference_steps: int = 15
    guidance_scale: float = 4.0


def move_row(result: EditOutcome, direction: str, distance: int) -> dict:
    """A move's figures: its centre shift (px, x right, y down) by the labeler and by the
    colour segmenter (None where it cannot read the object) and each along the asked
    direction, area ratio, change outside the edit, pieces kept (strict count), objects kept
    (tracked), and whether both scorers follow the same object."""
    s = result.scores
    ux, uy = unit(direction)
    row = {"direction": direction, "distance": distance, "kept": s["kept"],
           "verdict": verdict(result)[0],
           "objects_kept": s["objects_kept"], "faults": s["faults"],
           "same_object": s["same_object"], "outside_change": s["outside_change"],
           "area_ratio": s["area_ratio"]}
    for name in ("labeler", "colour"):
        shift = s[f"{name}_shift"]
        row[f"{name}_shift"] = shift
        row[f"{name}_along"] = None if shift is None else shift[0] * ux + shift[1] * uy
    return row | strict_figures(s)


def strict_figures(scores: dict) -> dict:
    """The stricter figures an edit's row carries beside the lenient ones."""
    return {k: scores[k] for k in ("objects_kept_strict", "split", "outside_change_no_margin")}


def push_row(result: EditOutcome, delta: float) -> dict:
    """A depth push's figures: the object's labelled depth where it is after the edit against
    where it was (z-normalised inverse depth: > 0 is nearer), whether it went the way asked,
    and how far (`magnitude`: the change as a share of the asked `delta`); and the colour
    scorer's verdict (`colour_depth`: None where it cannot read the object)."""
    s = result.scores
    colour = s["colour_depth_verdict"]
    return {"delta": delta, "depth_before": s["depth_before"], "depth_after": s["depth_after"],
            "depth_change": s["depth_change"],
            "as_asked": bool(np.sign(s["depth_change"]) == np.sign(delta)),
            "verdict": verdict(result)[0],
            "area_ratio": s["area_ratio"], "kept": s["kept"],
            "objects_kept": s["objects_kept"], "faults": s["faults"],
            "outside_change": s["outside_change"],
            "magnitude": s["depth_change"] / delta,
            "colour_verdict": colour, "same_object": s["same_object"],
            "colour_as_asked": None if colour is None else bool(colour == np.sign(delta)),
            "colour_bottom_shift": s["colour_bottom_shift"],
            "colour_area_ratio": s["colour_area_ratio"]} | strict_figures(s)


class ImageEdits:
    """Every edit of one image, each planned from the scene and run from the cached original."""

    def __init__(self, model: ProbedModel, settings: EditSettings, prompt: str, seed: int):
        self.model, self.settings = model, settings
        self.generation = Generation(prompt, seed, model.num_inference_steps,
                                     model.guidance_scale,
                                     scheduler=settings.scheduler or DEFAULT_SCHEDULER)
        self.original = run_generation(model.pipe, self.generation, decode_x0=False)
        self.before = decode_latents(model.pipe, self.original[-1].latents)
        self.scene = SceneLabels.label(model.labeler, prompt, self.before)

    def __call__(self, request: EditRequest) -> EditOutcome:
        edit_plan = plan(request, self.settings, self.scene)
        image = intervene(self.model.pipe, self.model.probes, edit_plan.edit, self.generation,
                          self.original).image
        return outcome(self.scene, image, edit_plan)

    def row(self) -> dict:
        scene = self.scene
        return {"prompt": self.generation.prompt, "seed": int(self.generation.seed),
                "n_objects": scene.n_objects, "pieces_before": scene.pieces,
                "area_before": int(scene.largest.sum()), "colour": scene.colour,
                "colour_segmented": scene.colour_mask is not None, "moves": {}}


def add_moves(edits: ImageEdits, suite: EditSuite, row: dict, examples: list) -> None:
    """The moves in every direction with room for one; the first direction's goes into
    `examples` as (prompt, before, the asked scene, edited)."""
    scene = edits.scene
    limit = scene.mask.shape[1] // 4
    moved, others = scene.edited(suite.objects)
    for direction in suite.directions:
        distance = room(moved, direction, limit)
        if distance < MIN_MOVE:
            continue
        dx, dy = move_vector(direction, distance)
        result = edits(EditRequest(dx, dy, objects=suite.objects))
        row["moves"][direction] = move_row(result, direction, distance)
        if direction == suite.directions[0]:
            examples.append((edits.generation.prompt, edits.before,
                             result.plan.parts[0].target.map | others, result.image))


def add_controls_and_pushes(edits: ImageEdits, suite: EditSuite, row: dict, rng) -> None:
    """The random move (the moves' control) and the depth pushes with their random-field
    controls."""
    limit = edits.scene.mask.shape[1] // 4
    angle = rng.uniform(0, 2 * math.pi)  # drawn either way: the pushes' controls follow
    dx, dy = (int(round(limit / 2 * math.cos(angle))), int(round(limit / 2 * math.sin(angle))))
    if suite.moves:
        result = edits(EditRequest(dx, dy, objects=suite.objects))
        row["random_move"] = {"dx": dx, "dy": dy,
                              "labeler_shift": result.scores["labeler_shift"]}
    if edits.settings.method == "latent_shift" or not suite.pushes:
        return
    pushed = edits.scene.edited(suite.objects)[0]
    for name, delta in (("nearer", suite.depth_delta), ("farther", -suite.depth_delta)):
        field = random_depth_field(pushed, delta, rng)
        row[f"push_{name}"] = push_row(edits(EditRequest(depth_push=delta,
                                                         objects=suite.objects)), delta)
        row[f"push_{name}_random"] = push_row(edits(EditRequest(
            depth_push=delta, depth_field=field, objects=suite.objects)), delta)


def evaluate_edits(model: ProbedModel, suite: EditSuite, settings: EditSettings,
                   prompts: list[str], seeds: list[int], progress: bool = True
                   ) -> tuple[dict, list]:
    """Returns (summary with per-image rows, examples for the grid): every edit of `suite`
    on every (prompt, seed), carried out as `settings` say (with `settings.scheduler`, every
    run is sampled by that sampler instead of the model's own)."""
    from tqdm.auto import tqdm

    suite.check()
    settings.check()
    if settings.scheduler is not None:
        check_scheduler(settings.scheduler)
    rng = np.random.default_rng(0)
    rows, examples, skipped = [], [], 0
    for prompt, seed in tqdm(list(zip(prompts, seeds)), desc=f"edits ({settings.label})",
                             disable=not progress):
        edits = ImageEdits(model, settings, prompt, seed)
        if edits.scene.edited(suite.objects)[0].sum() < 4:
            skipped += 1
            continue
        row = edits.row()
        if suite.moves:
            add_moves(edits, suite, row, examples)
        add_controls_and_pushes(edits, suite, row, rng)
        rows.append(row)
    return summarise(rows, skipped, settings, suite), examples
