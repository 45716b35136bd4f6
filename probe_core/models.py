"""Load a pipeline by name: the embedded tiny-scenes model, a hub id, or a folder.

    >>> pipe, preset = load_model("CompVis/stable-diffusion-v1-4")   # LMS, 15 steps, 512, 7.5
    >>> pipe, preset = load_model("tiny-scenes")                     # the embedded default
    >>> pipe, preset = load_model("stabilityai/stable-diffusion-xl-base-1.0")  # SDXL, 1024
    >>> pipe, preset = load_model("/path/to/a/diffusers/folder")

Any family of `probe_core.families` loads (SD 1.x / 2.x, SDXL, PixArt, SD3, FLUX): the folder
or repo's own pipeline class is used. A preset holds the generation settings probes are tied
to (the paper's for SD v1.x, each model's native resolution and steps for the others).
Device and dtype default to CUDA + float16 when a GPU is present, else CPU + float32.
A model that cannot be loaded (offline and not cached, or no such folder) raises
`ModelUnavailableError` saying what to do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .families import FAMILIES, family_of
from .settings import (DEFAULT_GUIDANCE, DEFAULT_STEPS, EMBEDDED_DIT, EMBEDDED_DIT_NAME,
                       EMBEDDED_MODEL, EMBEDDED_NAME)

EMBEDDED = EMBEDDED_NAME
EMBEDDED_FOLDER = EMBEDDED_MODEL
SHIPPED = {EMBEDDED: EMBEDDED_MODEL, EMBEDDED_DIT_NAME: EMBEDDED_DIT}  # our models: name -> folder


@dataclass(frozen=True)
class ModelPreset:
    """Settings a run uses by default and a probe set is tied to."""
    name: str
    scheduler: str  # diffusers scheduler class name
    num_inference_steps: int
    image_size: int
    guidance_scale: float
    negative_prompt: str = ""  # the unconditional half: the empty prompt
    family: str = "sd"  # probe_core.families name
    gated: bool = False  # the hub asks for a licence to be accepted and a token


# A family's settings for a folder with no preset: its stock pipeline's defaults (the model's
# own scheduler, "" below), the paper's for SD 1.x / 2.x.
FAMILY_DEFAULTS = {
    "sdxl": dict(scheduler="", num_inference_steps=30, guidance_scale=5.0),
    "pixart": dict(scheduler="", num_inference_steps=20, guidance_scale=4.5),
    "sd3": dict(scheduler="", num_inference_steps=28, guidance_scale=7.0),
    "flux": dict(scheduler="", num_inference_steps=4, guidance_scale=0.0),  # schnell
    "flux-guided": dict(scheduler="", num_inference_steps=28, guidance_scale=3.5),  # dev
}


# The paper's setting: LMS, 15 steps, 512x512, guidance 7.5, empty negative prompt.
PAPER = dict(scheduler="LMSDiscreteScheduler", num_inference_steps=15, image_size=512,
             guidance_scale=7.5)
PRESETS = {
    "CompVis/stable-diffusion-v1-4": ModelPreset("CompVis/stable-diffusion-v1-4", **PAPER),
    "stable-diffusion-v1-5/stable-diffusion-v1-5": ModelPreset(
        "stable-diffusion-v1-5/stable-diffusion-v1-5", **PAPER),
    EMBEDDED: ModelPreset(EMBEDDED, "DDIMScheduler", DEFAULT_STEPS, 64, DEFAULT_GUIDANCE),
    # the scene DiT: the same world, schedule and sampler as the embedded UNet model
    EMBEDDED_DIT_NAME: ModelPreset(EMBEDDED_DIT_NAME, "DDIMScheduler", DEFAULT_STEPS, 64,
                                   DEFAULT_GUIDANCE, family="pixart"),
    # the other families at their native size and their model cards' steps and guidance
    "stabilityai/stable-diffusion-2-1": ModelPreset(
        "stabilityai/stable-diffusion-2-1", "DDIMScheduler", 25, 768, 7.5),
    "stabilityai/stable-diffusion-xl-base-1.0": ModelPreset(
        "stabilityai/stable-diffusion-xl-base-1.0", "EulerDiscreteScheduler", 30, 1024, 5.0,
        family="sdxl"),
    "stabilityai/stable-diffusion-3-medium-diffusers": ModelPreset(
        "stabilityai/stable-diffusion-3-medium-diffusers", "FlowMatchEulerDiscreteScheduler",
        28, 1024, 7.0, family="sd3", gated=True),
    "PixArt-alpha/PixArt-XL-2-512x512": ModelPreset(
        "PixArt-alpha/PixArt-XL-2-512x512", "DPMSolverMultistepScheduler", 20, 512, 4.5,
        family="pixart"),
    "black-forest-labs/FLUX.1-schnell": ModelPreset(
        "black-forest-labs/FLUX.1-schnell", "FlowMatchEulerDiscreteScheduler", 4, 1024, 0.0,
        family="flux"),
}


class ModelUnavailableError(RuntimeError):
    """The model could not be loaded here; the message says what to do."""


def pick_device(device: str | None = None, torch_dtype: torch.dtype | None = None,
                model: str | None = None):
    """(device, dtype): the given ones, else CUDA + float16 when available, else CPU + float32.
    Our scene models run in float32 on any device unless a dtype is given: they are tiny (half
    precision saves nothing) and their probes were fitted on float32 activations."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if torch_dtype is None:
        half = str(device).startswith("cuda") and not (model is not None
                                                        and is_scene_model(model))
        # FLUX overflows float16: bfloat16, as its model card runs it
        torch_dtype = ((torch.bfloat16 if _is_flux(model) else torch.float16) if half
                       else torch.float32)
    return device, torch_dtype


