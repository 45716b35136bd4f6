"""The tiny-scenes trainer's second phase: the UNet and text encoder, with EMA weights exported as
a pipeline folder.

    >>> run = unet_run(cfg, vae, tokenizer, warm=None, workdir=workdir)   # resumes unet.pt
    >>> summary = fit(run, training_set, Stopper(cfg.max_minutes))   # train_setup.fit
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .tiny_ldm import (build_pipeline, build_scheduler, build_text_encoder, build_unet, build_vae,
                       save_pipeline)
from .train_setup import TrainConfig, atomic_save, ema_update, swap_in_folder, warmed_lr


def diffusion_loss(predict, scheduler, latents, snr_gamma: float,
                   generator: torch.Generator | None = None):
    """Epsilon-prediction loss with optional min-SNR weighting.

    predict(noisy (B, C, h, w), timesteps (B,)) -> predicted noise (B, C, h, w);
    latents: (B, C, h, w), already times the VAE scaling factor."""
    device = latents.device
    # random numbers come from the (CPU) generator, so a run is the same on any device
    noise = torch.randn(latents.shape, generator=generator).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),),
                      generator=generator)
    noisy = scheduler.add_noise(latents, noise, t.to(device))
    pred = predict(noisy, t.to(device))
    per_sample = (pred - noise).pow(2).mean(dim=(1, 2, 3))
    if snr_gamma > 0:
        alphas = scheduler.alphas_cumprod[t]
        snr = alphas / (1 - alphas)
        per_sample = per_sample * (torch.clamp(snr, max=snr_gamma) / snr).to(device)
    return per_sample.mean()


def unet_predictor(unet, text_encoder, input_ids):
    """The UNet's noise prediction for captions `input_ids` (B, L), text encoded on the way."""
    return lambda noisy, t: unet(noisy, t, text_encoder(input_ids)[0]).sample


def export(cfg: TrainConfig, vae, unet, text_encoder, tokenizer, ema_unet, ema_text, info: dict):
    """Save the EMA weights, with the VAE and tokenizer, as a pipeline folder at cfg.out."""
    unet_e = build_unet(cfg.model)
    unet_e.load_state_dict({k: v.cpu() for k, v in ema_unet.items()})
    text_e = build_text_encoder(cfg.model, len(tokenizer.get_vocab()))
    text_e.load_state_dict({k: v.cpu() for k, v in ema_text.items()})
    vae_cpu = build_vae(cfg.model)
    vae_cpu.load_state_dict({k: v.cpu() for k, v in vae.state_dict().items()})
    vae_cpu.register_to_config(scaling_factor=vae.config.scaling_factor)
    pipe = build_pipeline(cfg.model, vae=vae_cpu, unet=unet_e, text_encoder=text_e,
                          tokenizer=tokenizer)
    recipe = {k: v for k, v in asdict(cfg).items()
              if k not in ("workdir", "out", "model", "dit", "share_from")
              and not k.startswith("dit_")}
    swap_in_folder(Path(cfg.out), lambda tmp: save_pipeline(
        pipe, tmp, cfg.model, extra={"training": info, "recipe": recipe}))


@dataclass
class TrainingSet:
    """The UNet's training data: encoded images and their captions' token ids."""
    latents: dict  # "mean", "std": (2, N, 4, h, w) float16 (as rendered, mirrored); "scale"
    ids: torch.Tensor  # (N, L) caption token ids
    empty_ids: torch.Tensor  # (1, L) the empty prompt's token ids


@dataclass
class UNetRun:
    """The UNet phase: what its checkpoint holds, and the finished VAE phase it exports with."""
    cfg: TrainConfig
    workdir: Path
    vae: torch.nn.Module
    tokenizer: object
    unet: torch.nn.Module
    text_encoder: torch.nn.Module
    params: list  # the UNet's then the text encoder's parameters, as the optimiser holds them
    opt: torch.optim.Optimizer
    ema_unet: dict  # name -> EMA tensor of the UNet's state
    ema_text: dict  # name -> EMA tensor of the text encoder's state
    step: int = 0
    seconds: float = 0.0  # UNet training seconds before this call
    warm_start: str | None = None  # what the run began from (init_from), kept across resumes
    vae_step: int = 0
    vae_seconds: float = 0.0
    started: float = 0.0  # time.time() when this call's UNet loop began
    scheduler: object = None  # the training noise schedule (the recipe's snr_shift)
    phase = "unet"

    def info(self) -> dict:
        """The run's summary: train() returns it and the exported folder records it."""
        return {"vae_steps": self.vae_step, "vae_seconds": round(self.vae_seconds),
                "unet_steps": self.step,
                "unet_seconds": round(self.seconds + time.time() - self.started),
                "n_scenes": self.cfg.n_scenes, "warm_start": self.warm_start}

    def checkpoint(self) -> None:
        atomic_save({"unet": self.unet.state_dict(),
                     "text_encoder": self.text_encoder.state_dict(),
                     "ema_unet": self.ema_unet, "ema_text": self.ema_text,
                     "opt": self.opt.state_dict(), "step": self.step,
                     "seconds": self.seconds + time.time() - self.started,
                     "warm_start": self.warm_start, "snr_shift": self.cfg.model.snr_shift},
                    self.workdir / "unet.pt")

    def export(self) -> None:
        export(self.cfg, self.vae, self.unet, self.text_encoder, self.tokenizer, self.ema_unet,
               self.ema_text, self.info())

    def train_step(self, data: TrainingSet, gen: torch.Generator, rng: np.random.Generator):
        return _unet_step(self, data, gen, rng)


