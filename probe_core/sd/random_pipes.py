"""Untrained pipelines of every family, built from configs (no downloads): for tests of the
step loop, probes and edits on each family, and for the benchmark at real sizes.

    >>> pipe = random_pipeline("sdxl")                 # tiny StableDiffusionXLPipeline, 64 px
    >>> pipe.save_pretrained(folder)                   # loads back with `load_model(folder)`

Text encoders sit behind a word-level tokenizer (`build_tokenizer`) over a small vocabulary;
every family keeps its stock components' classes, so the stock pipeline runs them.
"""

from __future__ import annotations

import torch

from ..world.tiny_ldm import build_tokenizer

WORDS = ("a red blue green sphere box cylinder small large on gray checkered floor and "
         "the photo of cat dog").split()
IMAGE_SIZE = 64  # pixels, every tiny family (latents 8x8 with the SD-style VAE)
FAMILY_NAMES = ("sd2-v", "sdxl", "pixart", "sd3", "flux")


def _clip(hidden: int, projection: bool, vocab: int):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                            num_hidden_layers=2, num_attention_heads=2, projection_dim=hidden,
                            max_position_embeddings=32, pad_token_id=0, bos_token_id=2,
                            eos_token_id=3)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _t5(d_model: int, vocab: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab, d_model=d_model, d_kv=8, d_ff=2 * d_model,
                                   num_layers=2, num_heads=2, pad_token_id=0, eos_token_id=3,
                                   decoder_start_token_id=0))


def _vae(latent_channels: int = 4, flow: bool = False):
    """A two-level VAE (scale factor 2... 8 with more levels); flow models' VAEs carry a shift."""
    from diffusers import AutoencoderKL

    extra = dict(shift_factor=0.0609, scaling_factor=1.5035, use_quant_conv=False,
                 use_post_quant_conv=False) if flow else {}
    return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=latent_channels,
                         block_out_channels=(8, 8, 16, 16), layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
                         sample_size=IMAGE_SIZE, **extra)


def _sd2_v(tokenizer):
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=8)
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              prediction_type="v_prediction", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    return StableDiffusionPipeline(vae=_vae(), text_encoder=_clip(32, False, len(
        tokenizer)), tokenizer=tokenizer, unet=unet, scheduler=scheduler, safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)


def _sdxl(tokenizer):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=6 * 8 + 16,
        cross_attention_dim=16 + 16, norm_num_groups=8)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    vocab = len(tokenizer)
    return StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=_clip(16, False, vocab), text_encoder_2=_clip(16, True, vocab),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=scheduler)


def _pixart(tokenizer):
    from diffusers import DDIMScheduler, PixArtAlphaPipeline, PixArtTransformer2DModel

    transformer = PixArtTransformer2DModel(
        sample_size=8, num_layers=2, patch_size=2, attention_head_dim=8, num_attention_heads=2,
        caption_channels=32, in_channels=4, cross_attention_dim=16, out_channels=8,
        attention_bias=True, activation_fn="gelu-approximate", num_embeds_ada_norm=1000,
        norm_type="ada_norm_single", norm_elementwise_affine=False, norm_eps=1e-6)
    return PixArtAlphaPipeline(tokenizer=tokenizer, text_encoder=_t5(32, len(tokenizer)),
                               vae=_vae(), transformer=transformer, scheduler=DDIMScheduler())


def _sd3(tokenizer):
    from diffusers import (FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel,
                           StableDiffusion3Pipeline)

    vocab = len(tokenizer)
    transformer = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
        num_attention_heads=2, caption_projection_dim=16, joint_attention_dim=32,
        pooled_projection_dim=32, out_channels=4)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=_vae(flow=True), text_encoder=_clip(16, True, vocab), tokenizer=tokenizer,
        text_encoder_2=_clip(16, True, vocab), tokenizer_2=tokenizer,
        text_encoder_3=_t5(32, vocab), tokenizer_3=tokenizer)


def _flux(tokenizer):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    vocab = len(tokenizer)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, out_channels=16, num_layers=2, num_single_layers=2,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
        pooled_projection_dim=16, guidance_embeds=False, axes_dims_rope=(4, 4, 8))
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5,
                                                max_shift=1.15)
    pipe = FluxPipeline(scheduler=scheduler, vae=_vae(flow=True),
                        text_encoder=_clip(16, False, vocab), tokenizer=tokenizer,
                        text_encoder_2=_t5(32, vocab), tokenizer_2=tokenizer,
                        transformer=transformer)
    # FluxPipeline makes 1024 px unless told; this one's default is IMAGE_SIZE (in memory
    # only: a saved and reloaded copy makes 1024 px again)
    pipe.default_sample_size = IMAGE_SIZE // pipe.vae_scale_factor
    return pipe


_BUILDERS = {"sd2-v": _sd2_v, "sdxl": _sdxl, "pixart": _pixart, "sd3": _sd3, "flux": _flux}


def random_pipeline(name: str, seed: int = 0):
    """An untrained tiny pipeline of family `name` (FAMILY_NAMES), float32 on the CPU, with
    in eval mode, its progress bar off; the same weights for the same seed."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown family {name!r}; families: {', '.join(FAMILY_NAMES)}")
    torch.manual_seed(seed)
    pipe = _BUILDERS[name](build_tokenizer(list(WORDS), max_length=16))
    for part in pipe.components.values():
        if isinstance(part, torch.nn.Module):
            part.eval()  # built modules start in training mode: T5's dropout would be on
    pipe.set_progress_bar_config(disable=True)
    return pipe
