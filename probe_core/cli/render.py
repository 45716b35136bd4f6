"""`render`: draw scenes from their seeds and print their captions."""

from __future__ import annotations

from .common import parse_range


def _render(args) -> int:
    import numpy as np
    from PIL import Image

    from ..world.scenes import render_scene, sample_scene

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


def add_parser(sub) -> None:
    """Register render on the `scene-probe` sub-parsers."""
    r = sub.add_parser("render", help="render scenes and print their captions")
    r.add_argument("--seeds", type=parse_range, default=range(0, 16))
    r.add_argument("--out", help="write a PNG grid here")
    r.set_defaults(func=_render)
