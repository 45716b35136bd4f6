"""GPU readiness: time a 15-step SD-shaped generation plain, with probing, and with the paper's edit.

    python bench/gpu_check.py                       # SD v1.4's architecture, random weights, 512x512
    python bench/gpu_check.py --model CompVis/stable-diffusion-v1-4   # the real one, if cached
    python bench/gpu_check.py --small --device cpu  # a tiny SD-shaped model: checks the script

Without --model it builds Stable Diffusion v1.x's UNet, VAE and text encoder from their configs
with random weights (no download: the cost of a step does not depend on the weights) and runs
the paper's setting (LMS, 15 steps, 512x512, guidance 7.5) on CUDA in float16 when present.
Probes of the right shapes hold random numbers. It prints medians of --runs runs, interleaved:
  stock      StableDiffusionPipeline.__call__
  loop       probe_core.probing.denoise, nothing captured
  probing    denoise capturing all 16 attn1 layers and reading depth + saliency maps each step
  edit       intervene with the paper's activation edit (Adam on attn1 outputs, steps 0-2)
and the ratios to `stock`, plus peak GPU memory of each.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from probe_core.probing.denoise import denoise
from probe_core.probing.hooks import self_attention_layers
from probe_core.edits.methods import METHOD_DEFAULTS, Edit, intervene
from probe_core.models import PAPER, load_model, pick_device
from probe_core.probing.probes import random_probe_set
from probe_core.probing.collect import settings_for

ROOT = Path(__file__).resolve().parents[1]

PROMPT = "a photo of a red sphere on a wooden table"


def sd_shaped_pipeline(small: bool, device, dtype):
    """SD v1.x's architecture from configs, random weights (small: tiny channels, 64x64)."""
    from diffusers import (AutoencoderKL, LMSDiscreteScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    from probe_core.world.tiny_ldm import build_tokenizer

    torch.manual_seed(0)
    ch, text, vae_ch, size = ((320, 640, 1280, 1280), 768, (128, 256, 512, 512), 512) if not small \
        else ((32, 32, 64, 64), 32, (8, 8, 16, 16), 64)
    unet = UNet2DConditionModel(
        sample_size=size // 8, block_out_channels=ch, cross_attention_dim=text,
        attention_head_dim=8 if not small else 2, layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        norm_num_groups=32 if not small else 8)
    vae = AutoencoderKL(block_out_channels=vae_ch, latent_channels=4, layers_per_block=2,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=size,
                        norm_num_groups=32 if not small else 8)
    words = PROMPT.split()
    tokenizer = build_tokenizer(words, max_length=77)
    encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=text, intermediate_size=4 * text,
        num_hidden_layers=12 if not small else 1, num_attention_heads=12 if not small else 2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    scheduler = LMSDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                     beta_schedule="scaled_linear", steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="hub id or folder (default: SD v1.x shape, random weights)")
    p.add_argument("--small", action="store_true", help="tiny SD-shaped model (script check)")
    p.add_argument("--device")
    p.add_argument("--steps", type=int, default=PAPER["num_inference_steps"])
    p.add_argument("--guidance", type=float, default=PAPER["guidance_scale"])
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()

    device, dtype = pick_device(args.device)
    pipe = load_model(args.model, device=device, torch_dtype=dtype)[0] if args.model else \
        sd_shaped_pipeline(args.small, device, dtype)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    probes = random_probe_set(pipe.unet, settings_for(pipe, "bench", args.steps, args.guidance))
    layers = self_attention_layers(pipe.unet)
    mask = np.zeros((size, size), bool)
    mask[size // 4: size // 2, size // 2: 3 * size // 4] = True
    d = METHOD_DEFAULTS["activation"]
    edit_steps = range(min(d.steps), min(max(d.steps) + 1, args.steps))
    edit = Edit("saliency", mask, "activation", d.strength, edit_steps,
                iterations=d.iterations)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731

    def stock():
        pipe(PROMPT, height=size, width=size, num_inference_steps=args.steps,
             guidance_scale=args.guidance, generator=gen(), output_type="np")

    def loop():
        for _ in denoise(pipe, PROMPT, args.steps, args.guidance, gen(), decode_x0=False):
            pass

    def probing():
        for st in denoise(pipe, PROMPT, args.steps, args.guidance, gen(), decode_x0=False,
                          capture_layers=layers):
            maps = probes.read(st.index, st.activations, tuple(st.latents.shape[-2:]), size)
            assert len(maps) == len(layers)

    def edited():
        intervene(pipe, probes, PROMPT, 0, edit, args.steps, args.guidance)

    cases = {"stock": stock, "loop": loop, "probing": probing, "edit": edited}
    times = {k: [] for k in cases}
    peak = {}
    for fn in cases.values():  # warm-up (kernels, allocator)
        fn()
    for _ in range(args.runs):
        for name, fn in cases.items():
            if str(device).startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t)
            if str(device).startswith("cuda"):
                peak[name] = torch.cuda.max_memory_allocated() / 2 ** 30
    what = args.model or ("SD v1.x shape, random weights" if not args.small else "tiny SD shape")
    print(f"{what}: {size}x{size}, {args.steps} steps, guidance {args.guidance}, "
          f"{type(pipe.scheduler).__name__}, {device} {str(dtype).replace('torch.', '')}, "
          f"median of {args.runs}")
    base = statistics.median(times["stock"])
    for name, ts in times.items():
        med = statistics.median(ts)
        mem = f"  peak {peak[name]:.2f} GiB" if name in peak else ""
        print(f"{name:8s} {med:8.3f} s  {med / base:5.2f}x stock{mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