def _is_flux(model) -> bool:
    """A FLUX model by its preset, or by the pipeline class its folder's index names."""
    if model is None:
        return False
    preset = PRESETS.get(str(model))
    if preset is not None:
        return preset.family == "flux"
    return '"FluxPipeline"' in (_folder_index(model) or "")


def _folder_index(model) -> str | None:
    """The text of a folder's model_index.json; None for a hub id, or a folder without one."""
    try:
        index = Path(str(model)) / "model_index.json"
        return index.read_text() if index.is_file() else None
    except (OSError, ValueError):
        return None


def is_embedded(model: str) -> bool:
    """The embedded model by name ("tiny-scenes", "embedded") or by its folder's path."""
    if str(model) in (EMBEDDED, "embedded"):
        return True
    try:
        return Path(model).resolve() == EMBEDDED_FOLDER
    except (OSError, ValueError):
        return False


def is_shipped(model: str) -> bool:
    """One of our models in weights/ by its name (the embedded UNet model, the scene DiT)."""
    return str(model) in SHIPPED or is_embedded(model)


def is_scene_model(model: str) -> bool:
    """Our shipped models, or a folder `train-model` made (it holds tiny_ldm.json): a model of
    our rendered scenes, generated with the embedded preset and labelled by our labeler."""
    if is_shipped(model):
        return True
    try:
        return (Path(model) / "tiny_ldm.json").is_file()
    except (OSError, ValueError):
        return False


def model_name(model: str) -> str:
    """The name a probe set records for a model: a folder's last part, else the id itself."""
    return Path(model).name if _is_dir(model) else str(model)


def preset_for(model: str, pipe=None) -> ModelPreset:
    """The named preset; else, for a folder, the embedded model's settings if `train-model`
    made it, its family's stock settings for SDXL and the transformers, and the paper's
    otherwise, at the folder's image size."""
    if model in PRESETS:
        return PRESETS[model]
    family = family_of(pipe) if pipe is not None else FAMILIES["sd"]
    size = family.default_size(pipe)[0] if pipe is not None else 512
    if is_scene_model(model):
        base = PRESETS[EMBEDDED]
        return ModelPreset(str(model), base.scheduler, base.num_inference_steps, size,
                           base.guidance_scale, family=family.name)
    key = family.name
    if key == "flux" and family.denoiser(pipe).config.guidance_embeds:
        key = "flux-guided"  # FLUX.1-dev's guidance embedding: its card's 28 steps at 3.5
    settings = FAMILY_DEFAULTS.get(key, PAPER)
    return ModelPreset(str(model), **{**settings, "image_size": size}, family=family.name)


MAX_NAME = 256  # characters in a model id or folder path


