"""One generation in one session, kept whole so scrubbing and edits never re-run the model.

    >>> for run in stream_run(pipe, Generation(prompt, seed=0, num_inference_steps=15),
    ...                       RunReaders(capture_layers=layers, labeler=labeler)):
    ...     run.steps[-1].x0_image            # (64, 64, 3) uint8, the newest step's x0
    >>> run.done, run.image.shape             # True, (64, 64, 3)
"""

from __future__ import annotations

import ctypes
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..probing.denoise import DenoiseHooks, StepState, decode_latents, denoise
from ..probing.generation import Generation
from ..probing.schedulers import schedule_note, timesteps_of


class StepTokens:
    """One step's probe outputs on each layer's token grid (`ProbeSet.token_outputs`), kept in
    host memory: a few kilobytes a layer where the activations they come from take megabytes at
    SD size, so every layer is kept and any map can be made again on demand. On a GPU the copy
    to the host is not waited for (pinned memory, non-blocking); the first read waits for it."""

    def __init__(self, tokens: dict[str, torch.Tensor]):
        self._index: dict[str, tuple[int, int]] = {}  # layer -> (offset, tokens)
        offset = 0
        for layer, y in tokens.items():  # y: (HW, 3)
            self._index[layer] = (offset, y.shape[0])
            offset += y.numel()
        flat = (torch.cat([y.reshape(-1) for y in tokens.values()]) if tokens
                else torch.zeros(0))  # one kernel for every layer
        self._ready = None
        if flat.is_cuda:
            self._host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)
            self._host.copy_(flat, non_blocking=True)
            self._ready = torch.cuda.Event()
            self._ready.record()
        else:
            self._host = flat

    def layers(self) -> list[str]:
        return list(self._index)

    def get(self, layer: str) -> torch.Tensor | None:
        """(HW, 3) [depth, background logit, foreground logit] on the host, or None."""
        if layer not in self._index:
            return None
        if self._ready is not None:
            self._ready.synchronize()
            self._ready = None
        offset, n = self._index[layer]
        return self._host[offset: offset + 3 * n].reshape(n, 3)

    @property
    def nbytes(self) -> int:
        return self._host.numel() * self._host.element_size()


