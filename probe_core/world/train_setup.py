"""What the tiny-scenes trainer's phases share: the recipe, the stop flag, atomic checkpoint
saves, the training log, EMA weights and the denoiser's training loop (UNet or DiT).

    >>> cfg = TrainConfig(workdir="/tmp/tiny", out="weights/tiny-scenes", max_minutes=60)
    >>> stopper = Stopper(cfg.max_minutes)   # stopper.stop: signalled or out of time
    >>> fit(run, data, stopper)   # run: a UNetRun or DiTRun; checkpoints and exports on the way
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..settings import EMBEDDED_DIT, EMBEDDED_MODEL, SEEDS
from .tiny_dit import TinyDiTConfig
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
    # the denoiser: "unet" (trained with the text encoder) or "dit" (a transformer trained on
    # share_from's latents and text encoder, both frozen and shipped with it)
    backbone: str = "unet"
    share_from: str = str(EMBEDDED_MODEL)  # the UNet model whose parts a DiT shares
    dit: TinyDiTConfig = field(default_factory=TinyDiTConfig)
    dit_steps: int = 200_000  # an upper bound; stop earlier with max_minutes
    dit_batch: int = 64
    dit_lr: float = 3e-4
    dit_lr_final: float | None = None  # set: cosine decay from dit_lr (at the step this
    # invocation starts) to it at dit_steps; unset: dit_lr throughout

    def __post_init__(self):
        if self.backbone not in ("unet", "dit"):
            raise ValueError(f"backbone is 'unet' or 'dit', not {self.backbone!r}")

    @property
    def denoiser_steps(self) -> int:
        return self.dit_steps if self.backbone == "dit" else self.unet_steps


def default_out(backbone: str) -> str:
    """Where a backbone's model is exported unless told: the shipped folder it replaces."""
    return str(EMBEDDED_DIT if backbone == "dit" else EMBEDDED_MODEL)


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


def swap_in_folder(out: Path, write) -> None:
    """write(tmp) a folder beside `out`, then swap it in: a reader never sees half a folder."""
    out = Path(out)
    tmp, old = out.with_name(out.name + ".tmp"), out.with_name(out.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def ema_update(ema: dict, model: torch.nn.Module, decay: float):
    """ema <- decay * ema + (1 - decay) * the model's state (non-float entries copied)."""
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if p.dtype.is_floating_point:
                ema[name].lerp_(p, 1 - decay)
            else:
                ema[name].copy_(p)


def warmed_lr(opt: torch.optim.Optimizer, lr: float, step: int, warmup: int) -> None:
    """Set the optimiser's learning rate: linear warm-up over `warmup` steps, then `lr`."""
    for g in opt.param_groups:
        g["lr"] = lr * min(1.0, (step + 1) / warmup)


def fit(run, data, stopper: Stopper) -> dict:
    """Train `run`'s denoiser to cfg.denoiser_steps or until stopped, checkpointing and exporting
    on the way and at the end. `run` (UNetRun, DiTRun) has phase, cfg, workdir, step, seconds,
    started, scheduler, train_step(data, generator, rng) -> loss, checkpoint(), export(), info()."""
    cfg = run.cfg
    trim_log(run.workdir, run.phase, run.step)
    start_step = run.step
    gen = torch.Generator().manual_seed(cfg.seed + run.step)
    rng = np.random.default_rng(cfg.seed + run.step)
    bar = tqdm(total=cfg.denoiser_steps, initial=run.step, desc=run.phase)
    run.started = time.time()
    running = None
    while run.step < cfg.denoiser_steps and not stopper.stop:
        loss = run.train_step(data, gen, rng)
        run.step += 1
        running = loss if running is None else 0.98 * running + 0.02 * loss
        bar.update(1)
        if run.step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{running:.4f}")
            log_row(run.workdir, phase=run.phase, step=run.step, loss=running,
                    seconds=run.seconds + time.time() - run.started)
        if run.step % cfg.ckpt_every == 0:
            run.checkpoint()
        if run.step % cfg.export_every == 0:
            run.export()
    bar.close()
    if run.step > start_step:  # never export a model that did not train in this run
        run.checkpoint()
        run.export()
    return {"phase": run.phase, **run.info()}
