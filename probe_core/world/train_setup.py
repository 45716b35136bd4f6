"""What the tiny-scenes trainer's phases share: the recipe, the stop flag, atomic checkpoint
saves and the training log.

    >>> cfg = TrainConfig(workdir="/tmp/tiny", out="weights/tiny-scenes", max_minutes=60)
    >>> stopper = Stopper(cfg.max_minutes)   # stopper.stop: signalled or out of time
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..settings import EMBEDDED_MODEL, SEEDS
from .tiny_ldm import TinyLDMConfig


@dataclass
class TrainConfig:
    """The training recipe and where its files go."""
    workdir: str = "~/.cache/scene-probe/tiny-scenes"  # data cache, checkpoints, logs
    out: str = str(EMBEDDED_MODEL)  # exported pipeline folder (EMA weights)
    init_from: str | None = None  # warm start UNet/text/VAE from a saved pipeline folder
    n_scenes: int = 40_000  # rendered training scenes
    first_seed: int = SEEDS.model_train
    vae_steps: int = 4_000
    vae_batch: int = 32
    vae_lr: float = 5e-4
    kl_weight: float = 1e-6
    unet_steps: int = 200_000  # an upper bound; stop earlier with max_minutes
    unet_batch: int = 64
    unet_lr: float = 5e-4
    warmup: int = 300  # linear lr warm-up steps for the UNet
    ema_decay: float = 0.999
    cond_drop: float = 0.1  # probability of the empty prompt (for classifier-free guidance)
    snr_gamma: float = 5.0  # min-SNR loss weighting; 0 turns it off
    ckpt_every: int = 200
    export_every: int = 1_000
    log_every: int = 50
    max_minutes: float | None = None  # wall-clock budget of this invocation
    threads: int = 2
    device: str = "cpu"  # "cuda" on a GPU machine: same recipe, same files
    seed: int = 0
    model: TinyLDMConfig = field(default_factory=TinyLDMConfig)


class Stopper:
    """Turns SIGTERM/SIGINT and a time budget into a flag the loops poll."""

    def __init__(self, max_minutes):
        self.deadline = time.time() + 60 * max_minutes if max_minutes else None
        self.signalled = False
        self.previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass

    def _handle(self, *_):
        self.signalled = True

    def close(self):
        """Give the signals back to whoever handled them before."""
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    @property
    def stop(self) -> bool:
        return self.signalled or (self.deadline is not None and time.time() > self.deadline)


def atomic_save(obj, path: Path):
    """torch.save to a temporary file, then swap it in: a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def log_row(workdir: Path, **row):
    """Append one JSON row to workdir/train_log.jsonl."""
    with open(workdir / "train_log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def trim_log(workdir: Path, phase: str, step: int):
    """Drop rows of `phase` past `step`: they were logged after the checkpoint we resume from."""
    path = workdir / "train_log.jsonl"
    if not path.exists():
        return
    rows = [r for r in path.read_text().splitlines() if r.strip()]
    keep = [r for r in rows if not (json.loads(r)["phase"] == phase and json.loads(r)["step"] > step)]
    if len(keep) != len(rows):
        path.write_text("".join(r + "\n" for r in keep))
