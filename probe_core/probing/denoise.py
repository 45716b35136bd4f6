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
import inspect
from contextlib import ExitStack
from functools import partial
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

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


@dataclass
class ResumePoint:
    """Everything a run needs to start at step `index` instead of step 0."""
    index: int  # the first step to run
    latents: torch.Tensor  # (1, 4, h, w) the latents entering that step
    scheduler: object  # a private copy of the scheduler's state entering that step


# The two ways to edit a run (`DenoiseHooks(activation_edit=..., latent_edit=...)`):
# step index -> the function that edits the chosen layers' outputs at that step, or None
ActivationEditFn = Callable[[int], "EditFn | None"]
# (latents (1, 4, h, w), step index, timestep, prompt_embeds, scheduler) -> the latents that
# enter that step's UNet call (return them unchanged for steps it does not edit)
LatentEditFn = Callable[[torch.Tensor, int, torch.Tensor, torch.Tensor, object], torch.Tensor]


def encode(pipe, prompt: str, guidance_scale: float, negative_prompt: str | None = None):
    """Prompt embeddings as the pipeline builds them: (2, L, D) [uncond, cond] under guidance,
    else (1, L, D)."""
    do_cfg = guidance_scale > 1.0 and pipe.unet.config.time_cond_proj_dim is None
    cond, uncond = pipe.encode_prompt(prompt, pipe._execution_device, 1, do_cfg, negative_prompt)
    return (torch.cat([uncond, cond]) if do_cfg else cond), do_cfg


def step_kwargs(scheduler, generator) -> dict:
    """The pipeline's extra `scheduler.step` arguments (eta = 0, the generator) for the ones
    this scheduler takes."""
    accepted = inspect.signature(scheduler.step).parameters
    return {k: v for k, v in (("eta", 0.0), ("generator", generator)) if k in accepted}


def predicted_x0(scheduler, model_input: torch.Tensor, model_output: torch.Tensor,
                 t) -> torch.Tensor | None:
    """x0 from the UNet's output at timestep t, for schedulers whose step() does not give it:
    `model_input` (1, 4, h, w) is the scaled input, x_t = sqrt(a) x0 + sqrt(1 - a) noise with
    a = alphas_cumprod[t], for every scheduler (sigma schedulers scale their latents to it)."""
    alphas = getattr(scheduler, "alphas_cumprod", None)
    kind = scheduler.config.get("prediction_type", "epsilon")
    if alphas is None or kind not in ("epsilon", "v_prediction"):
        return None
    a = alphas[int(t)].to(model_input.device, torch.float32)
    x, e = model_input.float(), model_output.float()
    x0 = ((x - (1 - a).sqrt() * e) / a.sqrt() if kind == "epsilon"
          else a.sqrt() * x - (1 - a).sqrt() * e)
    return x0.to(model_output.dtype)


@torch.no_grad()
def decode_latents(pipe, latents: torch.Tensor) -> np.ndarray:
    """(1, 4, h, w) latents -> (H, W, 3) uint8, as the pipeline's 'np' output rounds."""
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    image = (image / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).float().cpu().numpy()
    return (image * 255 + 0.5).astype(np.uint8)


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
    scheduler: object
    prompt_embeds: torch.Tensor  # (2, L, D) [uncond, cond] under guidance, else (1, L, D)
    do_cfg: bool
    timesteps: torch.Tensor
    host_timesteps: list[int]  # read once, not a sync every step
    latents: torch.Tensor  # (1, 4, h, w) entering the first step to run
    first: int  # the first step to run
    capture_layers: list[str]
    edit_layers: list[str] | None
    word_layers: list[str]
    use_graph: bool
    extra: dict  # the scheduler's extra step() arguments


