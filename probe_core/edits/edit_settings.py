"""How an edit runs: the method, its strength, steps, layers and the rest, as one frozen value.

    >>> settings = METHOD_DEFAULTS["guided"]                      # the method's defaults
    >>> settings = replace(settings, strength=0.3, steps=range(2, 6))   # a caller's overrides
    >>> settings.edit_steps("depth"), settings.move_carry_step    # range(2, 6), 2

A method's defaults are an `EditSettings` value; every override is `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

METHODS = ("activation", "guided", "latent_shift")
DEFAULT_METHOD = "guided"


@dataclass(frozen=True)
class EditSettings:
    """How an edit is carried out (what is asked is an `EditRequest`)."""
    method: str = DEFAULT_METHOD  # "activation" (the paper's), "guided", "latent_shift"
    strength: float = 0.2  # activation: Adam lr; guided: latent step size; latent_shift: unused
    steps: range = range(5, 9)  # step indices (0-based) to edit
    iterations: int = 2  # activation: Adam iterations (max); guided: gradient steps per step
    layers: tuple[str, ...] | None = None  # None: every layer the probe set covers
    region_margin: int | None = None  # guided: the latent moves only in the edited region
    # grown by this many latent pixels; None: the whole latent moves
    push_room: int = 0  # guided: pixels above (farther) or below (nearer) a pushed object its
    # region also takes (targets.perspective_room)
    saliency_shrink: int = 0  # pixels peeled off a moved object's target mask before steering
    # toward it (targets.shrink_mask)
    carry_moves: bool = False  # guided: a move first carries the object's latent pixels to
    # its new place (`latent_carry`), entering `carry_step`
    carry_step: int | None = None  # the step a move is carried at; None: the first edited step
    push_steps: range | None = None  # a depth push's edit steps when they differ from `steps`
    push_outline: tuple[str, ...] = ()  # guided: these depth pushes ("nearer", "farther") also
    # steer the saliency probes toward the objects where they are (depth, not outline, changes)
    scheduler: str | None = None  # a `schedulers.SCHEDULERS` label; None: the run's own
    name: str = ""  # the variant's name in METHOD_DEFAULTS when it is not the method's own

    @property
    def label(self) -> str:
        """The name a report, an export and the app's menu give these settings."""
        return self.name or self.method

    def check(self) -> "EditSettings":
        """These settings, or ValueError naming what cannot run: an unknown method, or a carry
        step that is not one of the edited steps or not guided."""
        if self.method not in METHODS:
            raise ValueError(f"unknown edit method {self.method!r}; methods are {METHODS}")
        carry = self.move_carry_step
        if self.carry_step is not None and (carry is None or carry not in self.steps):
            raise ValueError(f"a carry step needs the guided method and one of its edit steps "
                             f"{list(self.steps)}, got {self.carry_step} with {self.method}")
        return self

    def steps_within(self, num_inference_steps: int | None = None) -> tuple[int, int]:
        """(first, last) of `steps`, 0-based, each moved inside a run of that many steps."""
        first, last = min(self.steps), max(self.steps)
        if num_inference_steps is None:
            return first, last
        top = num_inference_steps - 1
        return min(first, top), min(last, top)

    def as_one_edit(self, first: int, last: int, strength: float | None = None
                    ) -> "EditSettings":
        """These settings as the app's sliders run them: every part of an edit (a push too)
        at steps first..last (0-based), with `strength` where given."""
        return replace(self, steps=range(first, last + 1), push_steps=None,
                       strength=self.strength if strength is None else strength)

    def edit_steps(self, task: str) -> range:
        """The steps an edit led by `task` ("saliency" or "depth") runs at."""
        return self.push_steps if task == "depth" and self.push_steps is not None else self.steps

    @property
    def move_carry_step(self) -> int | None:
        """The step a move is carried at, or None: a method that does not carry moves."""
        if self.method != "guided" or not self.carry_moves:
            return None
        return self.carry_step if self.carry_step is not None else min(self.steps)

    def keeps_outline(self, depth_push: float) -> bool:
        """Whether a depth push this way (nearer > 0, farther < 0) also steers toward the
        objects' outlines where they are."""
        return bool(depth_push) and ("nearer" if depth_push > 0 else "farther") in self.push_outline

    def for_layers(self, available: list[str]) -> "EditSettings":
        """These settings on a model with `available` layers: the layer set kept when the model
        has all of it, else None (every layer the probe set covers)."""
        keep = self.layers and all(l in available for l in self.layers)
        return self if keep or self.layers is None else replace(self, layers=None)


