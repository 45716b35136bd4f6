"""One generation in one session, kept whole so scrubbing and edits never re-run the model.

    >>> for run in stream_run(pipe, prompt, seed=0, num_inference_steps=15, guidance_scale=4.0,
    ...                       capture_layers=layers, site="attn1", labeler=labeler):
    ...     run.steps[-1].x0_image            # (64, 64, 3) uint8, the newest step's x0
    >>> run.done, run.image.shape             # True, (64, 64, 3)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..probing.denoise import StepState, decode_latents, denoise


@dataclass
class Run:
    """Every step's activations, x0 image and resume point, and what was read from them."""
    prompt: str
    seed: int
    num_inference_steps: int
    guidance_scale: float
    steps: list[StepState] = field(default_factory=list)  # grows while streaming
    image: np.ndarray | None = None  # (H, W, 3) uint8 final image, once done
    maps: dict = field(default_factory=dict)  # (step, layer) -> (depth (H, W), P(object) (H, W))
    labels: tuple | None = None  # labeler on the final image: (depth (H, W), P(object) (H, W))
    x0_labels: dict = field(default_factory=dict)  # step -> labeler on that step's x0
    edit: object | None = None  # the last intervention (steering.EditOutcome)
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.image is not None

    def x0_labels_at(self, step: int, labeler) -> tuple[np.ndarray, np.ndarray]:
        """The labeler on step `step`'s x0 image, computed once."""
        if step not in self.x0_labels:
            d, s = labeler(self.steps[step].x0_image[None])
            self.x0_labels[step] = (d[0], s[0])
        return self.x0_labels[step]


def stream_run(pipe, prompt: str, seed: int, num_inference_steps: int, guidance_scale: float,
               capture_layers: list[str], site: str, labeler=None) -> Iterator[Run]:
    """Yield the growing Run after every denoising step; the last one is done (final image
    decoded and, with a labeler, labelled). Activations are kept in RAM as float16 when the
    model runs on a GPU."""
    run = Run(prompt, seed, num_inference_steps, guidance_scale)
    t0 = time.perf_counter()
    for state in denoise(pipe, prompt, num_inference_steps=num_inference_steps,
                         guidance_scale=guidance_scale,
                         generator=torch.Generator().manual_seed(seed),
                         capture_layers=capture_layers, keep_resume=True, site=site):
        if any(a.is_cuda for a in state.activations.values()):
            state.activations = {k: a.to("cpu", torch.float16)
                                 for k, a in state.activations.items()}
        run.steps.append(state)
        if state.index == num_inference_steps - 1:
            run.image = decode_latents(pipe, state.latents)
            if labeler is not None:
                d, s = labeler(run.image[None])
                run.labels = (d[0], s[0])
        run.seconds = time.perf_counter() - t0
        yield run
