"""Interventions: steer a generation toward an edited probe target (the paper's claim 4).

    >>> edit = Edit("saliency", move_mask(mask, 16, 0).map, method="guided")
    >>> run = intervene(pipe, probes, prompt, seed=0, edit=edit, original=cached)
    >>> run.image                                     # (64, 64, 3) uint8, the edited generation

Methods (each with a strength, a step range and a layer set):
- `activation` (the paper's): at the chosen steps and layers, the conditional half of the
  self-attention output is optimised with Adam to lower the probe loss against the target, then
  written back; the forward pass continues, so later layers see earlier edits. No gradient flows
  through the UNet. Stops early when the loss stops falling.
- `guided`: readout guidance with the linear probe as the head. At the chosen steps, the probe
  loss (summed over the layers) is back-propagated through the UNet into the latent, and the
  latent takes a few normalised gradient steps before the step runs as usual.
- `latent_shift`: a positive control for moves, not a probe edit: the latent itself is
  translated by (dx, dy) entering the first chosen step.

An edit that starts at step k resumes from the cached original run's state at step k, so the
steps before it are not recomputed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from ..probing.denoise import ResumePoint, StepState, decode_latents, denoise
from ..probing.hooks import capture, resolve_layers, token_grid
from ..probing.probes import ProbeSet, apply_probe, area_means
from ..probing.step_map import ProbeStepMap
from .latent_carry import carry_latents, latent_source
from .probe_adam import optimise_toward_probe

METHODS = ("activation", "guided", "latent_shift")
# a multistep scheduler's per-pixel history of earlier steps: (1, 4, h, w) tensors in a list
SCHEDULER_HISTORY = ("derivatives", "model_outputs")


def latent_shift(pixels: float, scale: float) -> int:
    """An image-pixel shift on a grid `scale` times as fine, rounded to the nearest grid pixel
    (a tie, half way between two, to the even one, as Python rounds: 10 px on a 4x coarser
    grid is 2 latent pixels, 6 px is 2)."""
    return int(round(pixels * scale))


@dataclass(frozen=True)
class MethodDefaults:
    """A method's settings when the caller gives none."""
    strength: float  # activation: Adam lr; guided: latent step size; latent_shift: unused
    steps: range  # step indices to edit
    iterations: int  # activation: Adam iterations (max); guided: gradient steps per step
    layers: tuple[str, ...] | None = None  # None: every layer the probe set covers
    region_margin: int | None = None  # guided: the latent moves only in the edited region
    push_room: int = 0  # guided: pixels above (farther) or below (nearer) a pushed object its
    # region also takes (targets.perspective_room)
    saliency_shrink: int = 0  # pixels peeled off a moved object's target mask before steering
    # toward it (targets.shrink_mask): the guided edit draws objects about a pixel larger
    carry_moves: bool = False  # guided: a move first carries the object's latent pixels to
    # its new place entering the first edited step (Edit.carry_step, `latent_carry`)
    push_steps: range | None = None  # the steps `intervene-eval` edits for a depth push when
    # they differ from `steps` (the app edits `steps`, which its sliders show)
    push_outline: tuple[str, ...] = ()  # guided: these depth pushes ("nearer", "farther") also
    # steer the saliency probes toward the objects where they are (depth, not outline, changes)

    def steps_within(self, num_inference_steps: int | None = None) -> tuple[int, int]:
        """(first, last) of `steps`, 0-based, each moved inside a run of that many steps."""
        first, last = min(self.steps), max(self.steps)
        if num_inference_steps is None:
            return first, last
        top = num_inference_steps - 1
        return min(first, top), min(last, top)