# Per-method defaults for the embedded model's 15-step schedule (tuned by `intervene-eval` on
# SEEDS.edit_validation, never on the report seeds).
# guided:
# - layers: the two up_blocks.1 layers edit more cleanly than all seven (outside change 0.09 vs
#   0.14, depth 79% vs 67%).
# - region_margin 0 (4 directions): against the whole latent moving, outside change 0.059 vs
#   0.098, area x1.14 vs x1.24, pieces kept 64% vs 54%, moves 87% vs 85% of the asked distance.
# - steps 5-8 with carry_moves and no saliency_shrink (4 directions): against steps 0-3 without
#   carrying (outline shrunk by 1), moves 87% -> 95% of the asked distance, objects kept 87% ->
#   92% (3 objects 74% -> 91%), outside change 0.047 -> 0.019, area x0.99 -> x1.04; carrying
#   alone (strength 0) moves 81%, keeps 78%.
# - pushes edit the moves' steps 5-8, as the app's sliders do. As asked / random-field control,
#   nearer and farther (tuning seeds): steps 0-3 95/46%, 64/51%; 2-5 95/51%, 87/54%; 3-6 95/46%,
#   79/59%; 5-8 95/54%, 90/59%. Against probes fitted to shuffled labels (39 images), 2-5 vs
#   5-8: as asked 95/90% vs 95/90%, the shuffled-probe control 77/51% vs 54/56%, objects kept
#   85/79% vs 95/87%, outside change 0.033/0.025 vs 0.020/0.018.
# - a farther push also keeps the objects' outlines (push_outline): farther 87 -> 90% as asked
#   (control 54% both), objects kept 62 -> 79%, none gone (3 before), area x0.58 -> x0.84; for
#   nearer pushes it costs 95 -> 85% (a nearer object grows).
# - on a model without these layers (the scene DiT), every probed layer (`for_layers`): on the
#   DiT's validation seeds (4 directions) all 12 blocks against block 9, blocks 5+9 and blocks
#   3/5/7/9: moves 98/96/98/97% of the asked distance, objects kept 96/88/88/87%, the farther
#   push's random-field control 50/75/75/75%; its carry alone moves 82%. Its pushes take the
#   UNet's steps: at 5-8 (40 images) nearer/farther 98/90% as asked, the shuffled-probe
#   control 20/25%, the random-field control 38/73% (at 2-5 on 20 images, farther 85% as
#   asked, random-field control 50%).
# Two variants of guided are its controls, each a method a visitor can pick:
# - guidance_only: the probes' gradient without the carry, at the steps tuned for it before the
#   carry existed (0-3, the moved object's outline peeled by a pixel); pushes as guided.
# - carry_only: the carry alone (strength 0: no probe gradient); it moves, it cannot push.
_GUIDED = EditSettings(
    "guided", 0.2, range(5, 9), 2,
    ("up_blocks.1.attentions.0.transformer_blocks.0.attn1",
     "up_blocks.1.attentions.1.transformer_blocks.0.attn1"),
    region_margin=0, carry_moves=True, push_outline=("farther",))
METHOD_DEFAULTS = {
    "guided": _GUIDED,
    "guidance_only": replace(_GUIDED, name="guidance_only", steps=range(0, 4),
                             push_steps=_GUIDED.steps, carry_moves=False, saliency_shrink=1),
    "carry_only": replace(_GUIDED, name="carry_only", strength=0.0),
    "activation": EditSettings("activation", 0.05, range(0, 3), 32),
    "latent_shift": EditSettings("latent_shift", 1.0, range(6, 7), 1),
}


def defaults_of(method) -> EditSettings | None:
    """The defaults of `method` as a visitor may send it: None for anything that is not a
    method's name (not a string, or unknown)."""
    return METHOD_DEFAULTS.get(method) if isinstance(method, str) else None
