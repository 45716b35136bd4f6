"""The edit methods: how a generation is steered toward an edited probe target (the paper's
claim 4). An `Edit` is built by `plan.plan` and run by `run.intervene`.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..families import Conditioning, family_of
from ..probing.hooks import capture, token_grid
from ..probing.probes import ProbeSet
from ..probing.readout import apply_probe, area_means
from .edit_settings import METHODS
from .latent_carry import carry_latents, latent_source
from .probe_adam import optimise_toward_probe
# a multistep scheduler's per-pixel history of earlier steps: (1, 4, h, w) tensors in a list
SCHEDULER_HISTORY = ("derivatives", "model_outputs")


def latent_shift(pixels: float, scale: float) -> int:
    """An image-pixel shift on a grid `scale` times as fine, rounded to the nearest grid pixel
    (a tie, half way between two, to the even one, as Python rounds: 10 px on a 4x coarser
    grid is 2 latent pixels, 6 px is 2)."""
    return int(round(pixels * scale))


@dataclass
class Edit:
    """One edit as the methods run it: the probe task and (H, W) target it leads with, more
    parts in `also`, and how (method, strength, steps, layers, region, carry). Built only by
    `plan.plan`, from an `EditRequest` and `EditSettings`."""
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

    def __init__(self, edit: Edit, probes: ProbeSet, pipe, layers: list[str],
                 probe_steps: dict[int, int]):
        self.edit, self.probes = edit, probes
        self.family = family_of(pipe)
        self.unet = self.family.denoiser(pipe)
        self.probe_steps = probe_steps  # run step -> the probe set's step
        self.layers = [l for l in layers if any(
            (task, probe_steps[s], l) in probes.weights for s in edit.steps
            for task, _ in edit.parts())]
        self.losses: dict[int, list[tuple[float, float]]] = {}
        self.targets: list[tuple[str, TokenTargets]] | None = None
        self.where: torch.Tensor | None = None  # (1, 1, h, w) 0/1: where the latent may move
        self.carried: tuple[int, int] | None = None  # (dx, dy) latent pixels, once carried

    def loss(self, latents, step, t, cond: Conditioning, scheduler):
        """latents: (1, C, h, w) on the grid; cond: the conditional half."""
        x = self.family.scale_input(scheduler, self.family.from_grid(latents), t)
        with capture(self.unet, self.layers, conditional_only=False, detach=False,
                     site=self.probes.settings.site) as acts:
            self.family.predict(self.unet, x, t, cond)
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

    def __call__(self, latents, step, t, conditioning: Conditioning, scheduler):
        if step == self.edit.carry_step:
            latents = self.carry(latents, scheduler)
        if step not in self.edit.steps or self.edit.strength == 0 or not self.layers:
            return latents
        cond = conditioning.conditional_half()  # the probes read that half
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

    def __call__(self, latents, step, t, conditioning, scheduler):
        if step != self.first:
            return latents
        return shift_latents(latents, self.dx, self.dy)


def shift_latents(latents: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """(1, 4, h, w) translated by (dx right, dy down) latent pixels, borders repeated."""
    h, w = latents.shape[-2:]
    ys = (torch.arange(h) - dy).clamp(0, h - 1)
    xs = (torch.arange(w) - dx).clamp(0, w - 1)
    return latents[..., ys[:, None], xs[None, :]]
