"""Check the two scorers of a depth push on renders whose object really moved nearer or farther.

    python bench/depth_scorers.py                 # seeds 7,200,000-7,200,399; prints and writes JSON

For every render of the range, its largest object is moved DZ scene units toward the camera and
as far away from it (the rest of the scene unchanged; a move that would hit another object or
the camera is skipped), and each pair is scored as an edit would be:
- the labeler: the change of the object's mean labelled depth (z-normalised inverse depth),
  read in its largest labelled piece before and after; its sign is the verdict, and its size
  against the exact change (the moved object's mean exact depth, by its exact mask);
- the colour scorer (`edits.colour_depth`, no labeler): the bottom edge and area of the
  caption's first object, found by its colour, where the colour tells it apart.
Also the labeler's depth against exact depth inside each object (Pearson r within the exact
mask of the largest object, renders with at least 30 object pixels) and across objects (the
object's mean labelled depth against its exact mean), and how far an object must come toward
the camera for its exact depth to change by what a push asks (WORLD_MOVES scene units nearer:
the median change in z-units, and the share reaching +1, half the evaluation's asked push).
95% bootstrap intervals over renders.
Writes docs/interventions/depth-scorers.json.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
from dataclasses import replace

import numpy as np

from probe_core import settings
from probe_core.edits.colour_depth import colour_depth
from probe_core.edits.colour_segmenter import parse_caption, segment_colour
from probe_core.edits.report import bootstrap_mean
from probe_core.edits.scene import main_object
from probe_core.metrics import pearson
from probe_core.world.labeler import SceneLabeler, inverse_depth_target
from probe_core.world.scenes import crowds, render_scene, sample_scene

DZ = 0.75  # scene units the object is moved along the camera's axis
SEEDS = range(7_200_000, 7_200_400)
OUT = settings.DOCS / "interventions" / "depth-scorers.json"
MIN_OBJECT_PX = 30
WORLD_MOVES = (0.75, 1.5, 2.5)  # scene units toward the camera


def exact_change(before, after, k: int) -> float | None:
    """The exact change of object k's mean z-normalised inverse depth between two renders."""
    z0, z1 = inverse_depth_target(before.depth), inverse_depth_target(after.depth)
    m0, m1 = before.object_ids == k, after.object_ids == k
    return float(z1[m1].mean() - z0[m0].mean()) if m0.any() and m1.any() else None


def moved(spec, k: int, dz: float):
    """The spec with object k moved dz along z, or None where it would touch another object
    or come within a unit of the camera."""
    obj = spec.objects[k]
    z = obj.z + dz
    if z - obj.radius < 1.0:
        return None
    if crowds([o for j, o in enumerate(spec.objects) if j != k], obj.x, z, obj.radius):
        return None
    objects = list(spec.objects)
    objects[k] = replace(obj, z=z)
    return replace(spec, objects=objects)


def object_reading(depth: np.ndarray, mask: np.ndarray) -> float:
    return float(depth[mask].mean()) if mask.any() else float("nan")


def score_pair(labeler, before, after, k: int) -> dict:
    """One render pair (before, after: RenderedScene) whose object k moved, read by both
    scorers and exactly."""
    (d0, d1), (s0, s1) = labeler(np.stack([before.image, after.image]))
    m0, m1 = main_object(s0 > 0.5)[0], main_object(s1 > 0.5)[0]
    objects, floor = parse_caption(before.caption)
    colour = objects[0][1] if objects else None
    segment = (lambda img: segment_colour(img, colour, objects, floor)) if colour else None
    reading = colour_depth(segment(before.image), segment(after.image)) if segment else {}
    return {"labeler_change": object_reading(d1, m1) - object_reading(d0, m0),
            "exact_change": exact_change(before, after, k),
            "colour_verdict": reading.get("colour_depth_verdict")}


def within_object(labeler, scene, k: int) -> tuple[float | None, float, float]:
    """(Pearson r of labelled and exact depth inside object k, or None when it is small; its
    labelled mean; its exact mean)."""
    depth, _ = labeler(scene.image[None])
    exact = inverse_depth_target(scene.depth)
    mask = scene.object_ids == k
    r = pearson(depth[0][mask], exact[mask]) if mask.sum() >= MIN_OBJECT_PX else None
    return r, object_reading(depth[0], mask), object_reading(exact, mask)


def share(rows: list[dict], key: str, sign: int) -> dict:
    """How often `key`'s verdict agreed with the truth (`sign`), among the pairs it read."""
    flags = [[float(np.sign(r[key]) == sign)] for r in rows if r[key] is not None
             and np.isfinite(r[key])]
    values = [f[0] for f in flags]
    return {"n": len(values), "agrees": float(np.mean(values)) if values else float("nan"),
            "ci": bootstrap_mean(flags)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=[SEEDS.start, SEEDS.stop - 1])
    args = parser.parse_args()
    labeler = SceneLabeler.load(settings.EMBEDDED_LABELER)
    pairs: dict[str, list[dict]] = {"nearer": [], "farther": []}
    within, means = [], []
    world: dict[float, list[float]] = {d: [] for d in WORLD_MOVES}
    for seed in range(args.seeds[0], args.seeds[1] + 1):
        spec = sample_scene(seed)
        before = render_scene(spec)
        if not spec.objects or max(before.areas) == 0:
            continue
        k = int(np.argmax(before.areas))
        r, labelled, exact = within_object(labeler, before, k)
        within.append(r)
        means.append((labelled, exact))
        for d in WORLD_MOVES:
            spec2 = moved(spec, k, -d)
            change = exact_change(before, render_scene(spec2), k) if spec2 else None
            if change is not None:
                world[d].append(change)
        for name, dz in (("nearer", -DZ), ("farther", DZ)):
            spec2 = moved(spec, k, dz)
            if spec2 is not None:
                pairs[name].append(score_pair(labeler, before, render_scene(spec2), k))
    out = {"seeds": list(args.seeds), "dz_scene_units": DZ, "pairs": {}}
    for name, sign in (("nearer", 1), ("farther", -1)):
        rows = pairs[name]
        ratio = [r["labeler_change"] / r["exact_change"] for r in rows
                 if r["exact_change"] is not None and abs(r["exact_change"]) > 1e-6
                 and np.isfinite(r["labeler_change"])]
        out["pairs"][name] = {
            "n": len(rows), "exact": share(rows, "exact_change", sign),
            "labeler": share(rows, "labeler_change", sign),
            "colour": share(rows, "colour_verdict", sign),
            "colour_unclear": float(np.mean([r["colour_verdict"] == 0 for r in rows
                                             if r["colour_verdict"] is not None])),
            "labeler_over_exact_change_median": float(np.median(ratio)),
            "exact_change_median_z": float(np.median([r["exact_change"] for r in rows
                                                      if r["exact_change"] is not None]))}
    rs = [r for r in within if r is not None and np.isfinite(r)]
    labelled, exact = np.array(means, float).T
    ok = np.isfinite(labelled) & np.isfinite(exact)
    out["within_object_r"] = {"n": len(rs), "mean": float(np.mean(rs)),
                              "median": float(np.median(rs)),
                              "ci_mean": bootstrap_mean([[r] for r in rs])}
    out["object_mean_r"] = {"n": int(ok.sum()), "r": pearson(labelled[ok], exact[ok])}
    out["world_move_nearer"] = {str(d): {"n": len(v), "median_z_change": float(np.median(v)),
                                         "share_reaching_1": float(np.mean(np.array(v) >= 1.0))}
                                for d, v in world.items()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
