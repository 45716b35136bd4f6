"""Which step of a probe set reads a run's step, when the run's schedule is not the set's.

    >>> steps = ProbeStepMap(pipe.scheduler, probes.settings.num_inference_steps)
    >>> steps(run_steps=20, index=7, timestep=649)    # the probed step nearest t = 649
"""

from __future__ import annotations

import copy

import numpy as np


class ProbeStepMap:
    """A run with the probe set's step count uses the same index; any other run uses the probed
    step whose timestep is nearest the run's."""

    def __init__(self, scheduler, num_inference_steps: int):
        self.num_inference_steps = num_inference_steps
        self._scheduler = scheduler
        self._timesteps: np.ndarray | None = None  # the probe set's, computed on first use

    def timesteps(self) -> np.ndarray:
        if self._timesteps is None:
            sched = copy.deepcopy(self._scheduler)  # a private copy: the pipe's stays as it is
            sched.set_timesteps(self.num_inference_steps)
            self._timesteps = np.array([int(t) for t in sched.timesteps])
        return self._timesteps

    def __call__(self, run_steps: int, index: int, timestep: int) -> int:
        if run_steps == self.num_inference_steps:
            return index
        return int(np.argmin(np.abs(self.timesteps() - int(timestep))))

    def for_run(self, run_steps: int) -> dict[int, int]:
        """{run step index: probe step} for every step of a `run_steps`-step run."""
        sched = copy.deepcopy(self._scheduler)
        sched.set_timesteps(run_steps)
        return {i: self(run_steps, i, int(t)) for i, t in enumerate(sched.timesteps)}