# Per-method defaults for the embedded model's 15-step schedule (tuned by `intervene-eval`).
METHOD_DEFAULTS = {
    # layers: tuned on SEEDS.edit_validation (not the report seeds): the two up_blocks.1 layers
    # edit more cleanly than all seven (outside change 0.09 vs 0.14, depth 79% vs 67%)
    # region_margin 0, tuned on SEEDS.edit_validation (4 directions): against the whole latent
    # moving, outside change 0.059 vs 0.098, area x1.14 vs x1.24, pieces kept 64% vs 54%,
    # moves 87% vs 85% of the asked distance
    # steps 5-8 with carry_moves and no saliency_shrink, tuned on SEEDS.edit_validation (4
    # directions): against steps 0-3 without carrying (outline shrunk by 1), moves 87% -> 95% of
    # the asked distance, objects kept 87% -> 92% (3 objects 74% -> 91%), outside change
    # 0.047 -> 0.019, area x0.99 -> x1.04; carrying alone (strength 0) moves 81%, keeps 78%.
    # Pushes edit steps 2-5 in intervene-eval (tuned there too; as asked / random-field
    # control, nearer and farther): steps 0-3 95/46%, 64/51%; 2-5 95/51%, 87/54%; 3-6 95/46%,
    # 79/59%; 5-8 95/54%, 90/59%.
    # A farther push also keeps the objects' outlines (push_outline), tuned there too: farther
    # 87 -> 90% as asked (control 54% both), objects kept 62 -> 79%, none gone (3 before),
    # area x0.58 -> x0.84; for nearer pushes it costs 95 -> 85% (a nearer object grows)
    "guided": MethodDefaults(0.2, range(5, 9), 2,
                             ("up_blocks.1.attentions.0.transformer_blocks.0.attn1",
                              "up_blocks.1.attentions.1.transformer_blocks.0.attn1"), 0,
                             carry_moves=True, push_steps=range(2, 6),
                             push_outline=("farther",)),
    "activation": MethodDefaults(0.05, range(0, 3), 32),
    "latent_shift": MethodDefaults(1.0, range(6, 7), 1),
}
DEFAULT_METHOD = "guided"


def defaults_of(method) -> MethodDefaults | None:
    """The defaults of `method` as a visitor may send it: None for anything that is not a
    method's name (not a string, or unknown)."""
    return METHOD_DEFAULTS.get(method) if isinstance(method, str) else None


def default_layers(method: str, available: list[str]) -> list[str] | None:
    """The method's default layer set if this model has all of it, else None (every layer)."""
    layers = METHOD_DEFAULTS[method].layers
    return list(layers) if layers and all(l in available for l in layers) else None


@dataclass
class Edit:
    task: str  # "saliency" (target: bool mask) or "depth" (target: z-normalised inverse depth)
    target: np.ndarray  # (H, W) at image size
    method: str = "guided"
    strength: float = 1.0  # activation: Adam lr; guided: latent step size; latent_shift: unused
    steps: range = range(0, 4)  # step indices to edit
    layers: list[str] | None = None  # None: every layer the probe set covers
    iterations: int = 2  # activation: Adam iterations (max); guided: gradient steps per step
    shift: tuple[int, int] = (0, 0)  # latent_shift only: (dx, dy) in image pixels
    # more (task, target) parts edited in the same run: guided sums their losses; activation
    # optimises each layer toward each part in turn
    also: tuple[tuple[str, np.ndarray], ...] = ()
    # guided only: confine the latent's update to this (H, W) bool region grown by
    # `region_margin` latent pixels; the whole latent moves when either is None
    region: np.ndarray | None = None
    region_margin: int | None = None
    # guided only: where the moved object was ((H, W) bool); with a nonzero `shift`, its latent
    # pixels are carried by the shift entering step `carry_step` (`latent_carry`), then steered
    moved_from: np.ndarray | None = None
    carry_step: int | None = None

    @property
    def confined(self) -> bool:
        """Whether a guided edit moves only the latent pixels of its region."""
        return self.region is not None and self.region_margin is not None

    def parts(self) -> list[tuple[str, np.ndarray]]:
        """Every (task, (H, W) target) this edit steers toward, its own first."""
        return [(self.task, self.target), *self.also]

    def check(self, probes: ProbeSet | None, num_inference_steps: int,
              probe_steps: dict[int, int] | None = None) -> None:
        """Raise ValueError for an edit that cannot run: unknown method or task, a bad target
        or strength, steps outside the run, or an edited step without probes (`probe_steps`
        maps the run's steps to the probe set's)."""
        if self.method not in METHODS:
            raise ValueError(f"unknown edit method {self.method!r}; methods are {METHODS}")
        for task, target in self.parts():
            if task not in ("saliency", "depth"):
                raise ValueError(f"unknown task {task!r}; tasks are saliency, depth")
            t = np.asarray(target)
            if t.ndim != 2 or not np.all(np.isfinite(t.astype(float))):
                raise ValueError(f"target must be a finite (H, W) map, got shape {t.shape}")
        if not np.isfinite(self.strength) or self.strength < 0:
            raise ValueError(f"strength must be a finite number >= 0, got {self.strength}")
        if not len(self.steps) or min(self.steps) < 0 or max(self.steps) >= num_inference_steps:
            raise ValueError(f"edit steps {list(self.steps)} must lie in 0..{num_inference_steps - 1}")
        if self.carry_step is not None and self.carry_step not in self.steps:
            raise ValueError(f"carry step {self.carry_step} must be one of the edit steps "
                             f"{list(self.steps)}")
        if self.method != "latent_shift":
            if probes is None:
                raise ValueError(f"the {self.method} edit needs a probe set")
            for task, _ in self.parts():
                have = {s for t, s, _ in probes.weights if t == task}
                missing = [i for i in self.steps
                           if (probe_steps or {}).get(i, i) not in have]
                if missing:
                    raise ValueError(f"no {task} probes for edited steps {missing}")


