"""Measure the embedded tiny-scenes model: VAE PSNR, prompt adherence, a sample grid, speed.

    python bench/model_quality.py                       # everything, prints a Markdown table
    python bench/model_quality.py --model weights/tiny-scenes-dit \
        --out bench/results/model_quality_dit.json --grid docs/tiny-scenes-dit-samples.png
    python bench/model_quality.py --skip-adherence      # PSNR and speed only
    python bench/model_quality.py --speed-only --compile   # speed, eager and torch.compile'd

Held-out data: renders with seeds below 1,000,000 never enter model training (which starts at
1,000,000) and the attribute classifier trains on seeds from 3,000,000. PSNR uses seeds 0-499;
adherence uses the captions of seeds 10,000-10,199 (the k-th kept caption generated with
seed 10,000 + k; scenes with no visible object are skipped).
Results go to bench/results/model_quality.json; the grid to docs/tiny-scenes-samples.png.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from probe_core.families import family_of
from probe_core.world.attributes import (ATTRIBUTES, accuracy, caption_attributes,
                                   load_classifier, predict_attributes, render_labelled,
                                   save_classifier, train_attribute_classifier)
from probe_core.settings import SEEDS
from probe_core.world.images import to_tensor
from probe_core.world.scenes import render_scene, sample_scene
from probe_core.world.tiny_dit import load_scene_model
from probe_core.world.tiny_ldm import DEFAULT_GUIDANCE, generate

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER = "~/.cache/scene-probe/attribute_classifier.safetensors"  # trained on first use


def vae_psnr(pipe, seeds: range) -> dict:
    """Mean per-image PSNR (dB) of encode(mode) -> decode on renders of `seeds`."""
    images = np.stack([render_scene(sample_scene(s)).image for s in seeds])
    psnrs = []
    with torch.no_grad():
        for i in range(0, len(images), 100):
            x = to_tensor(images[i:i + 100])
            rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
            mse = ((rec - x) ** 2).mean(dim=(1, 2, 3)) / 4  # on a [0, 1] scale
            psnrs += (10 * torch.log10(1 / mse)).tolist()
    return {"n": len(psnrs), "mean_psnr_db": statistics.fmean(psnrs),
            "median_psnr_db": statistics.median(psnrs)}


def classifier(path: Path, retrain: bool):
    if path.exists() and not retrain:
        return load_classifier(path)
    clf = train_attribute_classifier()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_classifier(clf, path)
    return clf


def generated_for(pipe, captions: list[str], start: int, steps: int,
                  guidance: float) -> np.ndarray:
    """(N, H, W, 3) uint8: one image per caption, the k-th generated with seed start + k."""
    return np.stack([generate(pipe, c, seed=start + k, num_inference_steps=steps,
                              guidance_scale=guidance) for k, c in enumerate(captions)])


def adherence(pipe, clf, seeds: range, steps: int, guidance: float) -> tuple[dict, list]:
    renders, truth, captions = render_labelled(seeds)
    generated = generated_for(pipe, captions, seeds.start, steps, guidance)
    from_captions = [caption_attributes(c) for c in captions]
    result = {
        "n": len(captions),
        "generated": accuracy(predict_attributes(clf, generated), from_captions),
        "renders_ceiling": accuracy(predict_attributes(clf, renders), truth),
    }
    return result, list(zip(captions, renders, generated))


def sample_grid(triples, path: Path, n: int = 16, scale: int = 2):
    """Pairs (render | generated) for the first n captions, 4 pairs a row, upscaled."""
    tiles = [np.concatenate([r, g], 1) for _, r, g in triples[:n]]
    rows = [np.concatenate(tiles[i:i + 4], 1) for i in range(0, len(tiles), 4)]
    grid = np.concatenate(rows, 0)
    img = Image.fromarray(grid).resize((grid.shape[1] * scale, grid.shape[0] * scale),
                                       Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    (path.with_suffix(".txt")).write_text(
        "Each pair: a render of the caption (left) and the model's image for it (right).\n"
        + "\n".join(f"{k + 1:2d}. {c}" for k, (c, _, _) in enumerate(triples[:n])) + "\n")


def speed(pipe, steps: int = 25, runs: int = 7) -> dict:
    """Median seconds per image, two ways that give the same image bit for bit (tested):
    the stock `StableDiffusionPipeline.__call__` and probe_core's own loop (`denoise` + decode,
    what the app runs), interleaved."""
    from probe_core.probing.denoise import DenoiseSettings, decode_latents, denoise

    prompt = "a large red sphere and a small blue box on a gray checkered floor"

    def stock(seed):
        generate(pipe, prompt, seed=seed, num_inference_steps=steps)

    def ours(seed):
        for state in denoise(pipe, prompt, DenoiseSettings(steps, DEFAULT_GUIDANCE, decode_x0=False),
                             torch.Generator().manual_seed(seed)):
            pass
        decode_latents(pipe, state.latents)

    stock(0), ours(0)  # warm-up
    times = {"stock": [], "denoise": []}
    for r in range(runs):
        for name, fn in (("stock", stock), ("denoise", ours)):
            t = time.perf_counter()
            fn(r)
            times[name].append(time.perf_counter() - t)
    return {"steps": steps, "runs": runs, "median_s": statistics.median(times["stock"]),
            "min_s": min(times["stock"]), "denoise_median_s": statistics.median(times["denoise"]),
            "threads": torch.get_num_threads()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "weights" / "tiny-scenes"))
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--n-adherence", type=int, default=200)
    p.add_argument("--classifier", default=CLASSIFIER)
    p.add_argument("--retrain-classifier", action="store_true")
    p.add_argument("--skip-adherence", action="store_true")
    p.add_argument("--speed-only", action="store_true",
                   help="re-measure speed only, keeping the other results in --out")
    p.add_argument("--compile", action="store_true",
                   help="also time the same calls with the UNet under torch.compile")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "model_quality.json"))
    p.add_argument("--grid", default=str(ROOT / "docs" / "tiny-scenes-samples.png"))
    args = p.parse_args()
    torch.set_num_threads(2)

    pipe = load_scene_model(args.model)
    info_path = Path(args.model) / "tiny_ldm.json"
    results = {"model": os.path.relpath(args.model, ROOT), "guidance_scale": args.guidance,
               "training": json.loads(info_path.read_text()).get("training")
               if info_path.exists() else None}
    if args.speed_only:
        results = {**json.loads(Path(args.out).read_text()), **results}
    else:
        results["vae"] = vae_psnr(pipe, SEEDS.vae_psnr)
    results["speed_25_steps"] = speed(pipe, args.steps)
    if args.compile:
        part = family_of(pipe).denoiser_attribute  # "unet", or the DiT's "transformer"
        eager = getattr(pipe, part)
        setattr(pipe, part, torch.compile(eager))
        t = time.perf_counter()
        generate(pipe, "a red sphere", seed=0, num_inference_steps=2)  # compiles
        compile_s = time.perf_counter() - t
        results["speed_25_steps_compiled"] = {**speed(pipe, args.steps),
                                              "compile_s": compile_s}
        setattr(pipe, part, eager)
    if not args.skip_adherence and not args.speed_only:
        clf = classifier(Path(args.classifier).expanduser(), args.retrain_classifier)
        results["adherence"], triples = adherence(
            pipe, clf, range(SEEDS.adherence.start, SEEDS.adherence.start + args.n_adherence),
            args.steps, args.guidance)
        sample_grid(triples, Path(args.grid))

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print("| measure | value | target |\n|---|---|---|")
    print(f"| VAE PSNR, {results['vae']['n']} held-out renders | "
          f"{results['vae']['mean_psnr_db']:.2f} dB | >= 30 dB |")
    s = results["speed_25_steps"]
    print(f"| 25 steps, 64x64, batch 1, guidance on, stock pipeline call (median of "
          f"{s['runs']}) | {s['median_s']:.3f} s | <= 0.5 s |")
    print(f"| the same image through probe_core's loop (denoise + decode) | "
          f"{s['denoise_median_s']:.3f} s | <= 0.5 s |")
    if args.compile:
        c = results["speed_25_steps_compiled"]
        print(f"| the stock call with the UNet under torch.compile (median of {c['runs']}; "
              f"compiling took {c['compile_s']:.0f} s once) | {c['median_s']:.3f} s | <= 0.5 s |")
    if "adherence" in results:
        a = results["adherence"]
        targets = {"colour": ">= 85%", "shape": ">= 70%"}
        for k in ATTRIBUTES:
            print(f"| adherence: {k} ({a['n']} held-out captions; renders ceiling "
                  f"{a['renders_ceiling'][k]:.1%}) | {a['generated'][k]:.1%} | "
                  f"{targets.get(k, '-')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
