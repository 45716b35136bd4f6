"""The denoising loop of `StableDiffusionPipeline`, written out, yielding one `StepState` per step.

    >>> settings = DenoiseSettings(num_inference_steps=15, capture_layers=None)
    >>> for state in denoise(pipe, "a red sphere on a gray plain floor", settings,
    ...                      generator=torch.Generator().manual_seed(0)):
    ...     state.index, state.timestep, state.x0_image.shape, state.activations.keys()

Without an edit, the final latents equal stock diffusers' for the same seed and settings
(the same calls in the same order); probing only reads. Any scheduler with `step()` returning
`pred_original_sample` works (DDIM, LMS, Euler, ...).
"""

from __future__ import annotations

import copy
from contextlib import ExitStack
from functools import partial
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch

from ..families import Conditioning, Family, family_of
from .cross_attention import capture_word_attention, cross_attention_layers
from .cuda_graph import graphed_unet
from .hooks import EditFn, capture, edit, resolve_layers


@dataclass
class StepState:
    index: int  # 0-based step
    timestep: int
    unet_input: torch.Tensor  # (1, 4, h, w) the scaled latents the UNet saw (one half of the batch)
    latents: torch.Tensor  # (1, 4, h, w) after this step
    x0_latents: torch.Tensor | None  # (1, 4, h, w) the scheduler's prediction of the clean latent
    x0_image: np.ndarray | None  # (H, W, 3) uint8, decoded x0 prediction (if decode_x0)
    activations: dict[str, torch.Tensor] = field(default_factory=dict)  # layer -> (HW, C) float32
    resume_next: "ResumePoint | None" = None  # where a re-run from step index + 1 starts
    word_attention: torch.Tensor | None = None  # (L, h, w) float32 cross-attention per token
    model_timestep: torch.Tensor | None = None  # the timestep as the denoiser got it (flow
    # models' are fractional; `timestep` is it rounded, for display)

    def to_host(self) -> None:
        """Every tensor this step keeps moved to the CPU (ZeroGPU detaches the GPU between
        calls; a run resumed from here goes back to the model's device by itself)."""
        for name in ("unet_input", "latents", "x0_latents", "word_attention",
                     "model_timestep"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.cpu())
        self.activations = {k: v.cpu() for k, v in self.activations.items()}
        if self.resume_next is not None:
            self.resume_next = self.resume_next.to("cpu")


@dataclass
class ResumePoint:
    """Everything a run needs to start at step `index` instead of step 0."""
    index: int  # the first step to run
    latents: torch.Tensor  # the latents entering that step, in the family's own layout
    scheduler: object  # a private copy of the scheduler's state entering that step
    offloaded: tuple = ()  # the scheduler's attributes moved off the model's device by `to`

    def to(self, device) -> "ResumePoint":
        """This point on `device` (itself when it is there already): its latents and the
        scheduler's tensors (timesteps, a multistep solver's history). Going to the CPU it
        notes which it moved, and going back moves only those (a scheduler that keeps its
        sigmas on the CPU on purpose keeps them there)."""
        device = torch.device(device)
        if self.latents.device == device:
            return self
        scheduler = copy.deepcopy(self.scheduler)
        state = vars(scheduler)
        if device.type == "cpu":
            names = tuple(k for k, v in state.items() if _on_accelerator(v))
        else:
            names = self.offloaded
        for name in names:
            state[name] = _moved(state[name], device)
        return ResumePoint(self.index, self.latents.to(device), scheduler,
                           names if device.type == "cpu" else ())


def _on_accelerator(value) -> bool:
    parts = value if isinstance(value, (list, tuple)) else [value]
    return any(torch.is_tensor(v) and v.device.type != "cpu" for v in parts)


def _moved(value, device):
    """Tensors, and lists or tuples of them (None kept), on `device`; anything else as is."""
    if torch.is_tensor(value):
        return value.to(device)
    if isinstance(value, (list, tuple)) and any(torch.is_tensor(v) for v in value):
        return type(value)(v.to(device) if torch.is_tensor(v) else v for v in value)
    return value


