"""The samplers a run may use instead of its model's own, each a fresh scheduler per run.

    >>> scheduler = make_scheduler(pipe, "Euler")     # EulerDiscreteScheduler, pipe's config
    >>> denoise(pipe, prompt, scheduler=scheduler)    # the pipeline's own stays untouched
    >>> schedule_note(timesteps_of(scheduler, 15), probe_timesteps)   # what the page says

A probe set is trained on one schedule (its model's scheduler and step count); a run on another
is read by the probed step nearest in time (`ProbeStepMap`), and `schedule_note` says so.
"""

from __future__ import annotations

import copy

import diffusers
import numpy as np

from ..families import family_of

# label -> diffusers class name; "default" is the model's own scheduler
SCHEDULERS = {
    "DDIM": "DDIMScheduler",
    "LMS": "LMSDiscreteScheduler",
    "Euler": "EulerDiscreteScheduler",
    "DPM-Solver multistep": "DPMSolverMultistepScheduler",
}
DEFAULT = "default"


def check_scheduler(name) -> str:
    """A scheduler choice as sent by a visitor: DEFAULT or a SCHEDULERS label."""
    if name in (None, "", DEFAULT):
        return DEFAULT
    if not isinstance(name, str) or name not in SCHEDULERS:
        shown = repr(name) if len(repr(name)) <= 40 else repr(name)[:40] + "..."
        raise ValueError(f"unknown scheduler {shown}; choose {DEFAULT} or "
                         + ", ".join(SCHEDULERS))
    return name


def make_scheduler(pipe, name: str | None = DEFAULT):
    """A private scheduler for one run: the model's own (a copy) for DEFAULT, else the chosen
    class built from the model's scheduler config (its betas and timestep spacing)."""
    name = check_scheduler(name)
    if name == DEFAULT or SCHEDULERS[name] == type(pipe.scheduler).__name__:
        return copy.deepcopy(pipe.scheduler)
    if type(pipe.scheduler).__name__.startswith("FlowMatch"):
        raise ValueError(f"this model samples by flow matching; the {name} sampler is for "
                         f"noise-prediction models: choose {DEFAULT}")
    return getattr(diffusers, SCHEDULERS[name]).from_config(pipe.scheduler.config)


def timesteps_of(scheduler, num_inference_steps: int, pipe=None) -> np.ndarray:
    """The integer timesteps a scheduler runs for n steps (on a copy); with `pipe`, as its
    family sets them (flow matching's resolution shift)."""
    if pipe is not None:
        timesteps = family_of(pipe).timesteps_for(pipe, scheduler, num_inference_steps)
    else:
        sched = copy.deepcopy(scheduler)
        sched.set_timesteps(num_inference_steps)
        timesteps = sched.timesteps
    return np.array([int(round(float(t))) for t in timesteps])


def schedule_note(run_timesteps, probe_timesteps) -> str:
    """'' when a run's timesteps are the probe set's, else a sentence for the page: the probe
    maps come from the probed step nearest in time, and how far that can be."""
    run_t = np.asarray(run_timesteps)
    probe_t = np.asarray(probe_timesteps)
    if run_t.shape == probe_t.shape and np.array_equal(run_t, probe_t):
        return ""
    gap = int(np.max(np.min(np.abs(run_t[:, None] - probe_t[None, :]), axis=1)))
    return (f"This run's schedule ({len(run_t)} steps) is not the one the probes were trained "
            f"on ({len(probe_t)} steps): each step is read by the probe of the nearest probed "
            f"timestep (at most {gap} timesteps away).")