@dataclass
class EditRun:
    image: np.ndarray  # (H, W, 3) uint8
    steps: list[StepState]  # every step, the cached ones before the edit included
    probe_loss: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (before, after)
    probe_steps: dict[int, int] = field(default_factory=dict)  # edited step -> probe step used
    carried: tuple[int, int] | None = None  # guided: the latent pixels (dx, dy) a moved object's
    # latent was carried by; None when nothing was carried (no move, or one under half a pixel)


# ----------------------------------------------------------------------------- probe losses

def token_target(target: np.ndarray, n_tokens: int, latent_hw: tuple[int, int]) -> torch.Tensor:
    """(H, W) target -> (HW,) mean over each token's patch."""
    return area_means(target, token_grid(n_tokens, latent_hw))


def probe_loss(task: str, weight: torch.Tensor, acts: torch.Tensor, target: torch.Tensor):
    """Loss of one probe's readout of (HW, C) activations against a (HW,) token target:
    depth: mean squared error; saliency: cross-entropy against the foreground fraction."""
    out = apply_probe(weight, acts)  # (HW, out), float32
    target = target.to(acts.device)
    if task == "depth":
        return F.mse_loss(out[:, 0], target)
    return F.binary_cross_entropy_with_logits(out[:, 1] - out[:, 0], target)


def probe_target(probes: ProbeSet, task: str, layer: str, target: torch.Tensor) -> torch.Tensor:
    """(HW,) token target of a probe's bias-free output: a depth target less the set's depth
    offset for `layer` (the offset is added to every depth output), else the target itself."""
    if task != "depth":
        return target
    offset = probes.depth_offset(layer, target.shape[0], target.device)
    return target if offset is None else target - offset


class TokenTargets:
    """An edit's (H, W) target averaged over each token's patch, made once per layer grid and
    device: (HW,) float32."""

    def __init__(self, target: np.ndarray, latent_hw: tuple[int, int]):
        self.target, self.latent_hw = target, latent_hw
        self._made: dict[tuple[int, str], torch.Tensor] = {}

    def __call__(self, n_tokens: int, device) -> torch.Tensor:
        key = (n_tokens, str(device))
        if key not in self._made:
            self._made[key] = token_target(self.target, n_tokens, self.latent_hw).to(device)
        return self._made[key]


# ----------------------------------------------------------------------------- edit methods

