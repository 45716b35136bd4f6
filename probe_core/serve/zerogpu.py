"""`spaces.GPU` for functions that run a model, when the app runs on a ZeroGPU Space.

    >>> on_generate = on_gpu(on_generate, duration=GpuDuration(models, read_generate))
    >>> gpu_seconds(ModelCost(2.57, 1024, guided=True), steps=30)     # SDXL, 30 steps: 21 s

Hugging Face sets SPACES_ZERO_GPU on ZeroGPU hardware and provides the `spaces` package there;
a decorated function is given a GPU while it runs, for at most `duration` seconds, which may be
a callable of the function's own arguments. A visitor's quota is checked against it, so it is
estimated per call from the model's size, the image size and the steps, instead of a fixed
bound. Between calls the GPU is gone: a finished run's tensors are moved to the host
(`Run.to_host`), and a re-run from one of its steps moves its resume point back.
Elsewhere the function is returned as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..models import EMBEDDED, PRESETS

# denoiser parameters (billions) of each family's published model, for a model not loaded yet
TYPICAL_PARAMS_B = {"sd": 0.86, "sdxl": 2.57, "pixart": 0.61, "sd3": 2.03, "flux": 11.9}
MIN_SECONDS, MAX_SECONDS = 15, 300  # ZeroGPU's useful range
OVERHEAD_SECONDS = 10  # encode, decode, labels, moving to and from the GPU
WORK = {"generate": 1.5, "edit": 4.0, "probe": 1.0}  # steps' cost, relative to plain steps:
# probing adds its readout; an edit adds gradient steps through the denoiser and a re-run


def zero_gpu_available() -> bool:
    return "SPACES_ZERO_GPU" in os.environ


@dataclass(frozen=True)
class ModelCost:
    """What a denoising step's time depends on."""
    params_billions: float  # the denoiser's parameters
    image_size: int  # pixels a side
    guided: bool  # classifier-free guidance: two rows per call


def step_seconds(cost: ModelCost) -> float:
    """A step's time on a ZeroGPU slice, conservatively: proportional to the parameters and
    the image tokens (calibrated so that FLUX.1 at 1024 px takes ~0.6 s and SDXL ~0.25 s a
    step), at least 0.05 s (a small UNet's launch overheads)."""
    tokens = (cost.image_size / 512) ** 2
    return max(0.05, 0.012 * cost.params_billions * tokens * (2 if cost.guided else 1))


def gpu_seconds(cost: ModelCost, steps: int, work: float = WORK["generate"]) -> int:
    """The duration to ask ZeroGPU for: overhead + steps at `work` times a step, bounded."""
    seconds = OVERHEAD_SECONDS + work * max(1, int(steps)) * step_seconds(cost)
    return int(min(MAX_SECONDS, max(MIN_SECONDS, round(seconds))))


def cost_of(models, name: str, guidance_scale: float) -> ModelCost:
    """The cost of model `name`: measured from its pipeline when loaded, else from its
    preset's family and size (the embedded model when the name is unknown)."""
    from ..families import denoiser_of

    demo = models.peek(name) if models is not None else None
    guided = guidance_scale > 1.0
    if demo is not None:
        params = sum(p.numel() for p in denoiser_of(demo.pipe).parameters()) / 1e9
        return ModelCost(params, demo.image_size, guided)
    preset = PRESETS.get(str(name), PRESETS[EMBEDDED])
    params = 0.01 if preset.name == EMBEDDED else TYPICAL_PARAMS_B[preset.family]
    return ModelCost(params, preset.image_size, guided)


class GpuDuration:
    """`duration=` for spaces.GPU: called with the handler's own arguments, it reads (model
    name, steps, guidance) from them with `read` and estimates the seconds; arguments it cannot
    read get the largest bound (the handler itself then refuses them)."""

    def __init__(self, models, read: Callable, work: str = "generate"):
        self.models, self.read, self.work = models, read, WORK[work]

    def __call__(self, *args, **kwargs) -> int:
        try:
            name, steps, guidance = self.read(args, kwargs)
            return gpu_seconds(cost_of(self.models, name, float(guidance)), int(steps),
                               self.work)
        except Exception:  # noqa: BLE001 - a duration must never fail the call
            return MAX_SECONDS


def on_gpu(fn, duration: int | Callable = 60):
    """`spaces.GPU(fn, duration=duration)` on ZeroGPU, else `fn` itself."""
    if not zero_gpu_available():
        return fn
    import spaces

    return spaces.GPU(fn, duration=duration)


def keep_on_host(run) -> None:
    """On ZeroGPU, move a finished run's tensors to the host (the GPU goes when the call
    ends); elsewhere leave them where they are."""
    if zero_gpu_available() and run is not None:
        run.to_host()
