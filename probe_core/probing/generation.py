"""Which generation a run is: its prompt, seed and sampling, as one frozen value.

    >>> generation = Generation("a large red sphere on a gray plain floor", seed=0)
    >>> denoise(pipe, generation.prompt, generation.denoise_settings(decode_x0=False),
    ...         generation.generator(), scheduler=generation.sampler(pipe))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .denoise import DenoiseSettings
from .schedulers import DEFAULT as DEFAULT_SCHEDULER
from .schedulers import make_scheduler


@dataclass(frozen=True)
class Generation:
    """A generation: its prompt, seed and sampling (what an edit re-runs)."""
    prompt: str
    seed: int
    num_inference_steps: int = 15
    guidance_scale: float = 4.0
    negative_prompt: str | None = None
    scheduler: str = DEFAULT_SCHEDULER  # a `schedulers.SCHEDULERS` label, or the model's own

    def sampler(self, pipe):
        """A fresh scheduler for one run of this generation."""
        return make_scheduler(pipe, self.scheduler)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.seed))

    def denoise_settings(self, **keep) -> DenoiseSettings:
        """`DenoiseSettings` of this generation, with what a run keeps (`keep`) added."""
        return DenoiseSettings(self.num_inference_steps, self.guidance_scale,
                               self.negative_prompt, **keep)
