"""Which step of a probe set reads a run's step, when the run's schedule is not the set's.

    >>> steps = ProbeStepMap(pipe.scheduler, probes.settings.num_inference_steps)
    >>> steps(649)                                     # the probed step nearest t = 649
    >>> steps.for_run(20, scheduler=euler)             # {run step: probe step} on another sampler
"""

from __future__ import annotations

import numpy as np

from .schedulers import timesteps_of


class ProbeStepMap:
    """Each step of a run is read by the probed step whose timestep is nearest the run's: the
    same index when the run has the probe set's schedule, the nearest in time on any other
    (another step count or another sampler)."""

    def __init__(self, scheduler, num_inference_steps: int, pipe=None):
        self.num_inference_steps = num_inference_steps
        self._scheduler = scheduler
        self._pipe = pipe  # its family sets the timesteps (None: the scheduler's own way)
        self._timesteps: np.ndarray | None = None  # the probe set's, computed on first use

    def timesteps(self) -> np.ndarray:
        if self._timesteps is None:
            self._timesteps = timesteps_of(self._scheduler, self.num_inference_steps,
                                           self._pipe)
        return self._timesteps

    def __call__(self, timestep) -> int:
        """The probe set's step whose timestep is nearest `timestep`."""
        return int(np.argmin(np.abs(self.timesteps() - round(float(timestep)))))

    def for_run(self, run_steps: int, scheduler=None) -> dict[int, int]:
        """{run step index: probe step} for every step of a `run_steps`-step run of
        `scheduler` (default: the probe set's)."""
        run_t = timesteps_of(scheduler if scheduler is not None else self._scheduler, run_steps,
                             self._pipe)
        return {i: self(t) for i, t in enumerate(run_t)}
