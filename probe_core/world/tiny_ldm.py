"""The embedded tiny-scenes model: diffusers/transformers components built from a config.

    >>> cfg = TinyLDMConfig()
    >>> pipe = build_pipeline(cfg)               # untrained StableDiffusionPipeline
    >>> save_pipeline(pipe, "weights/tiny-scenes")
    >>> pipe = load_pipeline("weights/tiny-scenes")  # == StableDiffusionPipeline.from_pretrained

The pipeline is a plain `StableDiffusionPipeline`: a small AutoencoderKL (64x64 RGB <-> 16x16x4),
a small UNet2DConditionModel with self-attention at 16x16, 8x8 and 4x4, and a small
CLIPTextModel behind a word-level tokenizer over the scene captions' vocabulary.
Training lives in `tiny_train.py`.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..families import family_of
from ..settings import DEFAULT_GUIDANCE
from .scenes import caption_vocabulary

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")  # ids 0..3, in this order
MAX_SHOWN_WORDS = 10  # unknown words named in an error message
TOKENIZER_CLASS = "PreTrainedTokenizerFast"


@dataclass
class TinyLDMConfig:
    image_size: int = 64  # pixels per side
    latent_channels: int = 4
    vae_channels: tuple[int, ...] = (32, 64, 64)  # 3 levels: 64 -> 16 (two downsamples)
    vae_layers_per_block: int = 1
    unet_channels: tuple[int, ...] = (64, 128, 128)  # 16x16, 8x8, 4x4
    unet_layers_per_block: int = 1
    unet_heads: int = 4  # attention heads per self/cross-attention layer
    text_hidden: int = 128  # text encoder width (= UNet cross_attention_dim)
    text_layers: int = 3
    text_heads: int = 4
    max_length: int = 24  # tokens, including <bos> and <eos>
    vocabulary: list[str] = field(default_factory=caption_vocabulary)
    # the noise schedule: SD v1.x's, with every step's signal-to-noise ratio divided by this
    # (1: SD's own; 16 matches SD's 64x64 latents at object scale on our 16x16 ones)
    snr_shift: float = 1.0

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)


# ----------------------------------------------------------------------------- tokenizer

def build_tokenizer(vocabulary: list[str], max_length: int = 24):
    """A word-level `PreTrainedTokenizerFast`: lower-cases, splits on whitespace and
    punctuation, wraps the ids in <bos> ... <eos>; unknown words map to <unk>."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in vocabulary:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>",
        special_tokens=[("<bos>", vocab["<bos>"]), ("<eos>", vocab["<eos>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", model_max_length=max_length,
    )


def prompt_words(prompt: str) -> list[str]:
    """The words a word-level tokenizer sees: lower-cased, punctuation split off."""
    return re.findall(r"\w+|[^\w\s]", prompt.lower())


def unknown_words(tokenizer, prompt: str) -> list[str]:
    """Words of `prompt` outside the tokenizer's vocabulary, in order, without repeats."""
    vocab = tokenizer.get_vocab()
    seen: set[str] = set()
    out: list[str] = []
    for w in prompt_words(prompt):
        if w not in vocab and w not in seen:
            seen.add(w)
            out.append(w)
    return out


class UnknownWordsError(ValueError):
    """A prompt used words the word-level tokenizer cannot represent."""


def is_word_level(tokenizer) -> bool:
    """True for the embedded model's word-level tokenizer (not for CLIP's BPE)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and type(backend.model).__name__ == "WordLevel"


def check_prompt(tokenizer, prompt: str, strict: bool = True) -> None:
    """Raise (or warn, with strict=False) naming unknown words and listing the vocabulary.

    Unknown words only for word-level tokenizers (the embedded model); any tokenizer gets the
    length check. An empty prompt is fine (it is the unconditional prompt)."""
    def fail(error, msg):
        if strict:
            raise error(msg)
        warnings.warn(msg, stacklevel=3)

    word_level = is_word_level(tokenizer)
    bad = unknown_words(tokenizer, prompt) if word_level else []
    if bad:
        words = sorted(w for w in tokenizer.get_vocab() if w not in SPECIAL_TOKENS)
        shown = [w[:30] for w in bad[:MAX_SHOWN_WORDS]]  # a bounded message, whatever the prompt
        more = f" and {len(bad) - len(shown)} more" if len(bad) > len(shown) else ""
        fail(UnknownWordsError, f"unknown words {shown}{more}: this model knows only "
                                f"{len(words)} words: " + ", ".join(words))
    n = len(prompt_words(prompt)) + 2 if word_level else len(tokenizer(prompt).input_ids)
    if n > tokenizer.model_max_length:
        fail(ValueError, f"prompt is {n} tokens long; this model reads at most "
                         f"{tokenizer.model_max_length} (including start and end tokens)")


# ----------------------------------------------------------------------------- components

def build_vae(cfg: TinyLDMConfig):
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=cfg.latent_channels,
        down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=tuple(cfg.vae_channels), layers_per_block=cfg.vae_layers_per_block,
        norm_num_groups=16, sample_size=cfg.image_size, scaling_factor=1.0,
    )


def build_unet(cfg: TinyLDMConfig):
    """Cross-attention blocks at every level but the last, like SD v1.x (whose down_blocks.3
    and up_blocks.0 have no attention), plus the attention mid block."""
    from diffusers import UNet2DConditionModel

    n = len(cfg.unet_channels)
    return UNet2DConditionModel(
        sample_size=cfg.latent_size, in_channels=cfg.latent_channels,
        out_channels=cfg.latent_channels,
        down_block_types=("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1),
        block_out_channels=tuple(cfg.unet_channels), layers_per_block=cfg.unet_layers_per_block,
        cross_attention_dim=cfg.text_hidden, attention_head_dim=cfg.unet_heads,
        norm_num_groups=32,
    )


def build_text_encoder(cfg: TinyLDMConfig, vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=cfg.text_hidden, intermediate_size=4 * cfg.text_hidden,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_length, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    ))


def shifted_betas(snr_shift: float, beta_start: float = 0.00085, beta_end: float = 0.012,
                  num_train_timesteps: int = 1000) -> torch.Tensor:
    """Betas (T,) of SD's scaled_linear schedule with each step's SNR divided by `snr_shift`.

    SNR(t) = a(t) / (1 - a(t)) with a the cumulative product of (1 - beta); dividing it by s
    gives a'(t) = a(t) / (a(t) + s (1 - a(t))), and beta'(t) = 1 - a'(t) / a'(t - 1). At the same
    noise level a coarser latent keeps more of its layout (averaging k x k latents divides the
    noise by k), so s = k^2 puts a latent k times smaller than SD's in SD's regime (the
    resolution shift of Hoogeboom et al., 2023)."""
    if not snr_shift > 0:
        raise ValueError(f"snr_shift must be positive, got {snr_shift!r}")
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps,
                           dtype=torch.float64) ** 2
    a = torch.cumprod(1 - betas, 0)
    shifted = a / (a + snr_shift * (1 - a))
    return 1 - shifted / torch.cat([torch.ones(1, dtype=torch.float64), shifted[:-1]])


def build_scheduler(snr_shift: float = 1.0):
    """SD v1.x's noise schedule (scaled_linear, 0.00085-0.012, 1000 steps) with DDIM sampling;
    with `snr_shift` != 1 the same schedule with every SNR divided by it (see shifted_betas)."""
    from diffusers import DDIMScheduler

    common = dict(num_train_timesteps=1000, clip_sample=False, set_alpha_to_one=False,
                  steps_offset=1, prediction_type="epsilon")
    if snr_shift == 1.0:
        return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                             **common)
    return DDIMScheduler(trained_betas=shifted_betas(snr_shift).tolist(), **common)


def build_pipeline(cfg: TinyLDMConfig | None = None, vae=None, unet=None, text_encoder=None,
                   tokenizer=None):
    """Assemble a `StableDiffusionPipeline` from given or freshly built (untrained) parts."""
    from diffusers import StableDiffusionPipeline

    cfg = cfg or TinyLDMConfig()
    tokenizer = tokenizer or build_tokenizer(cfg.vocabulary, cfg.max_length)
    return StableDiffusionPipeline(
        vae=vae or build_vae(cfg),
        text_encoder=text_encoder or build_text_encoder(cfg, len(tokenizer.get_vocab())),
        tokenizer=tokenizer,
        unet=unet or build_unet(cfg),
        scheduler=build_scheduler(cfg.snr_shift),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def save_pipeline(pipe, folder: str | Path, cfg: TinyLDMConfig | None = None,
                  extra: dict | None = None) -> Path:
    """`save_pretrained` (safetensors), then name the tokenizer class so that
    transformers 5 reloads it (it writes `TokenizersBackend`, which `from_pretrained` rejects)."""
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    index = folder / "model_index.json"
    meta = json.loads(index.read_text())
    meta["tokenizer"] = ["transformers", TOKENIZER_CLASS]
    index.write_text(json.dumps(meta, indent=2) + "\n")
    tok_cfg = folder / "tokenizer" / "tokenizer_config.json"
    tc = json.loads(tok_cfg.read_text())
    tc["tokenizer_class"] = TOKENIZER_CLASS
    tok_cfg.write_text(json.dumps(tc, indent=2) + "\n")
    if cfg is not None or extra:
        info = {"config": asdict(cfg) if cfg else None, **(extra or {})}
        (folder / "tiny_ldm.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder


def saved_config(folder: str | Path) -> TinyLDMConfig:
    """The TinyLDMConfig a folder `train-model` made was trained with (its tiny_ldm.json)."""
    saved = json.loads((Path(folder) / "tiny_ldm.json").read_text())["config"]
    return TinyLDMConfig(**{k: tuple(v) if k.endswith("_channels") and isinstance(v, list) else v
                            for k, v in saved.items()})


def load_pipeline(folder: str | Path, torch_dtype: torch.dtype = torch.float32):
    """Load a saved tiny pipeline (the UNet model's StableDiffusionPipeline or the scene DiT's
    PixArtAlphaPipeline) as its stock class loads (works with HF_HUB_OFFLINE=1)."""
    from diffusers import DiffusionPipeline

    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise FileNotFoundError(f"no diffusers pipeline at {folder} (model_index.json missing)")
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=torch_dtype, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, prompt: str, seed: int = 0, num_inference_steps: int = 25,
             guidance_scale: float = DEFAULT_GUIDANCE, strict: bool = True):
    """One image from a word-level pipeline after checking the prompt's words.

    Returns a (H, W, 3) uint8 array. Same seed, same image."""
    import numpy as np

    check_prompt(pipe.tokenizer, prompt, strict=strict)
    family = family_of(pipe)
    height, width = family.default_size(pipe)
    out = pipe(prompt, height=height, width=width, num_inference_steps=num_inference_steps,
               guidance_scale=guidance_scale, generator=torch.Generator().manual_seed(seed),
               output_type="np", **family.stock_arguments(pipe))
    return (out.images[0] * 255 + 0.5).astype(np.uint8)