@dataclass
class Run:
    """Every step's x0 image, resume point and probe outputs, and the maps made from them."""
    prompt: str
    seed: int
    num_inference_steps: int
    guidance_scale: float
    negative_prompt: str = ""
    scheduler: str = "default"  # a `schedulers.SCHEDULERS` label, or the model's own
    schedule_note: str = ""  # how its steps map to the probe set's when the schedules differ
    steps: list[StepState] = field(default_factory=list)  # grows while streaming
    image: np.ndarray | None = None  # (H, W, 3) uint8 final image, once done
    tokens: list[StepTokens] = field(default_factory=list)  # per step: every layer's probe outputs
    maps: dict = field(default_factory=dict)  # (step, layer) -> (depth (H, W), P(object) (H, W))
    labels: tuple | None = None  # labeler on the final image: (depth (H, W), P(object) (H, W))
    x0_full: dict = field(default_factory=dict)  # step -> fully decoded x0 (when previews are not)
    x0_labels: dict = field(default_factory=dict)  # step -> labeler on that step's x0
    edit: object | None = None  # the last intervention (steering.EditOutcome)
    # per step, with word_attention: (L, h, w) float16 cross-attention per prompt token, on the
    # host (moved here from the StepState; see cross_attention.word_maps)
    word_attention: list = field(default_factory=list)
    seconds: float = 0.0

    released: bool = False  # its resume points were dropped to keep the server in budget
    session: str | None = None  # the app session that made it (its cache goes when it closes)

    @property
    def done(self) -> bool:
        return self.image is not None

    def nbytes(self) -> int:
        """Bytes held by its resume points, probe outputs, word attention and full-resolution
        maps."""
        total = sum(t.nbytes for t in self.tokens)
        edited = getattr(self.edit, "run", None)
        if edited is not None:  # the edited run's own probe outputs and maps
            total += sum(t.nbytes for t in edited.tokens) + sum(
                d.nbytes + p.nbytes for d, p in edited.maps.values())
        total += sum(d.nbytes + p.nbytes for d, p in self.maps.values())
        total += sum(x.nbytes for x in self.x0_full.values())
        total += sum(a.numel() * a.element_size() for a in self.word_attention)
        for s in self.steps:
            total += sum(a.numel() * a.element_size() for a in s.activations.values())
            if s.resume_next is not None:
                total += s.resume_next.latents.numel() * s.resume_next.latents.element_size()
        return total

    def release(self) -> None:
        """Drop resume points and the cached full-resolution maps; images, labels and probe
        outputs stay, so the run can still be shown in full, and an edit re-runs it from
        step 0."""
        for s in self.steps:
            s.activations = {}
            s.resume_next = None
        self.maps.clear()
        self.released = True

    def to_host(self) -> None:
        """Every step's tensors on the CPU (between ZeroGPU calls nothing may stay on the GPU;
        the probe outputs are there already)."""
        for state in self.steps:
            state.to_host()

    def x0_labels_at(self, step: int, labeler, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The labeler on step `step`'s x0 `image` (H, W, 3), computed once."""
        if step not in self.x0_labels:
            d, s = labeler(image[None])
            self.x0_labels[step] = (d[0], s[0])
        return self.x0_labels[step]


def _malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_TRIM = _malloc_trim()


def return_free_memory() -> None:
    """Give freed heap pages back to the system. A run allocates and frees many tensors and
    images; glibc keeps the freed pages, so a server's resident memory grew about 6 MB a
    session without this (and fell back below its warm size with it)."""
    if _TRIM is not None:
        _TRIM(0)


class RunBudget:
    """All sessions' cached runs under one memory budget: when the runs it knows hold more than
    `max_bytes`, the least recently used are released (see Run.release). Runs are held weakly:
    a run its session dropped costs nothing here."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._runs: OrderedDict[int, weakref.ref] = OrderedDict()
        self._lock = threading.Lock()

    def use(self, run: Run) -> None:
        """Mark `run` as the most recently used, and release older runs past the budget."""
        with self._lock:
            self._runs.pop(id(run), None)
            self._runs[id(run)] = weakref.ref(run)
            alive = [(k, r()) for k, r in self._runs.items()]
            self._runs = OrderedDict((k, weakref.ref(r)) for k, r in alive if r is not None)
            total = sum(r.nbytes() for _, r in alive if r is not None)
            for key, r in alive:  # oldest first; never the run in use
                if total <= self.max_bytes or r is None or r is run:
                    continue
                total -= r.nbytes()
                r.release()
                del self._runs[key]

    def forget(self, run: Run) -> None:
        """Stop tracking `run` (a run kept for good, such as the page's example): it is never
        released and does not count."""
        with self._lock:
            self._runs.pop(id(run), None)

    def drop_session(self, session: str) -> int:
        """Release every run of a closed session; the number released."""
        with self._lock:
            mine = [(k, r()) for k, r in self._runs.items()]
            mine = [(k, r) for k, r in mine if r is not None and r.session == session]
            for key, r in mine:
                r.release()
                del self._runs[key]
            return len(mine)

    def held_bytes(self) -> int:
        with self._lock:
            return sum(r.nbytes() for r in (ref() for ref in self._runs.values()) if r is not None)


def step_tokens(probes, probe_step, state: StepState) -> StepTokens:
    """A step's probe outputs on every captured layer, read by the probe set's step nearest the
    step's timestep (`probe_step`, a ProbeStepMap; None: the step's own index)."""
    ps = probe_step(state.timestep) if probe_step is not None else state.index
    return StepTokens(probes.token_outputs(ps, state.activations))


@dataclass
class RunReaders:
    """What reads a run as it streams: the layers captured (at `site`), the labeler of the
    final image, the probes read at every step on the model's device (`probe_step`, a
    ProbeStepMap, names the probe set's step; see `step_tokens`), the x0 preview
    (`preview(x0_latents) -> (H, W, 3) uint8`, default: VAE decode), and whether each step's
    cross-attention over the prompt's tokens is kept."""
    capture_layers: list[str] | tuple = ()
    site: str = "attn1"
    labeler: object = None
    probes: object = None
    probe_step: object = None
    preview: object = None
    word_attention: bool = False


def stream_run(pipe, generation: Generation, readers: RunReaders = RunReaders()
               ) -> Iterator[Run]:
    """Yield the growing Run after every denoising step; the last one is done (final image
    decoded and, with a labeler, labelled). With probes, only the small token-grid outputs of
    every captured layer are kept; the activations are dropped. `generation.scheduler` names
    the sampler (`schedulers.make_scheduler`); its negative prompt replaces the empty
    unconditional prompt under guidance. With `readers.word_attention`, each step's
    cross-attention map over the prompt's tokens is kept in `run.word_attention` ((L, h, w)
    float16 on the host)."""
    g, r = generation, readers
    run = Run(g.prompt, g.seed, g.num_inference_steps, g.guidance_scale,
              g.negative_prompt or "", g.scheduler)
    sampler = g.sampler(pipe)
    if r.probe_step is not None:
        run.schedule_note = schedule_note(timesteps_of(sampler, g.num_inference_steps, pipe),
                                          r.probe_step.timesteps())
    t0 = time.perf_counter()
    settings = g.denoise_settings(capture_layers=r.capture_layers, keep_resume=True, site=r.site,
                                  word_attention=r.word_attention)
    for state in denoise(pipe, g.prompt, settings, g.generator(), scheduler=sampler,
                         hooks=DenoiseHooks(preview=r.preview)):
        if r.probes is not None:
            run.tokens.append(step_tokens(r.probes, r.probe_step, state))
        state.activations = {}
        if state.word_attention is not None:
            run.word_attention.append(state.word_attention.to(torch.float16).cpu())
            state.word_attention = None
        run.steps.append(state)
        if state.index == g.num_inference_steps - 1:
            run.image = decode_latents(pipe, state.latents)
            if r.labeler is not None:
                d, s = r.labeler(run.image[None])
                run.labels = (d[0], s[0])
        run.seconds = time.perf_counter() - t0
        yield run