# The two ways to edit a run (`DenoiseHooks(activation_edit=..., latent_edit=...)`):
# step index -> the function that edits the chosen layers' outputs at that step, or None
ActivationEditFn = Callable[[int], "EditFn | None"]
# (latents (1, C, h, w) on the grid, step index, timestep, the run's Conditioning, scheduler)
# -> the latents that enter that step's denoiser call (unchanged for steps it does not edit)
LatentEditFn = Callable[[torch.Tensor, int, torch.Tensor, Conditioning, object], torch.Tensor]


def encode(pipe, prompt: str, guidance_scale: float, negative_prompt: str | None = None):
    """Prompt embeddings as the pipeline builds them: (2, L, D) [uncond, cond] under guidance,
    else (1, L, D) (a UNet family's; `family_of(pipe).encode` gives every family's)."""
    family = family_of(pipe)
    cond = family.encode(pipe, prompt, guidance_scale, negative_prompt,
                         family.default_size(pipe))
    return cond.prompt_embeds, cond.do_cfg


def step_kwargs(scheduler, generator) -> dict:
    """The pipeline's extra `scheduler.step` arguments (eta = 0, the generator) for the ones
    this scheduler takes."""
    return Family().step_arguments(scheduler, generator)


def predicted_x0(scheduler, model_input: torch.Tensor, model_output: torch.Tensor,
                 t) -> torch.Tensor | None:
    """x0 from the UNet's output at timestep t, for schedulers whose step() does not give it:
    `model_input` (1, 4, h, w) is the scaled input, x_t = sqrt(a) x0 + sqrt(1 - a) noise with
    a = alphas_cumprod[t], for every scheduler (sigma schedulers scale their latents to it)."""
    return Family().predicted_x0(scheduler, model_input, model_output, t, None)


def decode_latents(pipe, latents: torch.Tensor) -> np.ndarray:
    """(1, C, h, w) grid latents -> (H, W, 3) uint8, as the pipeline's 'np' output rounds."""
    return family_of(pipe).decode(pipe, latents)


@dataclass(frozen=True)
class DenoiseSettings:
    """How a run samples and what it keeps of every step (diffusers' argument names)."""
    num_inference_steps: int = 15
    guidance_scale: float = 7.5
    negative_prompt: str | None = None  # used under guidance
    height: int | None = None  # pixels; None: the UNet's sample size x the VAE's factor
    width: int | None = None
    capture_layers: tuple | list | None = ()  # layer names to record (None: every
    # self-attention layer; empty: none)
    site: str = "attn1"  # "attn1" (the paper's tensor) or "block" (the transformer block's
    # output), for capture and edit alike
    decode_x0: bool = True  # make every step's x0 image
    keep_resume: bool = False  # give every StepState the ResumePoint of the step after it
    cuda_graph: bool | None = None  # replay unedited steps' UNet calls from a CUDA graph
    # (`cuda_graph.py`; None: on CUDA devices): the same kernels on the same inputs
    word_attention: bool = False  # give every StepState its cross-attention map over the
    # prompt's tokens, (L, h, w) on the latent grid (`cross_attention.py`); such a run takes
    # the eager path, never the CUDA graph


@dataclass
class DenoiseHooks:
    """What edits or displays a run, each optional.
    activation_edit / edit_layers: `activation_edit(i)` gives step i's edit function
    `fn(output, layer) -> output` for those layers (None: all), or None to leave step i alone.
    latent_edit: replaces the latents entering every step (guidance on the latent).
    preview: `preview(x0_latents) -> (H, W, 3) uint8` makes x0_image (default: the VAE decode).
    """
    activation_edit: ActivationEditFn | None = None
    edit_layers: list[str] | None = None
    latent_edit: LatentEditFn | None = None
    preview: Callable | None = None


