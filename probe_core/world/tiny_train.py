"""Train the embedded tiny-scenes model: render data, fit the VAE, then the UNet + text encoder.

    >>> cfg = TrainConfig(workdir="/tmp/tiny", out="weights/tiny-scenes", max_minutes=60)
    >>> train(cfg)   # resumable: run it again and it continues where it stopped

Everything is resumable from `workdir`: the rendered data set, the VAE checkpoint, the encoded
latents and the UNet checkpoint (with optimiser and EMA state). The EMA weights are exported as a
diffusers pipeline folder to `out` every `export_every` steps and when training stops, so the
newest model is always loadable. Training seeds start at `first_seed` (1,000,000 by default);
held-out evaluation uses seeds below it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..settings import EMBEDDED_MODEL, SEEDS
from .images import to_tensor
from .scenes import render_chunk
from .tiny_ldm import (TinyLDMConfig, build_pipeline, build_scheduler, build_text_encoder,
                       build_tokenizer, build_unet, build_vae, load_pipeline, save_pipeline)



@dataclass
class TrainConfig:
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


# ----------------------------------------------------------------------------- data

def render_dataset(first_seed: int, n: int, size: int = 64, processes: int = 2,
                   progress: bool = True):
    """Render n scenes with consecutive seeds. Returns images (n, size, size, 3) uint8, captions."""
    seeds = np.arange(first_seed, first_seed + n)
    chunks = np.array_split(seeds, max(1, n // 500))
    jobs = [(c, size) for c in chunks]
    images, captions = [], []
    # spawn, not fork: a forked child of a process that has run torch can hang in OpenMP
    with get_context("spawn").Pool(processes) if processes > 1 else nullcontext() as pool:
        results = pool.imap(render_chunk, jobs) if pool else map(render_chunk, jobs)
        for im, cap in tqdm(results, total=len(jobs), desc="render scenes", disable=not progress):
            images.append(im)
            captions.extend(cap)
    return np.concatenate(images), captions


def cached_dataset(cfg: TrainConfig):
    size = cfg.model.image_size
    name = f"scenes_{cfg.first_seed}_{cfg.n_scenes}" + ("" if size == 64 else f"_{size}px")
    path = Path(cfg.workdir).expanduser() / f"{name}.npz"
    if not path.exists():
        images, captions = render_dataset(cfg.first_seed, cfg.n_scenes, size, cfg.threads)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, captions=np.array(captions))
        os.replace(tmp, path)
    data = np.load(path)
    return data["images"], [str(c) for c in data["captions"]]


# ----------------------------------------------------------------------------- helpers

class _Stopper:
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


def _atomic_save(obj, path: Path):
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _log(workdir: Path, **row):
    with open(workdir / "train_log.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")


def _trim_log(workdir: Path, phase: str, step: int):
    """Drop rows of `phase` past `step`: they were logged after the checkpoint we resume from."""
    path = workdir / "train_log.jsonl"
    if not path.exists():
        return
    rows = [r for r in path.read_text().splitlines() if r.strip()]
    keep = [r for r in rows if not (json.loads(r)["phase"] == phase and json.loads(r)["step"] > step)]
    if len(keep) != len(rows):
        path.write_text("".join(r + "\n" for r in keep))


# ----------------------------------------------------------------------------- VAE

def vae_loss(vae, x: torch.Tensor, kl_weight: float):
    """L1 + MSE reconstruction plus a tiny KL term. x: (B, 3, H, W) in [-1, 1]."""
    post = vae.encode(x).latent_dist
    rec = vae.decode(post.sample()).sample
    rec_loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
    return rec_loss + kl_weight * post.kl().mean(), rec_loss


def train_vae(cfg: TrainConfig, images: np.ndarray, workdir: Path, stopper: _Stopper):
    """Returns the VAE once it has `vae_steps` steps (resuming from workdir/vae.pt)."""
    vae = build_vae(cfg.model).to(cfg.device)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    ckpt = workdir / "vae.pt"
    step, seconds = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True, map_location=cfg.device)
        vae.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, seconds = int(state["step"]), float(state["seconds"])
    _trim_log(workdir, "vae", step)
    rng = np.random.default_rng(cfg.seed + step)
    bar = tqdm(total=cfg.vae_steps, initial=step, desc="vae")
    t0 = time.time()
    while step < cfg.vae_steps and not stopper.stop:
        for g in opt.param_groups:  # cosine decay to a tenth over vae_steps
            g["lr"] = cfg.vae_lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / cfg.vae_steps)))
        x = to_tensor(images[rng.integers(0, len(images), cfg.vae_batch)]).to(cfg.device)
        flip = torch.from_numpy(rng.random(cfg.vae_batch) < 0.5).to(cfg.device)
        x[flip] = x[flip].flip(-1)
        loss, rec = vae_loss(vae, x, cfg.kl_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0:
            psnr = 10 * math.log10(4 / max(F.mse_loss(
                vae.decode(vae.encode(x).latent_dist.mode()).sample, x).item(), 1e-10))
            bar.set_postfix(loss=f"{rec.item():.4f}", psnr=f"{psnr:.1f}")
            _log(workdir, phase="vae", step=step, loss=rec.item(), train_psnr=psnr,
                 seconds=seconds + time.time() - t0)
        if step % cfg.ckpt_every == 0 or step == cfg.vae_steps or stopper.stop:
            _atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
                          "seconds": seconds + time.time() - t0}, ckpt)
    bar.close()
    return vae, step, seconds + time.time() - t0


@torch.no_grad()
def encode_dataset(vae, images: np.ndarray, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image and of its mirror image: two (2, N, 4, h, w)
    float16 tensors, index 0 as rendered, 1 flipped left-right. Flips happen in pixel space:
    a flipped latent is not the latent of a flipped image."""
    means, stds = [], []
    for flip in (False, True):
        m, s = [], []
        for i in tqdm(range(0, len(images), batch), desc=f"encode latents (flip={flip})"):
            x = to_tensor(images[i:i + batch]).to(vae.device)
            post = vae.encode(x.flip(-1) if flip else x).latent_dist
            m.append(post.mean.half().cpu())
            s.append(post.std.half().cpu())
        means.append(torch.cat(m))
        stds.append(torch.cat(s))
    return torch.stack(means), torch.stack(stds)


