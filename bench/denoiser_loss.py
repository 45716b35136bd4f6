"""Held-out denoising error of the embedded UNet model and the scene DiT, noise level by noise
level, on the same images, noise and captions: where a model still falls short of the other.

    python bench/denoiser_loss.py --dit weights/tiny-scenes-dit

Images: renders of seeds 0-127 (held out: training starts at 1,000,000), encoded by the shared
VAE (posterior mean) and scaled; one fixed noise draw; each model predicts the noise at the
timesteps below, conditioned on the images' captions. Prints the mean squared error per
timestep and the DiT / UNet ratio; writes bench/results/denoiser_loss.json (or --out).
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from probe_core.settings import EMBEDDED_DIT, EMBEDDED_MODEL
from probe_core.world.dit_train import dit_predictor
from probe_core.world.images import to_tensor
from probe_core.world.scenes import render_scene, sample_scene
from probe_core.world.tiny_dit import load_scene_model
from probe_core.world.tiny_ldm import load_pipeline
from probe_core.world.unet_train import unet_predictor

ROOT = Path(__file__).resolve().parents[1]
TIMESTEPS = (50, 200, 400, 600, 800, 950)


@torch.no_grad()
def errors(unet_pipe, dit_pipe, n_images: int) -> dict:
    """timestep -> {"unet": mse, "dit": mse} on n_images held-out renders."""
    rendered = [render_scene(sample_scene(s), size=64) for s in range(n_images)]
    captions = [r.caption for r in rendered]
    x = to_tensor(np.stack([r.image for r in rendered]))  # (N, 3, 64, 64) in [-1, 1]
    z = unet_pipe.vae.encode(x).latent_dist.mean * unet_pipe.vae.config.scaling_factor
    length = unet_pipe.tokenizer.model_max_length
    ids = unet_pipe.tokenizer(captions, padding="max_length", max_length=length,
                              truncation=True, return_tensors="pt").input_ids
    embeds, mask, _, _ = dit_pipe.encode_prompt(captions, do_classifier_free_guidance=False,
                                                max_sequence_length=length, clean_caption=False)
    predictors = {"unet": unet_predictor(unet_pipe.unet, unet_pipe.text_encoder, ids),
                  "dit": dit_predictor(dit_pipe.transformer, embeds, mask)}
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    out = {}
    for t in TIMESTEPS:
        timesteps = torch.full((len(z),), t)
        noisy = unet_pipe.scheduler.add_noise(z, noise, timesteps)
        out[t] = {name: float((predict(noisy, timesteps) - noise).pow(2).mean())
                  for name, predict in predictors.items()}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--unet", default=str(EMBEDDED_MODEL))
    p.add_argument("--dit", default=str(EMBEDDED_DIT))
    p.add_argument("--n-images", dest="n_images", type=int, default=128)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "denoiser_loss.json"))
    args = p.parse_args()
    torch.set_num_threads(2)
    dit_pipe = load_scene_model(args.dit)
    by_t = errors(load_pipeline(args.unet), dit_pipe, args.n_images)
    info = Path(args.dit) / "tiny_ldm.json"
    trained = json.loads(info.read_text()).get("training") if info.is_file() else None
    result = {"n_images": args.n_images, "dit": Path(args.dit).name, "dit_training": trained,
              "mse": {str(t): v for t, v in by_t.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| timestep (of 1000) | UNet | DiT | DiT / UNet |\n|---|---|---|---|")
    for t, v in by_t.items():
        print(f"| {t} | {v['unet']:.4f} | {v['dit']:.4f} | {v['dit'] / v['unet']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
