"""`python -m probe_core SUBCOMMAND ...`: the library's command line.

    python -m probe_core train-model --workdir ~/.cache/scene-probe/tiny-scenes --max-minutes 90
    python -m probe_core render --seeds 0-15 --out docs/renders.png
"""

from __future__ import annotations

import argparse
import json
import sys


def parse_range(text: str) -> range:
    """'A-B' (inclusive) or 'A' -> range."""
    try:
        if "-" in text:
            a, b = text.split("-", 1)
            r = range(int(a), int(b) + 1)
        else:
            r = range(int(text), int(text) + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed range like 0-99, got {text!r}") from None
    if len(r) == 0:
        raise argparse.ArgumentTypeError(f"empty seed range {text!r}")
    return r


def _train_model(args) -> int:
    from .tiny_train import TrainConfig, train

    cfg = TrainConfig()
    for key, value in vars(args).items():
        if hasattr(cfg, key) and value is not None:
            setattr(cfg, key, value)
    print(json.dumps(train(cfg), indent=2))
    return 0


def _render(args) -> int:
    import numpy as np
    from PIL import Image

    from .scenes import render_scene, sample_scene

    scenes = [render_scene(sample_scene(s)) for s in args.seeds]
    for s, sc in zip(args.seeds, scenes):
        print(f"{s}\t{sc.caption}")
    if args.out:
        cols = min(8, len(scenes))
        rows = -(-len(scenes) // cols)
        grid = np.zeros((rows * 64, cols * 64, 3), np.uint8)
        for k, sc in enumerate(scenes):
            r, c = divmod(k, cols)
            grid[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64] = sc.image
        Image.fromarray(grid).resize((cols * 128, rows * 128), Image.NEAREST).save(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m probe_core", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train-model", help="train (or resume) the embedded tiny-scenes model")
    t.add_argument("--workdir", help="data cache, checkpoints and logs (resumes from here)")
    t.add_argument("--out", help="pipeline folder to export to (default weights/tiny-scenes)")
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
    t.set_defaults(func=_train_model)

    r = sub.add_parser("render", help="render scenes and print their captions")
    r.add_argument("--seeds", type=parse_range, default=range(0, 16))
    r.add_argument("--out", help="write a PNG grid here")
    r.set_defaults(func=_render)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
