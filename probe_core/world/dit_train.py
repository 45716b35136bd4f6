"""The scene DiT's training phase: a PixArt-style transformer learns to denoise the embedded
UNet model's latents, conditioned on its text encoder; the VAE, text encoder, tokenizer and noise
schedule are that model's, frozen, and are exported with the transformer as a stock
`PixArtAlphaPipeline` folder.

    >>> run = dit_run(cfg, shared=load_pipeline(cfg.share_from), workdir=workdir)  # resumes dit.pt
    >>> data = dit_training_set(run, latents_set)   # captions encoded as PixArt encodes them
    >>> summary = fit(run, data, Stopper(cfg.max_minutes))   # train_setup.fit

The captions go through the pipeline's own `encode_prompt` (padded to the text encoder's length,
with an attention mask the transformer's cross-attention uses), so training sees exactly the
text conditioning a generation gets, the empty prompt included.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .tiny_dit import build_dit, build_dit_pipeline
from .tiny_ldm import save_pipeline
from .train_setup import TrainConfig, atomic_save, ema_update, swap_in_folder, warmed_lr
from .unet_train import TrainingSet, diffusion_loss, sample_latents


@dataclass
class DiTTrainingSet:
    """The DiT's training data: the UNet's training set's latents and the captions as PixArt
    encodes them."""
    latents: dict  # "mean", "std": (2, N, 4, h, w) float16 (as rendered, mirrored); "scale"
    embeds: torch.Tensor  # (N, L, D) float16 text encoder states of every caption
    mask: torch.Tensor  # (N, L) their attention masks (1 = a word, 0 = padding)
    empty_embeds: torch.Tensor  # (1, L, D) float16, the empty prompt's (classifier-free guidance)
    empty_mask: torch.Tensor  # (1, L)


@dataclass
class DiTRun:
    """The DiT phase: the transformer in training, its EMA weights and optimiser, and the shared
    parts it is exported with (`pipe`: a PixArtAlphaPipeline around the transformer)."""
    cfg: TrainConfig
    workdir: Path
    pipe: object  # PixArtAlphaPipeline: shared VAE, text encoder, tokenizer, scheduler
    opt: torch.optim.Optimizer
    ema: dict  # name -> EMA tensor of the transformer's state
    step: int = 0
    seconds: float = 0.0  # training seconds before this call
    started: float = 0.0  # time.time() when this call's loop began
    warm_start: dict | None = None  # the exported model it began from: its folder and steps
    lr_history: list = field(default_factory=list)  # {"from_step", "dit_lr"}, one per change
    phase = "dit"

    @property
    def transformer(self):
        return self.pipe.transformer

    @property
    def scheduler(self):
        return self.pipe.scheduler

    def info(self) -> dict:
        """The run's summary: fit() returns it and the exported folder records it."""
        return {"dit_steps": self.step,
                "dit_seconds": round(self.seconds + time.time() - self.started),
                "n_scenes": self.cfg.n_scenes, "shares": Path(self.cfg.share_from).name,
                "warm_start": self.warm_start, "learning_rate_history": self.lr_history}

    def checkpoint(self) -> None:
        atomic_save({"transformer": self.transformer.state_dict(), "ema": self.ema,
                     "opt": self.opt.state_dict(), "step": self.step,
                     "seconds": self.seconds + time.time() - self.started,
                     "dit": asdict(self.cfg.dit), "warm_start": self.warm_start,
                     "lr_history": self.lr_history},
                    self.workdir / "dit.pt")

    def export(self) -> None:
        """Save the EMA transformer with the shared parts as a pipeline folder at cfg.out."""
        cfg = self.cfg
        shape = self.transformer.config
        transformer = build_dit(cfg.dit, shape.sample_size, shape.in_channels,
                                shape.caption_channels)
        transformer.load_state_dict({k: v.cpu() for k, v in self.ema.items()})
        pipe = build_dit_pipeline(self.pipe, cfg.dit, transformer=transformer)
        recipe = {"dit": asdict(cfg.dit), "n_scenes": cfg.n_scenes, "first_seed": cfg.first_seed,
                  "dit_batch": cfg.dit_batch, "dit_lr": cfg.dit_lr,
                  "dit_lr_final": cfg.dit_lr_final, "warmup": cfg.warmup,
                  "ema_decay": cfg.ema_decay, "cond_drop": cfg.cond_drop,
                  "snr_gamma": cfg.snr_gamma, "seed": cfg.seed, "max_minutes": cfg.max_minutes,
                  "threads": cfg.threads}
        swap_in_folder(Path(cfg.out), lambda tmp: save_pipeline(
            pipe, tmp, cfg.model, extra={"backbone": "dit", "training": self.info(),
                                         "recipe": recipe}))

    def train_step(self, data: DiTTrainingSet, gen: torch.Generator,
                   rng: np.random.Generator) -> float:
        return _dit_step(self, data, gen, rng)


