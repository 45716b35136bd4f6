"""The scene DiT's speed beside the embedded UNet model's: 25 steps, 64x64, batch 1, guidance on,
the two models' generations interleaved in one run so that they see the same machine.

    python bench/backbone_speed.py                 # prints a table, writes the JSON below
    python bench/backbone_speed.py --runs 11 --threads 2

Each model is timed two ways that give the same image (tested): its stock pipeline call
(`StableDiffusionPipeline` / `PixArtAlphaPipeline`) and probe_core's loop (`denoise` + decode,
what the app runs). The figure is the ratio of medians (DiT / UNet); the target is <= 1.5.
Results go to bench/results/backbone_speed.json (or --out).
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from probe_core.probing.denoise import DenoiseSettings, decode_latents, denoise
from probe_core.settings import EMBEDDED_DIT, EMBEDDED_MODEL
from probe_core.world.tiny_dit import load_scene_model
from probe_core.world.tiny_ldm import DEFAULT_GUIDANCE, generate, load_pipeline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from probe_overhead import shown  # noqa: E402  (results name folders relative to the checkout)

PROMPT = "a large red sphere and a small blue box on a gray checkered floor"


def timers(pipe, steps: int) -> dict:
    """name -> a function of a seed making one image (stock call, our loop)."""
    def stock(seed):
        generate(pipe, PROMPT, seed=seed, num_inference_steps=steps)

    def ours(seed):
        for state in denoise(pipe, PROMPT, DenoiseSettings(steps, DEFAULT_GUIDANCE,
                                                           decode_x0=False),
                             torch.Generator().manual_seed(seed)):
            pass
        decode_latents(pipe, state.latents)

    return {"stock": stock, "denoise": ours}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--unet", default=str(EMBEDDED_MODEL))
    p.add_argument("--dit", default=str(EMBEDDED_DIT))
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "backbone_speed.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    models = {"unet": timers(load_pipeline(args.unet), args.steps),
              "dit": timers(load_scene_model(args.dit), args.steps)}
    for fns in models.values():  # warm-up
        for fn in fns.values():
            fn(0)
    times = {(m, way): [] for m in models for way in ("stock", "denoise")}
    for r in range(args.runs):
        for m, fns in models.items():
            for way, fn in fns.items():
                t = time.perf_counter()
                fn(r)
                times[(m, way)].append(time.perf_counter() - t)
    median = {f"{m}_{way}_s": statistics.median(v) for (m, way), v in times.items()}
    result = {"unet": shown(args.unet), "dit": shown(args.dit), "steps": args.steps,
              "runs": args.runs, "threads": args.threads, **median,
              "ratio_stock": median["dit_stock_s"] / median["unet_stock_s"],
              "ratio_denoise": median["dit_denoise_s"] / median["unet_denoise_s"]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"| {args.steps} steps, median of {args.runs} | UNet | DiT | DiT / UNet (target <= 1.5) |"
          "\n|---|---|---|---|")
    for way, label in (("stock", "stock pipeline call"), ("denoise", "probe_core's loop")):
        print(f"| {label} | {median[f'unet_{way}_s']:.3f} s | {median[f'dit_{way}_s']:.3f} s | "
              f"{result[f'ratio_{way}']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