class ActivationEdit:
    """`activation_edit` for denoise: optimise each edited layer's conditional output (Adam on
    the probe loss, `probe_adam`). Layers are edited one after another in the forward pass, so a
    later layer sees the earlier layers' edits (the paper's edit); each layer's optimisation
    runs on the device without waiting for the host."""

    def __init__(self, edit: Edit, probes: ProbeSet, latent_hw: tuple[int, int],
                 probe_steps: dict[int, int]):
        self.edit, self.probes, self.latent_hw = edit, probes, latent_hw
        self.probe_steps = probe_steps  # run step -> the probe set's step
        self.step = 0
        self._losses: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}  # device scalars
        self.parts = [(task, TokenTargets(target, latent_hw)) for task, target in edit.parts()]

    def __call__(self, step: int):
        if step not in self.edit.steps:
            return None
        self.step = step
        return self._edit_layer

    @property
    def losses(self) -> dict[int, list[tuple[float, float]]]:
        """step -> [(loss before, loss after) per edited layer], read from the device once."""
        return {s: [(float(a), float(b)) for a, b in v] for s, v in self._losses.items()}

    def _edit_layer(self, output: torch.Tensor, layer: str) -> torch.Tensor:
        # output: (1, HW, C), the conditional half; each part in turn
        a = original = output[0]
        for task, targets in self.parts:
            key = (task, self.probe_steps[self.step], layer)
            if key not in self.probes.weights or self.edit.strength == 0:
                continue
            a, first, final = optimise_toward_probe(
                task, self.probes.weight_on(*key, output.device), a,
                probe_target(self.probes, task, layer, targets(output.shape[1], output.device)),
                self.edit.strength, self.edit.iterations)
            self._losses.setdefault(self.step, []).append((first, final))
        return output if a is original else a[None].to(output.dtype)


class GuidedEdit:
    """`latent_edit` for denoise: gradient steps on the latent through the UNet and the probes,
    at the edit's steps."""

    def __init__(self, edit: Edit, probes: ProbeSet, unet, layers: list[str],
                 probe_steps: dict[int, int]):
        self.edit, self.probes, self.unet = edit, probes, unet
        self.probe_steps = probe_steps  # run step -> the probe set's step
        self.layers = [l for l in layers if any(
            (task, probe_steps[s], l) in probes.weights for s in edit.steps
            for task, _ in edit.parts())]
        self.losses: dict[int, list[tuple[float, float]]] = {}
        self.targets: list[tuple[str, TokenTargets]] | None = None
        self.where: torch.Tensor | None = None  # (1, 1, h, w) 0/1: where the latent may move
        self.carried: tuple[int, int] | None = None  # (dx, dy) latent pixels, once carried

    def loss(self, latents, step, t, cond_embeds, scheduler):
        x = scheduler.scale_model_input(latents, t)
        with capture(self.unet, self.layers, conditional_only=False, detach=False,
                     site=self.probes.settings.site) as acts:
            self.unet(x, t, encoder_hidden_states=cond_embeds, return_dict=False)
        losses = []
        if self.targets is None:
            self.targets = [(task, TokenTargets(target, tuple(latents.shape[-2:])))
                            for task, target in self.edit.parts()]
        for layer, a in acts.items():  # a: (1, HW, C)
            for task, targets in self.targets:  # every part's loss, summed
                key = (task, self.probe_steps[step], layer)
                if key in self.probes.weights:
                    target = probe_target(self.probes, task, layer, targets(a.shape[1], a.device))
                    losses.append(probe_loss(task, self.probes.weight_on(*key, a.device), a[0],
                                             target))
        return torch.stack(losses).sum() if losses else None

    def __call__(self, latents, step, t, prompt_embeds, scheduler):
        if step == self.edit.carry_step:
            latents = self.carry(latents, scheduler)
        if step not in self.edit.steps or self.edit.strength == 0 or not self.layers:
            return latents
        cond = prompt_embeds[-1:]  # the conditional embedding: the probes read that half
        x = latents.detach().clone()
        first = None
        with torch.enable_grad():
            for _ in range(self.edit.iterations):
                x.requires_grad_(True)
                loss = self.loss(x, step, t, cond, scheduler)
                if loss is None:  # no probe of this step reads the chosen layers
                    return latents
                first = float(loss.detach()) if first is None else first
                (grad,) = torch.autograd.grad(loss, x)
                # a step of `strength` x the latent's RMS along the normalised gradient, in
                # float32 (under float16 small gradients would square to 0 and divide to inf);
                # with a region, only its latent pixels move, by the same step size
                g, x32 = grad.float(), x.detach().float()
                step_size = self.edit.strength * x32.pow(2).mean().sqrt()
                if self.edit.confined:
                    where = self.latent_region(x32)
                    g = g * where
                    rms = (g.pow(2).sum() / (where.sum() * g.shape[1]).clamp_min(1)).sqrt()
                else:
                    rms = g.pow(2).mean().sqrt()
                x32 = x32 - step_size * g / rms.clamp_min(1e-12)
                x = x32.to(latents.dtype).detach()
        with torch.no_grad():
            final = float(self.loss(x, step, t, cond, scheduler))
        self.losses.setdefault(step, []).append((first, final))
        return x.to(latents.dtype)

    def carry(self, latents: torch.Tensor, scheduler=None) -> torch.Tensor:
        """The latents with the moved object's pixels carried by the edit's shift (rounded to
        latent pixels, `latent_shift`); unchanged without a moved object or a shift.
        A multistep scheduler's kept history (LMS derivatives, DPM-Solver model outputs) is
        carried the same way, so no earlier step pulls the object back where it was."""
        e = self.edit
        if e.moved_from is None or e.shift == (0, 0):
            return latents
        H, W = np.asarray(e.moved_from).shape
        h, w = latents.shape[-2:]
        dx, dy = latent_shift(e.shift[0], w / W), latent_shift(e.shift[1], h / H)
        if (dx, dy) == (0, 0):  # a move under half a latent pixel carries nothing
            return latents
        self.carried = (dx, dy)
        source = latent_source(e.moved_from, (h, w))
        for name in SCHEDULER_HISTORY:
            kept = getattr(scheduler, name, None)
            if isinstance(kept, list):
                kept[:] = [carry_latents(k, source, dx, dy)
                           if torch.is_tensor(k) and k.shape == latents.shape else k
                           for k in kept]
        return carry_latents(latents, source, dx, dy)

    def latent_region(self, latents: torch.Tensor) -> torch.Tensor:
        """The edit's region on the latent grid: (1, 1, h, w) float, 1 on every latent pixel
        whose patch touches the region, grown by `region_margin` pixels."""
        if self.where is None or self.where.device != latents.device:
            r = torch.as_tensor(latent_source(self.edit.region, tuple(latents.shape[-2:])),
                                dtype=torch.float32)[None, None]
            margin = self.edit.region_margin
            if margin > 0:
                r = F.max_pool2d(r, 2 * margin + 1, stride=1, padding=margin)
            self.where = r.to(latents.device)
        return self.where