def dit_run(cfg: TrainConfig, shared, workdir: Path) -> DiTRun:
    """A new transformer beside `shared` (the UNet pipeline whose parts it uses), resumed from
    workdir/dit.pt when it exists, else warm-started from cfg.init_from's (a scene DiT folder;
    a fresh optimiser). A new one's output layer starts at zero: the first prediction is
    'no noise', as DiT's own initialisation has it."""
    shared.vae.requires_grad_(False)
    shared.text_encoder.requires_grad_(False)
    latent = shared.unet.config.sample_size
    transformer = build_dit(cfg.dit, latent, shared.vae.config.latent_channels,
                            shared.text_encoder.config.hidden_size)
    torch.nn.init.zeros_(transformer.proj_out.weight)
    torch.nn.init.zeros_(transformer.proj_out.bias)
    transformer.to(cfg.device)
    pipe = build_dit_pipeline(shared, cfg.dit, transformer=transformer)
    opt = torch.optim.AdamW(transformer.parameters(), lr=cfg.dit_lr, weight_decay=0.01)
    run = DiTRun(cfg, workdir, pipe, opt,
                 ema={k: v.detach().clone() for k, v in transformer.state_dict().items()})
    ckpt = workdir / "dit.pt"
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True, map_location=cfg.device)
        if state["dit"] != asdict(cfg.dit):
            raise ValueError(f"the checkpoint in {workdir} trains a DiT of {state['dit']}; "
                             f"resume it with that size (got {asdict(cfg.dit)})")
        transformer.load_state_dict(state["transformer"])
        run.ema = state["ema"]
        opt.load_state_dict(state["opt"])
        run.step, run.seconds = int(state["step"]), float(state["seconds"])
        run.warm_start = state.get("warm_start")  # what the run began from, not this call's flag
        run.lr_history = state.get("lr_history", [])  # older checkpoints did not keep one
    elif cfg.init_from:
        run.warm_start = _warm_start(transformer, cfg)
        run.ema = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    schedule = {"dit_lr": cfg.dit_lr}
    if cfg.dit_lr_final is not None:
        schedule.update(to_lr=cfg.dit_lr_final, to_step=cfg.dit_steps)
    if not run.lr_history or {k: v for k, v in run.lr_history[-1].items()
                              if k != "from_step"} != schedule:
        run.lr_history.append({"from_step": run.step, **schedule})
    return run


def scheduled_lr(run: DiTRun) -> float:
    """The learning rate at run.step: the last schedule's dit_lr, or its cosine decay from
    dit_lr at its first step to to_lr at to_step."""
    schedule = run.lr_history[-1]
    if "to_lr" not in schedule:
        return schedule["dit_lr"]
    start, end = schedule["from_step"], schedule["to_step"]
    done = min(1.0, max(0.0, (run.step - start) / max(1, end - start)))
    return schedule["to_lr"] + (schedule["dit_lr"] - schedule["to_lr"]) * 0.5 * (
        1 + math.cos(math.pi * done))