@dataclass
class _Setup:
    """What the loop needs, made once before the first step."""
    family: Family
    denoiser: torch.nn.Module  # the UNet or transformer
    scheduler: object
    cond: Conditioning  # prompt embeddings ([uncond, cond] under guidance) and the rest
    timesteps: torch.Tensor
    host_timesteps: list[int]  # read once, not a sync every step
    latents: torch.Tensor  # entering the first step to run, in the family's own layout
    latent_hw: tuple[int, int]  # (h, w) of the latent grid
    first: int  # the first step to run
    capture_layers: list[str]
    edit_layers: list[str] | None
    word_layers: list[str]
    use_graph: bool
    extra: dict  # the scheduler's extra step() arguments

    @property
    def prompt_embeds(self) -> torch.Tensor:
        return self.cond.prompt_embeds

    @property
    def do_cfg(self) -> bool:
        return self.cond.do_cfg


def _set_up(pipe, prompt: str, settings: DenoiseSettings, generator, latents, scheduler,
            start: ResumePoint | None, hooks: DenoiseHooks) -> _Setup:
    """Steps 1-3 of the pipeline: layers resolved, the prompt encoded, timesteps set, the
    initial latents drawn (or the resume point's)."""
    family, s = family_of(pipe), settings
    denoiser = family.denoiser(pipe)
    scheduler = scheduler if scheduler is not None else pipe.scheduler
    default = family.default_size(pipe)
    size = (s.height or default[0], s.width or default[1])
    # resolve layer names once (listing the modules costs ~1% of a step), not per step
    capture_layers = resolve_layers(denoiser, s.capture_layers) if (
        s.capture_layers is None or len(s.capture_layers)) else []
    edit_layers = (resolve_layers(denoiser, hooks.edit_layers)
                   if hooks.activation_edit is not None else hooks.edit_layers)
    # 1. encode the prompt ([uncond, cond] under guidance)
    with torch.no_grad():  # as the pipeline's __call__: T5 gives other bits with autograd on
        cond = family.encode(pipe, prompt, s.guidance_scale, s.negative_prompt, size)
    # 2. timesteps (flow-matching families shift them by the number of image tokens)
    latent_hw = family.latent_size(pipe, size)
    family.set_timesteps(pipe, scheduler, s.num_inference_steps, latent_hw)
    timesteps = scheduler.timesteps
    # 3. initial latents (the family's layout, scaled by this run's scheduler's initial sigma)
    native = family.initial_latents(pipe, size, generator, latents, cond.prompt_embeds.dtype,
                                    scheduler)
    extra = family.step_arguments(scheduler, generator)
    use_graph = (s.cuda_graph if s.cuda_graph is not None else native.is_cuda
                 ) and not s.word_attention and family.uses_graph
    # per-word maps from cross-attention; joint text-image attention (SD3, FLUX) has none:
    # such runs keep no word maps
    word_layers = (cross_attention_layers(denoiser)
                   if s.word_attention and family.word_maps else [])
    first = 0
    if start is not None:
        # a private copy, so the cached point can be resumed from again
        start = start.to(native.device)  # a point kept on the host goes back to the model
        scheduler = copy.deepcopy(start.scheduler)
        native, first = start.latents.clone(), start.index
    return _Setup(family, denoiser, scheduler, cond, timesteps,
                  [int(round(t)) for t in timesteps.tolist()], native, latent_hw, first,
                  capture_layers, edit_layers, word_layers, use_graph, extra)