# ----------------------------------------------------------------------------- UNet

def diffusion_loss(unet, text_encoder, scheduler, latents, input_ids, snr_gamma: float,
                   generator: torch.Generator | None = None):
    """Epsilon-prediction loss with optional min-SNR weighting.

    latents: (B, 4, h, w), already times the VAE scaling factor; input_ids: (B, L)."""
    device = latents.device
    # random numbers come from the (CPU) generator, so a run is the same on any device
    noise = torch.randn(latents.shape, generator=generator).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),),
                      generator=generator)
    noisy = scheduler.add_noise(latents, noise, t.to(device))
    pred = unet(noisy, t.to(device), text_encoder(input_ids)[0]).sample
    per_sample = (pred - noise).pow(2).mean(dim=(1, 2, 3))
    if snr_gamma > 0:
        alphas = scheduler.alphas_cumprod[t]
        snr = alphas / (1 - alphas)
        per_sample = per_sample * (torch.clamp(snr, max=snr_gamma) / snr).to(device)
    return per_sample.mean()


def _ema_update(ema: dict, model: torch.nn.Module, decay: float):
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if p.dtype.is_floating_point:
                ema[name].lerp_(p, 1 - decay)
            else:
                ema[name].copy_(p)


def export(cfg: TrainConfig, vae, unet, text_encoder, tokenizer, ema_unet, ema_text, info: dict):
    unet_e = build_unet(cfg.model)
    unet_e.load_state_dict({k: v.cpu() for k, v in ema_unet.items()})
    text_e = build_text_encoder(cfg.model, len(tokenizer.get_vocab()))
    text_e.load_state_dict({k: v.cpu() for k, v in ema_text.items()})
    vae_cpu = build_vae(cfg.model)
    vae_cpu.load_state_dict({k: v.cpu() for k, v in vae.state_dict().items()})
    vae_cpu.register_to_config(scaling_factor=vae.config.scaling_factor)
    pipe = build_pipeline(cfg.model, vae=vae_cpu, unet=unet_e, text_encoder=text_e,
                          tokenizer=tokenizer)
    recipe = {k: v for k, v in asdict(cfg).items() if k not in ("workdir", "out", "model")}
    # write beside the destination, then swap, so a reader never sees a half-written folder
    out = Path(cfg.out)
    tmp, old = out.with_name(out.name + ".tmp"), out.with_name(out.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_pipeline(pipe, tmp, cfg.model, extra={"training": info, "recipe": recipe})
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) the whole recipe. Returns a summary of what was done."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    stopper = _Stopper(cfg.max_minutes)
    try:
        return _train(cfg, stopper)
    finally:
        stopper.close()
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, stopper: _Stopper) -> dict:
    workdir = Path(cfg.workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(cfg.model.vocabulary, cfg.model.max_length)
    images, captions = cached_dataset(cfg)

    unet_ckpt = workdir / "unet.pt"
    warm = None
    if cfg.init_from and not unet_ckpt.exists():
        # keep the shipped VAE: store it as a finished VAE checkpoint, so resuming reuses it
        warm = load_pipeline(cfg.init_from)
        opt_state = torch.optim.AdamW(warm.vae.parameters()).state_dict()
        _atomic_save({"model": warm.vae.state_dict(), "opt": opt_state, "step": cfg.vae_steps,
                      "seconds": 0.0}, workdir / "vae.pt")
    vae, vae_step, vae_seconds = train_vae(cfg, images, workdir, stopper)
    if vae_step < cfg.vae_steps:
        return {"phase": "vae", "vae_step": vae_step}
    vae.eval().requires_grad_(False)

    lat_path = workdir / f"latents_{cfg.first_seed}_{cfg.n_scenes}.pt"
    if not lat_path.exists():
        mean, std = encode_dataset(vae, images)
        scale = float(1.0 / mean[0].float().std())
        _atomic_save({"mean": mean, "std": std, "scale": scale}, lat_path)
    lat = torch.load(lat_path, weights_only=True)
    vae.register_to_config(scaling_factor=lat["scale"])
    ids = tokenizer(captions, padding="max_length", max_length=cfg.model.max_length,
                    truncation=True, return_tensors="pt").input_ids  # (N, L)
    empty_ids = tokenizer([""], padding="max_length", max_length=cfg.model.max_length,
                          return_tensors="pt").input_ids  # (1, L)

    unet = build_unet(cfg.model)
    text_encoder = build_text_encoder(cfg.model, len(tokenizer.get_vocab()))
    if warm is not None:
        unet.load_state_dict(warm.unet.state_dict())
        text_encoder.load_state_dict(warm.text_encoder.state_dict())
    unet.to(cfg.device)
    text_encoder.to(cfg.device)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
    step, seconds, warm_start = 0, 0.0, cfg.init_from
    ema_unet = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    ema_text = {k: v.detach().clone() for k, v in text_encoder.state_dict().items()}
    if unet_ckpt.exists():
        state = torch.load(unet_ckpt, weights_only=True, map_location=cfg.device)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        ema_unet, ema_text = state["ema_unet"], state["ema_text"]
        opt.load_state_dict(state["opt"])
        step, seconds = int(state["step"]), float(state["seconds"])
        warm_start = state.get("warm_start")  # what the run began from, not this call's flag
        shift = float(state.get("snr_shift", 1.0))
        if shift != cfg.model.snr_shift:
            raise ValueError(f"the checkpoint in {workdir} trains with snr_shift {shift:g}; "
                             f"resume it with --snr-shift {shift:g} (got {cfg.model.snr_shift:g})")
    _trim_log(workdir, "unet", step)
    start_step = step
    scheduler = build_scheduler(cfg.model.snr_shift)
    gen = torch.Generator().manual_seed(cfg.seed + step)
    rng = np.random.default_rng(cfg.seed + step)
    bar = tqdm(total=cfg.unet_steps, initial=step, desc="unet")
    t0 = time.time()
    running = None

    def info():
        return {"vae_steps": vae_step, "vae_seconds": round(vae_seconds),
                "unet_steps": step, "unet_seconds": round(seconds + time.time() - t0),
                "n_scenes": cfg.n_scenes, "warm_start": warm_start}

    def checkpoint():
        _atomic_save({"unet": unet.state_dict(), "text_encoder": text_encoder.state_dict(),
                      "ema_unet": ema_unet, "ema_text": ema_text, "opt": opt.state_dict(),
                      "step": step, "seconds": seconds + time.time() - t0,
                      "warm_start": warm_start, "snr_shift": cfg.model.snr_shift}, unet_ckpt)

    while step < cfg.unet_steps and not stopper.stop:
        idx = torch.from_numpy(rng.integers(0, len(ids), cfg.unet_batch))
        flip = torch.from_numpy(rng.integers(0, 2, cfg.unet_batch))  # 1: the mirrored image
        z = lat["mean"][flip, idx].float() + lat["std"][flip, idx].float() * torch.randn(
            (len(idx), *lat["mean"].shape[2:]), generator=gen)
        z = (z * lat["scale"]).to(cfg.device)
        batch_ids = ids[idx].clone()
        drop = torch.rand(len(idx), generator=gen) < cfg.cond_drop
        batch_ids[drop] = empty_ids[0]
        for g in opt.param_groups:
            g["lr"] = cfg.unet_lr * min(1.0, (step + 1) / cfg.warmup)
        loss = diffusion_loss(unet, text_encoder, scheduler, z, batch_ids.to(cfg.device),
                              cfg.snr_gamma, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        _ema_update(ema_unet, unet, decay)
        _ema_update(ema_text, text_encoder, decay)
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.update(1)
        if step % cfg.log_every == 0:
            bar.set_postfix(loss=f"{running:.4f}")
            _log(workdir, phase="unet", step=step, loss=running,
                 seconds=seconds + time.time() - t0)
        if step % cfg.ckpt_every == 0:
            checkpoint()
        if step % cfg.export_every == 0:
            export(cfg, vae, unet, text_encoder, tokenizer, ema_unet, ema_text, info())
    bar.close()
    if step > start_step:  # never export a model that did not train in this run
        checkpoint()
        export(cfg, vae, unet, text_encoder, tokenizer, ema_unet, ema_text, info())
    return {"phase": "unet", **info()}
