"""Train the embedded tiny-scenes model: render data, fit the VAE, then the UNet + text encoder.

    >>> cfg = TrainConfig(workdir="/tmp/tiny", out="weights/tiny-scenes", max_minutes=60)
    >>> train(cfg)   # resumable: run it again and it continues where it stopped

Everything is resumable from `workdir`: the rendered data set, the VAE checkpoint, the encoded
latents and the UNet checkpoint (with optimiser and EMA state). The EMA weights are exported as a
diffusers pipeline folder to `out` every `export_every` steps and when training stops, so the
newest model is always loadable. Training seeds start at `first_seed` (1,000,000 by default);
held-out evaluation uses seeds below it. The recipe and what the phases share are in
train_setup.py; the UNet phase, in unet_train.py.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .images import to_tensor
from .scenes import render_chunk
from .tiny_ldm import build_tokenizer, build_vae, load_pipeline, saved_config
from .train_setup import Stopper, TrainConfig, atomic_save, fit, log_row, trim_log
from .dit_train import dit_run, dit_training_set
from .unet_train import TrainingSet, unet_run


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


# ----------------------------------------------------------------------------- VAE

def vae_loss(vae, x: torch.Tensor, kl_weight: float):
    """L1 + MSE reconstruction plus a tiny KL term. x: (B, 3, H, W) in [-1, 1]."""
    post = vae.encode(x).latent_dist
    rec = vae.decode(post.sample()).sample
    rec_loss = F.l1_loss(rec, x) + F.mse_loss(rec, x)
    return rec_loss + kl_weight * post.kl().mean(), rec_loss


def train_vae(cfg: TrainConfig, images: np.ndarray, workdir: Path, stopper: Stopper):
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
    trim_log(workdir, "vae", step)
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
            log_row(workdir, phase="vae", step=step, loss=rec.item(), train_psnr=psnr,
                    seconds=seconds + time.time() - t0)
        if step % cfg.ckpt_every == 0 or step == cfg.vae_steps or stopper.stop:
            atomic_save({"model": vae.state_dict(), "opt": opt.state_dict(), "step": step,
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


# ----------------------------------------------------------------------------- training

def train(cfg: TrainConfig) -> dict:
    """Run (or resume) the whole recipe. Returns a summary of what was done."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    stopper = Stopper(cfg.max_minutes)
    try:
        return _train(cfg, stopper)
    finally:
        stopper.close()
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, stopper: Stopper) -> dict:
    workdir = Path(cfg.workdir).expanduser()
    workdir.mkdir(parents=True, exist_ok=True)
    if cfg.backbone == "dit":
        return _train_dit(cfg, workdir, stopper)
    tokenizer = build_tokenizer(cfg.model.vocabulary, cfg.model.max_length)
    images, captions = cached_dataset(cfg)
    warm = _warm_start(cfg, workdir)
    vae, vae_step, vae_seconds = train_vae(cfg, images, workdir, stopper)
    if vae_step < cfg.vae_steps:
        return {"phase": "vae", "vae_step": vae_step}
    vae.eval().requires_grad_(False)
    data = _encoded_training_set(cfg, vae, images, captions, tokenizer, workdir)
    run = unet_run(cfg, vae, tokenizer, warm, workdir)
    run.vae_step, run.vae_seconds = vae_step, vae_seconds
    return fit(run, data, stopper)


def _train_dit(cfg: TrainConfig, workdir: Path, stopper: Stopper) -> dict:
    """The DiT beside cfg.share_from's UNet model: its VAE encodes the same rendered scenes, its
    text encoder the captions; neither is trained."""
    shared = load_pipeline(cfg.share_from)
    shared.vae.to(cfg.device).eval()
    cfg.model = saved_config(cfg.share_from)  # its image size, vocabulary, text length
    images, captions = cached_dataset(cfg)
    scale = shared.vae.config.scaling_factor
    data = _encoded_training_set(cfg, shared.vae, images, captions, shared.tokenizer, workdir)
    shared.vae.register_to_config(scaling_factor=scale)  # the shipped VAE's, not a re-estimate
    data.latents["scale"] = scale
    run = dit_run(cfg, shared, workdir)
    return fit(run, dit_training_set(run, data, captions), stopper)


def _warm_start(cfg: TrainConfig, workdir: Path):
    """cfg.init_from's pipeline when a new UNet run starts from it, else None. Its VAE is kept:
    stored as a finished VAE checkpoint, so resuming reuses it."""
    if not cfg.init_from or (workdir / "unet.pt").exists():
        return None
    warm = load_pipeline(cfg.init_from)
    opt_state = torch.optim.AdamW(warm.vae.parameters()).state_dict()
    atomic_save({"model": warm.vae.state_dict(), "opt": opt_state, "step": cfg.vae_steps,
                 "seconds": 0.0}, workdir / "vae.pt")
    return warm


def _encoded_training_set(cfg: TrainConfig, vae, images: np.ndarray, captions: list[str],
                          tokenizer, workdir: Path) -> TrainingSet:
    """Encode the images once (cached in workdir), set the VAE's scaling factor from the
    latents' spread, and tokenize the captions."""
    lat_path = workdir / f"latents_{cfg.first_seed}_{cfg.n_scenes}.pt"
    if not lat_path.exists():
        mean, std = encode_dataset(vae, images)
        scale = float(1.0 / mean[0].float().std())
        atomic_save({"mean": mean, "std": std, "scale": scale}, lat_path)
    lat = torch.load(lat_path, weights_only=True)
    vae.register_to_config(scaling_factor=lat["scale"])
    ids = tokenizer(captions, padding="max_length", max_length=cfg.model.max_length,
                    truncation=True, return_tensors="pt").input_ids  # (N, L)
    empty_ids = tokenizer([""], padding="max_length", max_length=cfg.model.max_length,
                          return_tensors="pt").input_ids  # (1, L)
    return TrainingSet(lat, ids, empty_ids)