def _predict_noise(run: _Setup, model_input, t, fn, site: str):
    """The denoiser's output for the (B, ...) `model_input` at t, with step i's edit `fn` (or
    None) applied: (noise_pred, activations by layer, word map or None). An unedited step
    replays a CUDA graph where the run uses one."""
    noise_pred, acts, word_map, unet = None, {}, None, run.denoiser
    if fn is None and run.use_graph and model_input.is_cuda:
        runner = graphed_unet(unet, model_input, t, run.prompt_embeds, run.capture_layers, site,
                              run.do_cfg)
        if runner.error is None:
            try:
                noise_pred, acts = runner(model_input, t, run.prompt_embeds)
            except RuntimeError as err:  # capture failed: say why, run eagerly from now on
                runner.error = f"{type(err).__name__}: {str(err)[:300]}"
    if noise_pred is None:
        with ExitStack() as stack:
            # the edit hook goes first, so the capture records the edited output
            if fn is not None:
                stack.enter_context(edit(unet, fn, run.edit_layers, conditional_only=run.do_cfg,
                                         site=site))
            acts = (stack.enter_context(capture(unet, run.capture_layers,
                                                conditional_only=run.do_cfg, site=site))
                    if len(run.capture_layers) else {})
            words = (stack.enter_context(capture_word_attention(
                unet, run.word_layers, conditional_only=run.do_cfg)) if run.word_layers else None)
            with torch.no_grad():  # an edit that optimises opens its own grad context
                noise_pred = run.family.predict(unet, model_input, t, run.cond)
            word_map = words.maps() if words is not None and words.probs else None
    return noise_pred, acts, word_map


def denoise(pipe, prompt: str, settings: DenoiseSettings = DenoiseSettings(),
            generator: torch.Generator | None = None, latents: torch.Tensor | None = None,
            scheduler=None, start: ResumePoint | None = None,
            hooks: DenoiseHooks = DenoiseHooks()) -> Iterator[StepState]:
    """Yield a StepState after every scheduler step of `prompt` sampled as `settings` say.

    generator / latents: the initial noise's generator, or the initial latents themselves.
    scheduler: this run's scheduler (default: the pipeline's); it is set up here, so pass one
    no other run is using (`schedulers.make_scheduler`).
    start: resume from a cached `ResumePoint` (same prompt, settings and seed) instead of step 0.
    hooks: the run's edits and its x0 preview (`DenoiseHooks`).
    Any family of `probe_core.families` runs: latents in StepState are on the grid
    (1, C, h, w) whatever layout the family's denoiser uses."""
    s = settings
    run = _set_up(pipe, prompt, s, generator, latents, scheduler, start, hooks)
    family, scheduler, latents = run.family, run.scheduler, run.latents
    grid = partial(family.to_grid, latent_hw=run.latent_hw)
    for i, t in enumerate(run.timesteps):
        if i < run.first:
            continue
        if hooks.latent_edit is not None:
            edited = hooks.latent_edit(grid(latents), i, t, run.cond, scheduler)
            latents = family.from_grid(edited)
        fn = hooks.activation_edit(i) if hooks.activation_edit is not None else None
        # 4. scale the input, predict the noise (both halves at once under guidance)
        model_input = torch.cat([latents] * 2) if run.do_cfg else latents
        model_input = family.scale_input(scheduler, model_input, t)
        noise_pred, acts, word_map = _predict_noise(run, model_input, t, fn, s.site)
        # 5. classifier-free guidance
        if run.do_cfg:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + s.guidance_scale * (cond - uncond)
        # 6. scheduler step x_t -> x_{t-1}
        before = latents
        out = scheduler.step(noise_pred, t, latents, **run.extra, return_dict=True)
        latents = out.prev_sample
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None:  # schedulers that do not report it (DPM-Solver, flow matching)
            x0 = family.predicted_x0(scheduler, model_input[-1:], noise_pred, t, before)
        x0 = grid(x0) if x0 is not None else None
        yield StepState(
            index=i, timestep=run.host_timesteps[i], unet_input=grid(model_input[-1:]),
            latents=grid(latents), x0_latents=x0,
            x0_image=(hooks.preview or partial(decode_latents, pipe))(x0)
            if s.decode_x0 and x0 is not None else None,
            activations={k: v[0].float() for k, v in acts.items()},
            resume_next=ResumePoint(i + 1, latents.clone(), copy.deepcopy(scheduler))
            if s.keep_resume else None,
            word_attention=word_map, model_timestep=t,
        )
