"""Prompt adherence of two scene models on the same captions and seeds, with 95% intervals.

    python bench/model_parity.py                                  # validation captions
    python bench/model_parity.py --seeds 440000-440599 --out bench/results/model_parity_440000.json

Each model makes one image per caption (the k-th kept caption of the range, generated with
seed start + k, as bench/model_quality.py does); one attribute classifier (trained on renders of
seeds from 3,000,000) reads its colour, shape and floor. Per attribute: each model's share right
with a 95% bootstrap interval over captions, and the ratio of the second model's share to the
first's with a paired bootstrap interval (the same captions resampled for both). Parity means
the ratio is at least --bar (0.9: within 10% of the first model). A control: the captions
shuffled against the images, which should score near chance.

Tune or monitor on the validation captions (seeds 11,000-11,199 by default); report a verdict
from a sealed range in 400,000-499,999 run once, naming the range and the commit.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from probe_core.cli.common import parse_range
from probe_core.edits.protocol import commit_of
from probe_core.settings import SEEDS
from probe_core.world.attributes import (ATTRIBUTES, caption_attributes, predict_attributes,
                                         render_labelled)
from probe_core.world.tiny_dit import load_scene_model
from probe_core.world.tiny_ldm import DEFAULT_GUIDANCE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from model_quality import CLASSIFIER, classifier, generated_for  # noqa: E402  (a bench sibling)

BOOTSTRAP = 2000


def predicted_attributes(model: str, captions: list[str], start: int, clf, args) -> dict:
    """attribute -> (n,) class index the classifier reads in `model`'s image for each caption."""
    images = generated_for(load_scene_model(model), captions, start, args.steps, args.guidance)
    return predict_attributes(clf, images)


def right(predicted: dict, captions: list[str]) -> dict:
    """attribute -> (n,) bool: whether each image shows what its caption asks."""
    wanted = [caption_attributes(c) for c in captions]
    return {k: predicted[k] == np.array([w[k] for w in wanted]) for k in ATTRIBUTES}


def interval(values: np.ndarray, pick: np.ndarray) -> list[float]:
    means = values[pick].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def compare(first: dict, second: dict, bar: float, seed: int = 0) -> dict:
    """Per attribute: both shares with intervals, the paired ratio second / first and whether
    it reaches `bar` (its interval's low end too, the stricter reading)."""
    n = len(next(iter(first.values())))
    pick = np.random.default_rng(seed).integers(0, n, (BOOTSTRAP, n))
    out = {}
    for k in ATTRIBUTES:
        a, b = first[k].astype(float), second[k].astype(float)
        ratios = b[pick].mean(1) / np.maximum(a[pick].mean(1), 1e-9)
        ratio = b.mean() / max(a.mean(), 1e-9)
        out[k] = {"first": float(a.mean()), "first_ci": interval(a, pick),
                  "second": float(b.mean()), "second_ci": interval(b, pick),
                  "ratio": float(ratio), "ratio_ci": [float(np.percentile(ratios, 2.5)),
                                                      float(np.percentile(ratios, 97.5))],
                  "parity": bool(ratio >= bar),
                  "parity_at_interval_low": bool(np.percentile(ratios, 2.5) >= bar)}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--first", default=str(ROOT / "weights" / "tiny-scenes"),
                   help="the reference model (default: the embedded UNet)")
    p.add_argument("--second", default=str(ROOT / "weights" / "tiny-scenes-dit"),
                   help="the model held to within --bar of it (default: the scene DiT)")
    p.add_argument("--seeds", type=parse_range, default=SEEDS.adherence_validation,
                   help="caption seeds START-END (default: the validation captions)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--bar", type=float, default=0.9)
    p.add_argument("--classifier", default=CLASSIFIER, help="trained on first use")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "model_parity.json"))
    args = p.parse_args()
    torch.set_num_threads(2)

    clf = classifier(Path(args.classifier).expanduser(), retrain=False)
    _, _, captions = render_labelled(args.seeds)
    first = predicted_attributes(args.first, captions, args.seeds.start, clf, args)
    second = predicted_attributes(args.second, captions, args.seeds.start, clf, args)
    # control: each image judged against another image's caption (chance, given how often
    # each colour, shape and floor is asked for)
    shuffled = [captions[i] for i in np.random.default_rng(1).permutation(len(captions))]
    results = {
        "first": Path(args.first).name, "second": Path(args.second).name,
        "seeds": [args.seeds.start, args.seeds.stop - 1], "n_captions": len(captions),
        "steps": args.steps, "guidance_scale": args.guidance, "bar": args.bar,
        "commit": commit_of(ROOT),
        "attributes": compare(right(first, captions), right(second, captions), args.bar),
        "control_shuffled_captions": {
            model: {k: float(v.mean()) for k, v in right(pred, shuffled).items()}
            for model, pred in (("first", first), ("second", second))},
    }
    print(f"| attribute | {results['first']} | {results['second']} | ratio [95% CI] | "
          f"parity (>= {args.bar}) |\n|---|---|---|---|---|")
    for k, r in results["attributes"].items():
        print(f"| {k} | {r['first']:.1%} [{r['first_ci'][0]:.1%}, {r['first_ci'][1]:.1%}] | "
              f"{r['second']:.1%} [{r['second_ci'][0]:.1%}, {r['second_ci'][1]:.1%}] | "
              f"{r['ratio']:.3f} [{r['ratio_ci'][0]:.3f}, {r['ratio_ci'][1]:.3f}] | "
              f"{'met' if r['parity'] else 'missed'} |")
    control = results["control_shuffled_captions"]
    print("control, images judged against shuffled captions: " + ", ".join(
        f"{k} {control['first'][k]:.1%} / {control['second'][k]:.1%}" for k in ATTRIBUTES))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