def unet_run(cfg: TrainConfig, vae, tokenizer, warm, workdir: Path) -> UNetRun:
    """A new UNet and text encoder (warm-started from `warm`'s, if given), resumed from
    workdir/unet.pt when it exists."""
    unet = build_unet(cfg.model)
    text_encoder = build_text_encoder(cfg.model, len(tokenizer.get_vocab()))
    if warm is not None:
        unet.load_state_dict(warm.unet.state_dict())
        text_encoder.load_state_dict(warm.text_encoder.state_dict())
    unet.to(cfg.device)
    text_encoder.to(cfg.device)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.unet_lr, weight_decay=0.01)
    run = UNetRun(cfg, workdir, vae, tokenizer, unet, text_encoder, params, opt,
                   ema_unet={k: v.detach().clone() for k, v in unet.state_dict().items()},
                   ema_text={k: v.detach().clone() for k, v in text_encoder.state_dict().items()},
                   warm_start=cfg.init_from, scheduler=build_scheduler(cfg.model.snr_shift))
    unet_ckpt = workdir / "unet.pt"
    if unet_ckpt.exists():
        state = torch.load(unet_ckpt, weights_only=True, map_location=cfg.device)
        unet.load_state_dict(state["unet"])
        text_encoder.load_state_dict(state["text_encoder"])
        run.ema_unet, run.ema_text = state["ema_unet"], state["ema_text"]
        opt.load_state_dict(state["opt"])
        run.step, run.seconds = int(state["step"]), float(state["seconds"])
        run.warm_start = state.get("warm_start")  # what the run began from, not this call's flag
        shift = float(state.get("snr_shift", 1.0))
        if shift != cfg.model.snr_shift:
            raise ValueError(f"the checkpoint in {workdir} trains with snr_shift {shift:g}; "
                             f"resume it with --snr-shift {shift:g} (got {cfg.model.snr_shift:g})")
    return run


def sample_latents(latents: dict, batch: int, gen: torch.Generator, rng: np.random.Generator,
                   device) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch of training images, each as rendered or mirrored, drawn from its VAE
    posterior and scaled: (image indices (B,), latents (B, C, h, w) on `device`)."""
    n = latents["mean"].shape[1]
    idx = torch.from_numpy(rng.integers(0, n, batch))
    flip = torch.from_numpy(rng.integers(0, 2, batch))  # 1: the mirrored image
    z = latents["mean"][flip, idx].float() + latents["std"][flip, idx].float() * torch.randn(
        (len(idx), *latents["mean"].shape[2:]), generator=gen)
    return idx, (z * latents["scale"]).to(device)


def _unet_step(run: UNetRun, data: TrainingSet, gen: torch.Generator,
               rng: np.random.Generator) -> float:
    """One optimiser and EMA step on a random batch (mirrored images, dropped captions);
    returns the batch's loss."""
    cfg, step = run.cfg, run.step
    idx, z = sample_latents(data.latents, cfg.unet_batch, gen, rng, cfg.device)
    batch_ids = data.ids[idx].clone()
    drop = torch.rand(len(idx), generator=gen) < cfg.cond_drop
    batch_ids[drop] = data.empty_ids[0]
    warmed_lr(run.opt, cfg.unet_lr, step, cfg.warmup)
    predict = unet_predictor(run.unet, run.text_encoder, batch_ids.to(cfg.device))
    loss = diffusion_loss(predict, run.scheduler, z, cfg.snr_gamma, gen)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.params, 1.0)
    run.opt.step()
    decay = min(cfg.ema_decay, (1 + step) / (10 + step))
    ema_update(run.ema_unet, run.unet, decay)
    ema_update(run.ema_text, run.text_encoder, decay)
    return loss.item()
