"""Which step of a probe set reads a run's step, when the run's schedule is not the set's.

    >>> steps = ProbeStepMap(pipe.scheduler, probes.settings.num_inference_steps)
    >>> steps(run_steps=20, index=7, timestep=649)    # the probed step nearest t = 649
    >>> steps.for_run(20, scheduler=euler)             # {run step: probe step} on another sampler
"""

from __future__ import annotations

import copy

import numpy as np


class ProbeStepMap:
    """Each step of a run is read by the probed step whose timestep is nearest the run's: the
    same index when the run has the probe set's schedule, the nearest in time on any other
    (another step count or another sampler)."""

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

    def __call__(self, run_steps: int, index: int, timestep) -> int:
        return int(np.argmin(np.abs(self.timesteps() - round(float(timestep)))))

    def for_run(self, run_steps: int, scheduler=None) -> dict[int, int]:
        """{run step index: probe step} for every step of a `run_steps`-step run of
        `scheduler` (default: the probe set's)."""
        sched = copy.deepcopy(scheduler if scheduler is not None else self._scheduler)
        sched.set_timesteps(run_steps)
        return {i: self(run_steps, i, t) for i, t in enumerate(sched.timesteps)}
