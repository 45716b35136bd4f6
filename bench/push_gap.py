"""Where a depth push loses its size: the probes' reading against the image's, step by step.

    python bench/push_gap.py                            # the embedded UNet, validation seeds
    python bench/push_gap.py --model tiny-scenes-dit --out bench/results/push_gap_dit.json

Each image is generated and pushed nearer and farther by the app's sliders (the default method,
every object, the sliders' steps). Three readings of the object's mean depth change (z-units, in
the object's mask before the edit), each as a share of the asked change:
- `probe_at_edit`: the depth probe at the last edited step, on the latent the guidance made
  (what the guidance achieved in the probe's eyes);
- `probe_last`: the depth probe at the last step (what the model kept of it);
- `labeler`: the labeler on the edited image (how pushes are scored; the object where it is).
Medians over images with 95% bootstrap intervals. The probe layer is the model's best layer.
Validation seeds only: a figure for a report comes from a sealed range.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
from pathlib import Path

import numpy as np

from probe_core import settings
from probe_core.edits.report import bootstrap_median
from probe_core.serve.model_choice import demo_for_model
from probe_core.serve.steering import SliderValues
from probe_core.world.scenes import render_scene, sample_scene

READINGS = ("probe_at_edit", "probe_last", "labeler")


def probe_depth(demo, run, step: int, layer: str, mask: np.ndarray) -> float:
    """The depth probe's mean reading over `mask` at `step` of `run` (z-units)."""
    depth, _ = demo.maps(run, step, layer)
    return float(depth[mask].mean())


def push_readings(demo, run, push: float, layer: str) -> dict:
    """One push of a finished run: each reading's change as a share of the asked change."""
    *_, _view = demo.intervene(run, SliderValues(depth_push=push))
    edit = run.edit
    mask, asked = edit.plan.object, edit.scores["asked"]
    last_edited = max(edit.plan.edit.steps)
    last = len(run.steps) - 1
    change = {
        "probe_at_edit": probe_depth(demo, edit.run, last_edited, layer, mask)
        - probe_depth(demo, run, last_edited, layer, mask),
        "probe_last": probe_depth(demo, edit.run, last, layer, mask)
        - probe_depth(demo, run, last, layer, mask),
        "labeler": edit.scores["depth_change"]}
    return {k: v / asked for k, v in change.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=settings.EMBEDDED_NAME)
    parser.add_argument("--seeds", type=int, default=20, help="how many validation seeds")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args()
    demo = demo_for_model(args.model)
    layer = demo.best_layer()
    rows = {"nearer": [], "farther": []}
    for seed in settings.SEEDS.edit_validation[:args.seeds]:
        caption = render_scene(sample_scene(seed)).caption
        *_, run = demo.stream(caption, seed=seed, num_inference_steps=settings.DEFAULT_STEPS,
                              guidance_scale=demo.default_guidance)  # as the app's page runs
        for name, push in (("nearer", 2.0), ("farther", -2.0)):
            try:
                rows[name].append(push_readings(demo, run, push, layer))
            except ValueError as err:  # no salient object to push in this image
                print(f"seed {seed}: {err}")
                break
    result = {"model": args.model, "layer": layer, "seeds": args.seeds, "pushes": {}}
    for name, readings in rows.items():
        result["pushes"][name] = {}
        for key in READINGS:
            values = np.array([r[key] for r in readings if np.isfinite(r[key])])
            median, ci = float(np.median(values)), bootstrap_median(values)
            result["pushes"][name][key] = {"median": median, "ci": ci, "n": len(values)}
            print(f"{name:8s} {key:14s} median {median:+.3f} of the ask "
                  f"[{ci[0]:+.3f}, {ci[1]:+.3f}] (n {len(values)})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
