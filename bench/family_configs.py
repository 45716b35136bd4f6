"""Every family's pipeline at real size with random weights, built on the device (no downloads).

    pipe, size = real_pipeline("sdxl", "cuda", torch.float16)   # SDXL's UNet and VAE, 1024 px

The denoiser and the VAE have the published models' configurations (a step's cost and a
preview's do not depend on the weights); the text encoders have the real widths but one layer
each (their cost is not a step's) behind a word-level tokenizer. Parameters are made empty and
filled on the device in the run's dtype, so FLUX's 12B parameters never pass through float32.
"""

from __future__ import annotations

import torch
from accelerate import init_empty_weights

from probe_core.sd.random_pipes import WORDS
from probe_core.world.tiny_ldm import build_tokenizer

# the denoisers as published (diffusers config values)
SD2_UNET = dict(sample_size=96, in_channels=4, out_channels=4, layers_per_block=2,
                block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024,
                attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                 cross_attention_dim=2048, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816,
                 use_linear_projection=True)
PIXART = dict(sample_size=64, num_layers=28, num_attention_heads=16, attention_head_dim=72,
              in_channels=4, out_channels=8, patch_size=2, caption_channels=4096,
              cross_attention_dim=1152, norm_type="ada_norm_single",
              activation_fn="gelu-approximate", num_embeds_ada_norm=1000, attention_bias=True,
              norm_elementwise_affine=False, norm_eps=1e-6)
SD3 = dict(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
           num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
           pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192)
FLUX = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
            attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
            pooled_projection_dim=768, guidance_embeds=False, axes_dims_rope=(16, 56, 56))
SIZES = {"sd2-v": 768, "sdxl": 1024, "pixart": 512, "sd3": 1024, "flux": 1024}  # pixels


def filled(cls, config: dict, device, dtype):
    """`cls(**config)` with every parameter drawn on `device` in `dtype` (N(0, 0.02); norms'
    scales 1), never allocated in float32 first."""
    with init_empty_weights():
        module = cls(**config)
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is None:
                continue
            value = torch.empty(param.shape, device=device, dtype=dtype)
            if name == "weight" and param.ndim == 1:
                value.fill_(1.0)
            else:
                value.normal_(0.0, 0.02)
            sub._parameters[name] = torch.nn.Parameter(value, requires_grad=False)
    return module.to(device).eval()


def _vae(latent_channels: int, scaling: float, shift: float | None, device, dtype):
    from diffusers import AutoencoderKL

    flow = shift is not None
    extra = dict(shift_factor=shift, use_quant_conv=False, use_post_quant_conv=False) if flow \
        else {}
    return filled(AutoencoderKL, dict(
        in_channels=3, out_channels=3, latent_channels=latent_channels,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=scaling, **extra), device, dtype)


def _clip(hidden: int, projection: int | None, vocab: int, device, dtype):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=4 * hidden,
                            num_hidden_layers=1, num_attention_heads=hidden // 64,
                            projection_dim=projection or hidden, max_position_embeddings=77,
                            pad_token_id=0, bos_token_id=2, eos_token_id=3)
    cls = CLIPTextModelWithProjection if projection else CLIPTextModel
    return cls(config).to(device, dtype).eval()


def _t5(vocab: int, device, dtype):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab, d_model=4096, d_kv=64, d_ff=10240,
                                   num_layers=1, num_heads=64, pad_token_id=0, eos_token_id=3,
                                   decoder_start_token_id=0)).to(device, dtype).eval()


def _pipeline(name: str, tok, device, dtype):
    import diffusers as d

    v = len(tok)
    if name == "sd2-v":
        return d.StableDiffusionPipeline(
            vae=_vae(4, 0.18215, None, device, dtype), text_encoder=_clip(1024, None, v, device,
                                                                          dtype),
            tokenizer=tok, unet=filled(d.UNet2DConditionModel, SD2_UNET, device, dtype),
            scheduler=d.DDIMScheduler(prediction_type="v_prediction", steps_offset=1),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if name == "sdxl":
        return d.StableDiffusionXLPipeline(
            vae=_vae(4, 0.13025, None, device, dtype), text_encoder=_clip(768, None, v, device,
                                                                          dtype),
            text_encoder_2=_clip(1280, 1280, v, device, dtype), tokenizer=tok, tokenizer_2=tok,
            unet=filled(d.UNet2DConditionModel, SDXL_UNET, device, dtype),
            scheduler=d.EulerDiscreteScheduler(timestep_spacing="leading", steps_offset=1))
    if name == "pixart":
        return d.PixArtAlphaPipeline(
            tokenizer=tok, text_encoder=_t5(v, device, dtype),
            vae=_vae(4, 0.18215, None, device, dtype),
            transformer=filled(d.PixArtTransformer2DModel, PIXART, device, dtype),
            scheduler=d.DPMSolverMultistepScheduler())
    if name == "sd3":
        return d.StableDiffusion3Pipeline(
            transformer=filled(d.SD3Transformer2DModel, SD3, device, dtype),
            scheduler=d.FlowMatchEulerDiscreteScheduler(shift=3.0),
            vae=_vae(16, 1.5305, 0.0609, device, dtype),
            text_encoder=_clip(768, 768, v, device, dtype), tokenizer=tok,
            text_encoder_2=_clip(1280, 1280, v, device, dtype), tokenizer_2=tok,
            text_encoder_3=_t5(v, device, dtype), tokenizer_3=tok)
    return d.FluxPipeline(
        transformer=filled(d.FluxTransformer2DModel, FLUX, device, dtype),
        scheduler=d.FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5,
                                                    max_shift=1.15, shift=3.0),
        vae=_vae(16, 0.3611, 0.1159, device, dtype),
        text_encoder=_clip(768, None, v, device, dtype), tokenizer=tok,
        text_encoder_2=_t5(v, device, dtype), tokenizer_2=tok)


def real_pipeline(name: str, device, dtype):
    """(pipeline of family `name` at real size, image side in pixels)."""
    torch.manual_seed(0)
    pipe = _pipeline(name, build_tokenizer(list(WORDS), max_length=77), device, dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe, SIZES[name]