class LatentShift:
    """`latent_edit` for denoise: translate the latent by (dx, dy) image pixels, once."""

    def __init__(self, edit: Edit, vae_scale_factor: int):
        self.first = min(edit.steps)
        self.dx = int(round(edit.shift[0] / vae_scale_factor))
        self.dy = int(round(edit.shift[1] / vae_scale_factor))

    def __call__(self, latents, step, t, prompt_embeds, scheduler):
        if step != self.first:
            return latents
        return shift_latents(latents, self.dx, self.dy)


def shift_latents(latents: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(1, 4, h, w) translated by (dx right, dy down) latent pixels, borders repeated."""
    h, w = latents.shape[-2:]
    ys = (torch.arange(h) - dy).clamp(0, h - 1)
    xs = (torch.arange(w) - dx).clamp(0, w - 1)
    return latents[..., ys[:, None], xs[None, :]]


# ----------------------------------------------------------------------------- running an edit

def run_generation(pipe, prompt: str, seed: int, num_inference_steps: int, guidance_scale: float,
                   layers: list[str] | None = None, keep_resume: bool = True,
                   decode_x0: bool = True, **kwargs) -> list[StepState]:
    """An unedited run that keeps everything an edit needs to resume from any step."""
    return list(denoise(pipe, prompt, num_inference_steps=num_inference_steps,
                        guidance_scale=guidance_scale,
                        generator=torch.Generator().manual_seed(int(seed)),
                        capture_layers=layers if layers is not None else (),
                        keep_resume=keep_resume, decode_x0=decode_x0, **kwargs))


def probe_step_map(pipe, probes: ProbeSet | None, num_inference_steps: int,
                   scheduler=None) -> dict[int, int]:
    """{run step: probe step}: the same index on the probe set's own schedule, else the probed
    step nearest in time (as the maps are read), so edits on a run of any length or sampler
    (`scheduler`, default the pipeline's) use the probes of the right noise level."""
    if probes is None:
        return {i: i for i in range(num_inference_steps)}
    return ProbeStepMap(pipe.scheduler, probes.settings.num_inference_steps).for_run(
        num_inference_steps, scheduler)


def resume_point(original: list[StepState], step: int) -> ResumePoint | None:
    """The cached state entering `step` (None for step 0: start from the seed)."""
    if step == 0:
        return None
    point = original[step - 1].resume_next
    if point is None:
        raise ValueError("the original run kept no resume points (keep_resume=True)")
    return point


def intervene_stream(pipe, probes: ProbeSet | None, prompt: str, seed: int, edit: Edit,
                     num_inference_steps: int, guidance_scale: float,
                     original: list[StepState] | None = None, capture_layers=(),
                     decode_x0: bool = False, preview=None, scheduler=None,
                     negative_prompt: str | None = None) -> Iterator[StepState | EditRun]:
    """Re-run the generation with `edit` applied, yielding every newly computed StepState and,
    last, the EditRun. With `original` (a `run_generation` of the same prompt, seed and
    settings), the steps before the first edited step are reused from it. `preview` makes the
    steps' x0 images when `decode_x0` (default: the VAE decode). `scheduler` and
    `negative_prompt` are the original run's (default: the pipeline's scheduler, none)."""
    probe_steps = probe_step_map(pipe, probes, num_inference_steps, scheduler)
    edit.check(probes, num_inference_steps, probe_steps)
    first = min(edit.steps)
    start = resume_point(original, first) if original is not None else None
    layers = resolve_layers(pipe.unet, edit.layers if edit.layers is not None else (
        probes.settings.layers if probes is not None and probes.settings.layers else None))
    latent_hw = (pipe.unet.config.sample_size, pipe.unet.config.sample_size)
    kwargs: dict = {}
    if edit.method == "activation":
        editor = ActivationEdit(edit, probes, latent_hw, probe_steps)
        kwargs.update(activation_edit=editor, edit_layers=layers)
    elif edit.method == "guided":
        editor = GuidedEdit(edit, probes, pipe.unet, layers, probe_steps)
        kwargs.update(latent_edit=editor)
    else:
        editor = LatentShift(edit, pipe.vae_scale_factor)
        kwargs.update(latent_edit=editor)
    new_steps = []
    site = probes.settings.site if probes is not None else "attn1"
    for state in denoise(pipe, prompt, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale,
                         generator=torch.Generator().manual_seed(int(seed)), start=start,
                         capture_layers=capture_layers, decode_x0=decode_x0, site=site,
                         preview=preview, negative_prompt=negative_prompt,
                         scheduler=copy.deepcopy(scheduler) if scheduler is not None else None,
                         **kwargs):
        new_steps.append(state)
        yield state
    steps = (list(original[:first]) if start is not None else []) + new_steps
    losses = {s: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])))
              for s, v in getattr(editor, "losses", {}).items()}
    yield EditRun(image=decode_latents(pipe, steps[-1].latents), steps=steps, probe_loss=losses,
                  probe_steps={i: probe_steps[i] for i in edit.steps},
                  carried=getattr(editor, "carried", None))


def intervene(pipe, probes: ProbeSet | None, prompt: str, seed: int, edit: Edit,
              num_inference_steps: int, guidance_scale: float,
              original: list[StepState] | None = None, capture_layers=(),
              decode_x0: bool = False, scheduler=None) -> EditRun:
    """`intervene_stream` run to the end: the EditRun."""
    *_, run = intervene_stream(pipe, probes, prompt, seed, edit, num_inference_steps,
                               guidance_scale, original, capture_layers, decode_x0,
                               scheduler=scheduler)
    return run