def check_model_name(model) -> None:
    """A model id or folder must be short text without control characters."""
    if not isinstance(model, (str, Path)):
        raise ModelUnavailableError(f"a model is named by text, got {type(model).__name__}")
    text = str(model)
    if not text.strip() or len(text) > MAX_NAME or any(ord(c) < 32 for c in text):
        raise ModelUnavailableError(f"a model name must be 1 to {MAX_NAME} printable characters")


def without_paths(text: str) -> str:
    """A library's error text with absolute file paths cut to their last part: what went wrong
    stays, where the server keeps its files does not (hub ids and URLs are left alone)."""
    return re.sub(r"(?<![\w:/.-])/[^\s'\"]+",
                  lambda m: "<...>/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def _is_dir(path) -> bool:
    """Path.is_dir that says False for names the OS cannot even look up (too long, bad bytes)."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def unavailable_message(model: str, err: Exception, is_folder: bool) -> str:
    """One line saying why `model` could not be loaded here and what to do."""
    preset = PRESETS.get(str(model))
    if type(err).__name__ == "GatedRepoError" or (preset is not None and preset.gated
                                                  and "401" in str(err)):
        return (f"{model} is gated on the Hugging Face hub: accept its licence at "
                f"https://huggingface.co/{model}, then log in (`hf auth login`) or set HF_TOKEN "
                f"where it is downloaded.")
    cause = f"({type(err).__name__}: {without_paths(str(err))[:200]})"
    if preset is not None and preset.gated:  # how to get access first: the line is cut short
        return (f"{model} is gated and not in the local cache: accept its licence at "
                f"https://huggingface.co/{model}, log in (`hf auth login`) or set HF_TOKEN, and "
                f"download it once where there is internet (`hf download {model}`); the "
                f"embedded '{EMBEDDED}' model always works. {cause}")
    where = ("the folder is not a complete diffusers pipeline with safetensors weights"
             if is_folder else
             "it is not in the local Hugging Face cache (as safetensors) and the hub cannot "
             "be reached (offline, or HF_HUB_OFFLINE=1)")
    return (f"could not load {model!r}: {where}. Download it once where there is internet "
            f"(`hf download {model}`) or pass a local diffusers folder; the embedded "
            f"'{EMBEDDED}' model always works. {cause}")


def load_model(model: str = EMBEDDED, device: str | None = None,
               torch_dtype: torch.dtype | None = None, cache_dir: str | None = None):
    """(the model's diffusers pipeline on `device`, ModelPreset), with the preset's scheduler
    set. Any family of `probe_core.families`; another pipeline is refused."""
    import diffusers
    from diffusers import DiffusionPipeline

    check_model_name(model)
    device, torch_dtype = pick_device(device, torch_dtype, model)
    if is_embedded(model):
        model = EMBEDDED
    source = SHIPPED.get(str(model), model)
    is_folder = _is_dir(source)
    if not is_folder and (Path(str(source)).is_absolute() or str(source).startswith(".")):
        raise ModelUnavailableError(f"no folder {source}: pass an existing diffusers folder or "
                                    f"a hub id such as {', '.join(PRESETS)}")
    try:
        # safetensors only: a folder or repo with pickled (.bin) weights is refused, not loaded
        pipe = DiffusionPipeline.from_pretrained(
            source, dtype=torch_dtype, cache_dir=cache_dir, use_safetensors=True,
            **_safety_off(source))
    except Exception as err:  # any failure to read the model is "cannot be loaded here"
        raise ModelUnavailableError(unavailable_message(model, err, is_folder)) from None
    try:
        family_of(pipe)
    except ValueError as err:
        raise ModelUnavailableError(f"{model!r} loads as {type(pipe).__name__}, which scene-probe "
                                    f"cannot step through: {err}") from None
    preset = preset_for(model, pipe)
    if preset.scheduler:
        scheduler_cls = getattr(diffusers, preset.scheduler)
        if type(pipe.scheduler) is not scheduler_cls:
            pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device), preset


def _safety_off(source) -> dict:
    """Stable Diffusion 1.x / 2.x pipelines load without their safety checker (probing reads
    the raw image); other pipelines take no such arguments."""
    index = _folder_index(source)
    wants = index is None or "safety_checker" in index  # a hub id: SD's arguments, ignored
    # by pipelines that take none
    return dict(safety_checker=None, requires_safety_checker=False) if wants else {}