def _set_up(pipe, prompt: str, settings: DenoiseSettings, generator, latents, scheduler,
            start: ResumePoint | None, hooks: DenoiseHooks) -> _Setup:
    """Steps 1-3 of the pipeline: layers resolved, the prompt encoded, timesteps set, the
    initial latents drawn (or the resume point's)."""
    unet, s = pipe.unet, settings
    scheduler = scheduler if scheduler is not None else pipe.scheduler
    height = s.height or unet.config.sample_size * pipe.vae_scale_factor
    width = s.width or unet.config.sample_size * pipe.vae_scale_factor
    device = pipe._execution_device
    # resolve layer names once (listing the UNet's modules costs ~1% of a step), not per step
    capture_layers = resolve_layers(unet, s.capture_layers) if (
        s.capture_layers is None or len(s.capture_layers)) else []
    edit_layers = (resolve_layers(unet, hooks.edit_layers)
                   if hooks.activation_edit is not None else hooks.edit_layers)
    # 1. encode the prompt ([uncond, cond] under guidance)
    prompt_embeds, do_cfg = encode(pipe, prompt, s.guidance_scale, s.negative_prompt)
    # 2. timesteps
    scheduler.set_timesteps(s.num_inference_steps, device=device)
    timesteps = scheduler.timesteps
    # 3. initial latents, (1, 4, h, w), scaled by the scheduler's initial sigma
    # (as pipe.prepare_latents, with this run's scheduler's sigma)
    shape = (1, unet.config.in_channels, height // pipe.vae_scale_factor,
             width // pipe.vae_scale_factor)
    latents = (randn_tensor(shape, generator=generator, device=device, dtype=prompt_embeds.dtype)
               if latents is None else latents.to(device)) * scheduler.init_noise_sigma
    extra = step_kwargs(scheduler, generator)
    use_graph = (s.cuda_graph if s.cuda_graph is not None else latents.is_cuda
                 ) and not s.word_attention
    word_layers = cross_attention_layers(unet) if s.word_attention else []  # listed once
    first = 0
    if start is not None:
        # a private copy, so the cached point can be resumed from again
        scheduler = copy.deepcopy(start.scheduler)
        latents, first = start.latents.clone(), start.index
    return _Setup(scheduler, prompt_embeds, do_cfg, timesteps,
                  [int(t) for t in timesteps.tolist()], latents, first, capture_layers,
                  edit_layers, word_layers, use_graph, extra)


def _predict_noise(unet, run: _Setup, model_input, t, fn, site: str):
    """The UNet's noise prediction for (B, 4, h, w) `model_input` at t, with step i's edit
    `fn` (or None) applied: (noise_pred, activations by layer, word map or None). An unedited
    step replays a CUDA graph where the run uses one."""
    noise_pred, acts, word_map = None, {}, None
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
                noise_pred = unet(model_input, t, encoder_hidden_states=run.prompt_embeds,
                                  return_dict=False)[0]
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
    hooks: the run's edits and its x0 preview (`DenoiseHooks`)."""
    s, unet = settings, pipe.unet
    run = _set_up(pipe, prompt, s, generator, latents, scheduler, start, hooks)
    scheduler, latents = run.scheduler, run.latents
    for i, t in enumerate(run.timesteps):
        if i < run.first:
            continue
        if hooks.latent_edit is not None:
            latents = hooks.latent_edit(latents, i, t, run.prompt_embeds, scheduler)
        fn = hooks.activation_edit(i) if hooks.activation_edit is not None else None
        # 4. scale the input, predict the noise (both halves at once under guidance)
        model_input = torch.cat([latents] * 2) if run.do_cfg else latents
        model_input = scheduler.scale_model_input(model_input, t)  # (B, 4, h, w)
        noise_pred, acts, word_map = _predict_noise(unet, run, model_input, t, fn, s.site)
        # 5. classifier-free guidance
        if run.do_cfg:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + s.guidance_scale * (cond - uncond)
        # 6. scheduler step x_t -> x_{t-1}
        out = scheduler.step(noise_pred, t, latents, **run.extra, return_dict=True)
        latents = out.prev_sample
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None:  # schedulers that do not report it (DPM-Solver): from the noise prediction
            x0 = predicted_x0(scheduler, model_input[-1:], noise_pred, t)
        yield StepState(
            index=i, timestep=run.host_timesteps[i], unet_input=model_input[-1:],
            latents=latents, x0_latents=x0,
            x0_image=(hooks.preview or partial(decode_latents, pipe))(x0)
            if s.decode_x0 and x0 is not None else None,
            activations={k: v[0].float() for k, v in acts.items()},
            resume_next=ResumePoint(i + 1, latents.clone(), copy.deepcopy(scheduler))
            if s.keep_resume else None,
            word_attention=word_map,
        )
