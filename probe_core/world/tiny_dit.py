"""A tiny diffusion transformer for the scene world, beside the embedded UNet: a PixArt-style DiT
(cross-attention to the text, AdaLN-single timestep conditioning) sharing the embedded model's
VAE, text encoder, tokenizer and noise schedule, as a stock `PixArtAlphaPipeline`.

    >>> pipe = build_dit_pipeline(load_pipeline(EMBEDDED_MODEL))   # untrained DiT, shared parts
    >>> pipe("a red sphere on a gray plain floor", max_sequence_length=24)   # stock diffusers

The pipeline pads prompts to `max_sequence_length` (120 by default, for T5); the shared CLIP text
encoder has the word-level tokenizer's 24 positions, so calls pass 24 (our loop reads it from the
text encoder: `families.dit.PixArt`). `train-model --backbone dit` trains it (dit_train.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..settings import EMBEDDED_MODEL, shown_path
from .tiny_ldm import load_pipeline


@dataclass(frozen=True)
class TinyDiTConfig:
    """The transformer's size; its latents and text come from the UNet model it sits beside."""
    patch_size: int = 2  # 16x16 latents -> 8x8 tokens, like the UNet's middle level
    num_layers: int = 12
    num_attention_heads: int = 4
    attention_head_dim: int = 32  # width 128, the text encoder's


def build_dit(cfg: TinyDiTConfig, latent_size: int, latent_channels: int, text_hidden: int):
    """A PixArt transformer over (latent_channels, latent_size, latent_size) latents,
    cross-attending to text of width `text_hidden`; epsilon only (no learned variance)."""
    from diffusers import PixArtTransformer2DModel

    return PixArtTransformer2DModel(
        sample_size=latent_size, patch_size=cfg.patch_size, in_channels=latent_channels,
        out_channels=latent_channels, num_layers=cfg.num_layers,
        num_attention_heads=cfg.num_attention_heads, attention_head_dim=cfg.attention_head_dim,
        caption_channels=text_hidden, cross_attention_dim=cfg.num_attention_heads
        * cfg.attention_head_dim, attention_bias=True, activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000, norm_type="ada_norm_single", norm_elementwise_affine=False,
        norm_eps=1e-6)


def build_dit_pipeline(unet_pipe, cfg: TinyDiTConfig = TinyDiTConfig(), transformer=None):
    """A PixArtAlphaPipeline with the UNet pipeline's VAE, text encoder, tokenizer and
    scheduler (shared, not copied) and `transformer` (default: a new untrained one)."""
    from diffusers import PixArtAlphaPipeline

    if transformer is None:
        transformer = build_dit(cfg, unet_pipe.unet.config.sample_size,
                                unet_pipe.unet.config.in_channels,
                                unet_pipe.text_encoder.config.hidden_size)
    pipe = PixArtAlphaPipeline(tokenizer=unet_pipe.tokenizer,
                               text_encoder=unet_pipe.text_encoder, vae=unet_pipe.vae,
                               transformer=transformer, scheduler=unet_pipe.scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_scene_model(folder, shared=EMBEDDED_MODEL):
    """A pipeline folder (the UNet model or a scene DiT), or a folder holding a DiT's
    `transformer/` alone (a training snapshot, float16 on disk), assembled with `shared`'s VAE,
    text encoder, tokenizer and schedule and run in float32."""
    import torch
    from diffusers import PixArtTransformer2DModel

    folder = Path(folder)
    if (folder / "model_index.json").is_file() or not (folder / "transformer").is_dir():
        return load_pipeline(folder)
    transformer = PixArtTransformer2DModel.from_pretrained(
        folder / "transformer", torch_dtype=torch.float16, use_safetensors=True).float()
    return build_dit_pipeline(load_pipeline(shared), transformer=transformer)


def save_training_snapshot(folder, snapshot) -> None:
    """Keep a scene DiT pipeline folder's transformer alone, in float16, at `snapshot`
    (`transformer/` + its tiny_ldm.json, marked as a snapshot): what `load_scene_model` reads
    back with the shared parts, at a quarter of a float32 pipeline's size."""
    import json

    import torch
    from diffusers import PixArtTransformer2DModel

    folder, snapshot = Path(folder), Path(snapshot)
    if not ((folder / "transformer" / "config.json").is_file()
            and (folder / "tiny_ldm.json").is_file()):
        raise FileNotFoundError(f"no scene DiT export at {shown_path(folder)} (needs "
                                "transformer/ and tiny_ldm.json, as train-model writes them)")
    transformer = PixArtTransformer2DModel.from_pretrained(folder / "transformer",
                                                           use_safetensors=True)
    transformer.to(torch.float16).save_pretrained(snapshot / "transformer")
    info = json.loads((folder / "tiny_ldm.json").read_text())
    shares = (info.get("training") or {}).get("shares", EMBEDDED_MODEL.name)
    info["snapshot"] = ("the exported EMA transformer alone, stored in float16; the VAE, text "
                        f"encoder, tokenizer and schedule are those of the model folder '{shares}'")
    (snapshot / "tiny_ldm.json").write_text(json.dumps(info, indent=1) + "\n")
