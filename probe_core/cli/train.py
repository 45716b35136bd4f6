"""`train-model` (the embedded tiny-scenes model) and `train-labeler` (its depth/saliency labeler)."""

from __future__ import annotations

import json

from .. import settings
from .common import _load


def _train_model(args) -> int:
    from ..world.tiny_dit import TinyDiTConfig
    from ..world.tiny_train import TrainConfig, train
    from ..world.train_setup import default_out

    cfg = TrainConfig(backbone=args.backbone, out=args.out or default_out(args.backbone))
    for key, value in vars(args).items():
        if hasattr(cfg, key) and value is not None:
            setattr(cfg, key, value)
    if args.snr_shift is not None:
        cfg.model.snr_shift = args.snr_shift
    if args.dit_layers is not None:
        cfg.dit = TinyDiTConfig(num_layers=args.dit_layers, patch_size=cfg.dit.patch_size)
    print(json.dumps(train(cfg), indent=2))
    return 0


def _snapshot_dit(args) -> int:
    from ..world.tiny_dit import save_training_snapshot

    save_training_snapshot(args.model, args.snapshot)
    print(f"kept {settings.shown_path(args.model)}'s transformer in float16 at "
          f"{settings.shown_path(args.snapshot)}")
    return 0


def _train_labeler(args) -> int:
    from ..world.labeler import build_scene_labeler

    labeler = build_scene_labeler(_load(args.model).vae, args.n_images, args.steps, args.n_eval,
                                  args.varied_share)
    labeler.save(args.out)
    print(json.dumps(labeler.info["held_out"], indent=2))
    return 0


def _add_train_model(sub) -> None:
    t = sub.add_parser("train-model", help="train (or resume) the embedded tiny-scenes model")
    t.add_argument("--backbone", choices=("unet", "dit"), default="unet",
                   help="unet: the embedded model (VAE, then UNet + text encoder); dit: the "
                        "scene DiT beside it, sharing --share-from's VAE and text encoder")
    t.add_argument("--workdir", help="data cache, checkpoints and logs (resumes from here)")
    t.add_argument("--out", help=f"pipeline folder to export to (default {settings.EMBEDDED_MODEL}"
                                 f", or {settings.EMBEDDED_DIT} for the DiT)")
    t.add_argument("--share-from", dest="share_from",
                   help=f"the UNet model folder a DiT shares parts with (default "
                        f"{settings.EMBEDDED_MODEL})")
    t.add_argument("--dit-steps", dest="dit_steps", type=int)
    t.add_argument("--dit-batch", dest="dit_batch", type=int)
    t.add_argument("--dit-lr", dest="dit_lr", type=float)
    t.add_argument("--dit-lr-final", dest="dit_lr_final", type=float,
                   help="decay the DiT's learning rate (cosine) from --dit-lr at this call's "
                        "first step to this at --dit-steps")
    t.add_argument("--dit-layers", dest="dit_layers", type=int)
    t.add_argument("--init-from", dest="init_from",
                   help="warm start from a saved pipeline folder when workdir has no checkpoint")
    t.add_argument("--n-scenes", dest="n_scenes", type=int)
    t.add_argument("--vae-steps", dest="vae_steps", type=int)
    t.add_argument("--unet-steps", dest="unet_steps", type=int)
    t.add_argument("--vae-batch", dest="vae_batch", type=int)
    t.add_argument("--unet-batch", dest="unet_batch", type=int)
    t.add_argument("--unet-lr", dest="unet_lr", type=float)
    t.add_argument("--export-every", dest="export_every", type=int)
    t.add_argument("--ckpt-every", dest="ckpt_every", type=int)
    t.add_argument("--max-minutes", dest="max_minutes", type=float,
                   help="stop (checkpoint + export) after this many minutes")
    t.add_argument("--threads", type=int)
    t.add_argument("--device", help="cpu (default) or cuda")
    t.add_argument("--snr-shift", dest="snr_shift", type=float,
                   help="divide the noise schedule's SNR by this (default 1: SD's schedule; "
                        "16 puts 16x16 latents in SD's 64x64 regime)")
    t.set_defaults(func=_train_model)


def _add_snapshot_dit(sub) -> None:
    snap = sub.add_parser("snapshot-dit", help="keep a trained scene DiT's transformer alone, in "
                                               "float16 (a training snapshot for weights/experiments)")
    snap.add_argument("model", help="the exported scene DiT pipeline folder (train-model's --out)")
    snap.add_argument("snapshot", help="folder to write transformer/ and tiny_ldm.json to")
    snap.set_defaults(func=_snapshot_dit)


def _add_train_labeler(sub) -> None:
    lab = sub.add_parser("train-labeler", help="train the depth/saliency labeler on renders")
    lab.add_argument("--model", default=str(settings.EMBEDDED_MODEL),
                     help="pipeline whose VAE to use")
    lab.add_argument("--out", default=str(settings.EMBEDDED_LABELER))
    lab.add_argument("--n-images", dest="n_images", type=int, default=8000)
    lab.add_argument("--steps", type=int, default=3000)
    lab.add_argument("--n-eval", dest="n_eval", type=int, default=len(settings.SEEDS.labeler_eval),
                     help="held-out renders (the first N of SEEDS.labeler_eval) to score it on")
    lab.add_argument("--varied-share", dest="varied_share", type=float, default=0.5,
                     help="share of the training renders drawn as varied scenes (other cameras "
                          "and light, floor-coloured and grey objects, touching objects)")
    lab.set_defaults(func=_train_labeler)


def add_parsers(sub) -> None:
    """Register train-model, snapshot-dit and train-labeler on the `scene-probe` sub-parsers."""
    _add_train_model(sub)
    _add_snapshot_dit(sub)
    _add_train_labeler(sub)