def _warm_start(transformer, cfg: TrainConfig) -> dict:
    """Load cfg.init_from's transformer (exported EMA weights) into `transformer`; returns
    what it began from (the folder's name and the steps it had trained)."""
    from diffusers import PixArtTransformer2DModel

    warm = PixArtTransformer2DModel.from_pretrained(Path(cfg.init_from) / "transformer",
                                                    use_safetensors=True)
    if warm.config.num_layers != cfg.dit.num_layers or warm.config.patch_size != cfg.dit.patch_size:
        raise ValueError(f"{cfg.init_from} holds a DiT of {warm.config.num_layers} layers and "
                         f"patch {warm.config.patch_size}; train it with that size")
    transformer.load_state_dict(warm.state_dict())
    info = Path(cfg.init_from) / "tiny_ldm.json"
    trained = json.loads(info.read_text()).get("training", {}) if info.is_file() else {}
    return {"from": Path(cfg.init_from).name, "dit_steps": trained.get("dit_steps"),
            "dit_seconds": trained.get("dit_seconds")}


@torch.no_grad()
def dit_training_set(run: DiTRun, data: TrainingSet, captions: list[str],
                     batch: int = 2048) -> DiTTrainingSet:
    """The UNet's training set with every caption (and the empty prompt) encoded by the
    pipeline's own `encode_prompt`, at the text encoder's length."""
    pipe, length = run.pipe, run.cfg.model.max_length
    embeds, masks = [], []
    for i in range(0, len(captions), batch):
        e, m, _, _ = pipe.encode_prompt(captions[i:i + batch], do_classifier_free_guidance=False,
                                        device=torch.device("cpu"), clean_caption=False,
                                        max_sequence_length=length)
        embeds.append(e.half())
        masks.append(m)
    empty, empty_mask, _, _ = pipe.encode_prompt([""], do_classifier_free_guidance=False,
                                                 device=torch.device("cpu"), clean_caption=False,
                                                 max_sequence_length=length)
    return DiTTrainingSet(data.latents, torch.cat(embeds), torch.cat(masks), empty.half(),
                          empty_mask)


def dit_predictor(transformer, embeds: torch.Tensor, mask: torch.Tensor):
    """The transformer's noise prediction for text states `embeds` (B, L, D) with `mask` (B, L),
    called as PixArtAlphaPipeline calls it (no size conditioning at this resolution)."""
    def predict(noisy, t):
        return transformer(noisy, encoder_hidden_states=embeds, encoder_attention_mask=mask,
                           timestep=t, added_cond_kwargs={"resolution": None,
                                                          "aspect_ratio": None}).sample
    return predict


def _dit_step(run: DiTRun, data: DiTTrainingSet, gen: torch.Generator,
              rng: np.random.Generator) -> float:
    """One optimiser and EMA step on a random batch (mirrored images, dropped captions); the
    same sampling of images, flips, noise and dropped captions as the UNet's step."""
    cfg, step = run.cfg, run.step
    idx, z = sample_latents(data.latents, cfg.dit_batch, gen, rng, cfg.device)
    embeds, mask = data.embeds[idx].float(), data.mask[idx].clone()
    drop = torch.rand(len(idx), generator=gen) < cfg.cond_drop
    embeds[drop], mask[drop] = data.empty_embeds[0].float(), data.empty_mask[0]
    warmed_lr(run.opt, scheduled_lr(run), step, cfg.warmup)
    predict = dit_predictor(run.transformer, embeds.to(cfg.device), mask.to(cfg.device))
    loss = diffusion_loss(predict, run.scheduler, z, cfg.snr_gamma, gen)
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.transformer.parameters(), 1.0)
    run.opt.step()
    ema_update(run.ema, run.transformer, min(cfg.ema_decay, (1 + step) / (10 + step)))
    return loss.item()
