"""Batch evaluation of interventions with controls: `python -m probe_core intervene-eval`.

For every (prompt, seed): generate the original and label it. The edited object is the largest
connected piece of the labelled object mask (in a crowded scene the others should stay put).
- Moves in 8 directions (right, down-right, down, ..., up-right), each by a quarter of the image
  width or less, so the object stays wholly in frame (a direction with under MIN_MOVE pixels of
  room is skipped). The opposite of a direction is the direction 180 degrees away, so every
  direction's opposite control comes from the same run; a random-direction move is the random
  control, scored along each asked direction.
- With `carry_step` (guided), a move first carries the object's latent pixels by its shift
  entering that step (`latent_carry`); its controls are carried the same way.
- Depth pushes nearer and farther by `depth_delta` for every image, each with a random target
  field of the same size inside the object (its control). A push is scored fairly: the object's
  labelled depth where it is after the edit (its new mask) against where it was; the object's
  area change is reported.
Each edited image is scored by the labeler and, where the caption's colour tells the object
apart, by a colour segmenter that does not use the labeler (`colour_segmenter`); both scorers'
shifts and their agreement are reported, over every image the colour segmenter can read and over
those where both follow the same object (the colour's pixels are mostly the labelled edited
object before the edit, not another object or a merged group). After an edit, each object is
followed by `tracker` (every labelled pixel goes to the nearest object where it is expected), so
the edited object's pixels are its own even where it now touches another. Every table is also
split by the number of objects in the scene, with how often an edit kept the scene's objects:
by the strict count of connected pieces of labelled mask (two objects that touch read as one)
and by the tracker (every object in one piece, the others still where they were).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..metrics import iou
from ..probing.denoise import decode_latents
from ..probing.probes import ProbeSet
from ..probing.schedulers import check_scheduler, make_scheduler
from ..viz import MASK_COLOUR, upscale
from .colour_segmenter import components, parse_caption, segment_colour
from .methods import Edit, intervene, run_generation
from .scores import area_ratio, object_depth_change, outside_change
from .targets import (Target, centroid, move_mask, perspective_room, push_depth,
                      shrink_mask)
from .tracker import expected_objects, faults, pieces, track

# (dx right, dy down) unit directions, named as seen on the image
DIRECTIONS = {"right": (1, 0), "down-right": (1, 1), "down": (0, 1), "down-left": (-1, 1),
              "left": (-1, 0), "up-left": (-1, -1), "up": (0, -1), "up-right": (1, -1)}
MIN_MOVE = 4  # pixels: a direction with less room than this is skipped for that image
SUCCESS_SHARE = 0.5  # a move succeeds when the centroid travels half the asked distance along it
SAME_OBJECT_IOU = 0.5  # colour mask vs labelled object, before: the scorers see one object


def check_directions(names) -> tuple[str, ...]:
    """The move directions asked for, as a tuple; ValueError naming the valid ones when any is
    unknown or none is given."""
    names = tuple(names)
    unknown = [d for d in names if d not in DIRECTIONS]
    if unknown or not names:
        shown = ", ".join(unknown) if unknown else "none given"
        raise ValueError(f"unknown move direction(s) {shown}; directions are "
                         f"{', '.join(DIRECTIONS)}")
    return names


def random_depth_target(depth: np.ndarray, mask: np.ndarray, delta: float, rng,
                        cell: int = 8) -> Target:
    """A random field inside `mask` (constant on cell x cell patches) with the same L2 size as
    adding `delta` to every masked pixel."""
    H, W = depth.shape
    field = np.kron(rng.standard_normal((H // cell, W // cell)), np.ones((cell, cell)))
    field = np.where(mask, field, 0.0)
    norm = np.sqrt((field ** 2).sum())
    if norm > 0:
        field *= abs(delta) * np.sqrt(mask.sum()) / norm
    return Target((depth + field).astype(np.float32), mask.copy(), "random depth field")


def main_object(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the largest 8-connected piece of `mask`, the rest of the mask)."""
    found = pieces(mask, min_pixels=1)
    if not found:
        return np.zeros_like(mask, bool), np.zeros_like(mask, bool)
    return found[0], mask & ~found[0]


def unit(direction: str) -> tuple[float, float]:
    ux, uy = DIRECTIONS[direction]
    norm = math.hypot(ux, uy)
    return ux / norm, uy / norm


def room(mask: np.ndarray, direction: str, limit: int) -> int:
    """How far (pixels, along the direction) the object can move and stay wholly in frame, at
    most `limit`."""
    ys, xs = np.nonzero(mask)
    H, W = mask.shape
    ux, uy = unit(direction)
    reach = [limit]
    for u, lo, hi, size in ((ux, xs.min(), xs.max(), W), (uy, ys.min(), ys.max(), H)):
        if u > 0:
            reach.append((size - 1 - hi) / u)
        elif u < 0:
            reach.append(lo / -u)
    return int(math.floor(min(reach)))


def move_vector(direction: str, distance: int) -> tuple[int, int]:
    ux, uy = unit(direction)
    return int(round(distance * ux)), int(round(distance * uy))


def _edit(method, task, target, cfg, shift=(0, 0), region=None, moved_from=None,
          also=()) -> Edit:
    carry = cfg.get("carry_step") if moved_from is not None else None
    steps = cfg.get("push_steps", cfg["steps"]) if task == "depth" else cfg["steps"]
    return Edit(task, target, method, strength=cfg["strength"], steps=steps,
                layers=cfg.get("layers"), iterations=cfg["iterations"], shift=shift,
                also=tuple(also), region=region, region_margin=cfg.get("region_margin"),
                moved_from=moved_from if carry is not None else None, carry_step=carry)


class Scene:
    """The original image of one (prompt, seed), its labels, the edited object and the others."""

    def __init__(self, labeler, prompt: str, image: np.ndarray):
        self.labeler, self.image = labeler, image
        depth, sal = labeler(image[None])
        self.depth, self.mask = depth[0], sal[0] > 0.5
        self.object, self.others = main_object(self.mask)
        self.pieces = components(self.mask)
        objects, floor = parse_caption(prompt)
        self.n_objects = len(objects)
        self.colour = objects[0][1] if objects else None
        self.segment = lambda img: (segment_colour(img, self.colour, objects, floor)  # noqa: E731
                                    if self.colour else None)
        self.colour_mask = self.segment(image)
        # both scorers follow the same object only when the colour's pixels are mostly the
        # labelled edited object (not another object, nor a piece of a merged group)
        self.same_object = (self.colour_mask is not None
                            and iou(self.colour_mask, self.object) >= SAME_OBJECT_IOU)

    def after(self, image: np.ndarray, edited: np.ndarray | None = None) -> dict:
        """Labels of an edited image: the object where it is now (labelled object pixels that
        were not another object's), depth, pieces, the colour segmenter's mask, and whether
        every object was kept, followed by `tracker` (the edited object from where the edit
        asked for it, `edited`, default where it was; the others from where they were)."""
        depth, sal = self.labeler(image[None])
        mask = sal[0] > 0.5
        expected = expected_objects(self.object if edited is None else edited, self.others)
        tracked = track(mask, expected)
        return {"depth": depth[0], "mask": mask, "object": mask & ~self.others,
                "faults": faults(tracked, expected),
                "pieces": components(mask), "colour_mask": self.segment(image)}

    def kept(self, after: dict) -> bool:
        """The scene kept its pieces by the strict count: as many connected pieces of labelled
        mask as before, and the object in one piece (two objects that touch count as one)."""
        return after["pieces"] == self.pieces and components(after["object"]) == 1


def _shift(m0: np.ndarray | None, m1: np.ndarray | None) -> tuple[float, float] | None:
    if m0 is None or m1 is None or not m0.any() or not m1.any():
        return None
    (y0, x0), (y1, x1) = centroid(m0), centroid(m1)
    return x1 - x0, y1 - y0


def move_scores(scene: Scene, edited: np.ndarray, target: Target, direction: str,
               distance: int) -> dict:
    """A move's scores by the labeler and by the colour segmenter (None where it cannot
    segment): centroid shift (px, x right, y down), along the asked direction, area ratio,
    pixel change outside the edited region, pieces kept (strict count) and objects kept
    (tracked), and whether both scorers follow the same object."""
    after = scene.after(edited, target.map)
    ux, uy = unit(direction)
    row = {"direction": direction, "distance": distance, "kept": scene.kept(after),
           "objects_kept": not after["faults"], "faults": after["faults"],
           "same_object": scene.same_object,
           "outside_change": outside_change(scene.image, edited,
                                            target.region | scene.object | after["object"]),
           "area_ratio": area_ratio(scene.object, after["object"])}
    for name, shift in (("labeler", _shift(scene.object, after["object"])),
                        ("colour", _shift(scene.colour_mask, after["colour_mask"]))):
        row[f"{name}_shift"] = shift
        row[f"{name}_along"] = None if shift is None else shift[0] * ux + shift[1] * uy
    return row


def push_scores(scene: Scene, edited: np.ndarray, delta: float) -> dict:
    """A depth push, scored fairly: the object's labelled depth where it is after the edit
    against where it was (z-normalised inverse depth: > 0 is nearer)."""
    after = scene.after(edited)
    d0, d1 = object_depth_change(scene.depth, scene.object, after["depth"], after["object"])
    return {"delta": delta, "depth_before": d0, "depth_after": d1, "depth_change": d1 - d0,
            "as_asked": bool(np.sign(d1 - d0) == np.sign(delta)),
            "area_ratio": area_ratio(scene.object, after["object"]),
            "kept": scene.kept(after), "objects_kept": not after["faults"],
            "faults": after["faults"],
            "outside_change": outside_change(scene.image, edited,
                                             scene.object | after["object"])}


def evaluate_edits(pipe, probes: ProbeSet | None, labeler, prompts: list[str], seeds: list[int],
                   method: str, strength: float, steps: range, iterations: int,
                   num_inference_steps: int, guidance_scale: float,
                   layers: list[str] | None = None, depth_delta: float = 2.0,
                   directions: tuple[str, ...] = tuple(DIRECTIONS),
                   progress: bool = True, region_margin: int | None = None,
                   push_room: int = 0, saliency_shrink: int = 0, carry_step: int | None = None,
                   pushes: bool = True, push_steps: range | None = None,
                   moves: bool = True, push_outline: tuple[str, ...] = (),
                   scheduler: str | None = None) -> tuple[dict, list]:
    """Returns (summary with per-image rows, examples for the grid). A move steers toward the
    scene it asks for: the edited object at its new place (less `saliency_shrink` pixels of
    outline, `targets.shrink_mask`) and the other objects where they were. With
    `region_margin` (guided), each edit's latent update is confined to its region (the object
    where it is and where it is asked to be) grown by that many latent pixels; a depth push's
    region (and its control's) also takes `push_room` pixels above the object (farther) or
    below it (nearer). With `carry_step` (guided), a move first carries the object's latent
    pixels to its new place entering that step (`latent_carry`). `pushes=False` runs the moves
    alone, `moves=False` the pushes alone; `push_steps` are the pushes' edit steps (default:
    `steps`, the moves'). The pushes named in `push_outline` ("nearer", "farther"), and their
    controls, also steer the saliency probes toward the scene's objects where they are: the
    push may change the object's depth, not its outline. `scheduler` (a `schedulers.SCHEDULERS`
    label) samples every run with that sampler instead of the model's own."""
    from tqdm.auto import tqdm

    directions = check_directions(directions)
    if carry_step is not None and (method != "guided" or carry_step not in steps):
        raise ValueError(f"a carry step needs the guided method and one of its edit steps "
                         f"{list(steps)}, got {carry_step} with {method}")
    cfg = {"strength": strength, "steps": steps, "iterations": iterations, "layers": layers}
    if region_margin is not None:
        cfg["region_margin"] = region_margin
    if push_room:
        cfg["push_room"] = push_room
    if saliency_shrink:
        cfg["saliency_shrink"] = saliency_shrink
    if carry_step is not None:
        cfg["carry_step"] = carry_step
    if push_steps is not None:
        cfg["push_steps"] = push_steps
    if push_outline:
        cfg["push_outline"] = tuple(push_outline)
    kw = dict(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale)
    if scheduler is not None:
        scheduler = check_scheduler(scheduler)
        cfg["scheduler"] = scheduler

    def sampler():
        """A fresh scheduler for one run (None: the model's own)."""
        return make_scheduler(pipe, scheduler) if scheduler is not None else None

    rng = np.random.default_rng(0)
    rows, examples, skipped = [], [], 0
    for prompt, seed in tqdm(list(zip(prompts, seeds)), desc=f"edits ({method})",
                             disable=not progress):
        original = run_generation(pipe, prompt, seed, decode_x0=False, scheduler=sampler(), **kw)
        before = decode_latents(pipe, original[-1].latents)
        scene = Scene(labeler, prompt, before)
        if scene.object.sum() < 4:
            skipped += 1
            continue
        limit = scene.mask.shape[1] // 4

        def edited(task, target, shift=(0, 0), region=None, moved_from=None, also=()):
            edit = _edit(method, task, target, cfg, shift, region, moved_from, also)
            return intervene(pipe, probes, prompt, seed, edit, original=original,
                             scheduler=sampler(), **kw).image

        def asked_scene(moved: np.ndarray) -> np.ndarray:
            """(H, W) bool: the edited object where a move puts it, the others where they were."""
            return shrink_mask(moved, saliency_shrink) | scene.others

        row = {"prompt": prompt, "seed": int(seed), "n_objects": scene.n_objects,
               "pieces_before": scene.pieces, "area_before": int(scene.object.sum()),
               "colour": scene.colour, "colour_segmented": scene.colour_mask is not None,
               "moves": {}}
        for direction in directions if moves else ():
            distance = room(scene.object, direction, limit)
            if distance < MIN_MOVE:
                continue
            dx, dy = move_vector(direction, distance)
            target = move_mask(scene.object, dx, dy)
            image = edited("saliency", asked_scene(target.map), (dx, dy),
                           target.region | scene.object, scene.object)
            row["moves"][direction] = move_scores(scene, image, target, direction, distance)
            if direction == directions[0]:
                examples.append((prompt, before, target.map | scene.others, image))
        angle = rng.uniform(0, 2 * math.pi)  # drawn either way: the pushes' controls follow
        dx, dy = (int(round(limit / 2 * math.cos(angle))), int(round(limit / 2 * math.sin(angle))))
        if moves:
            target = move_mask(scene.object, dx, dy)
            after = scene.after(edited("saliency", asked_scene(target.map), (dx, dy),
                                       target.region | scene.object, scene.object), target.map)
            row["random_move"] = {"dx": dx, "dy": dy,
                                  "labeler_shift": _shift(scene.object, after["object"])}
        keep = (("saliency", scene.mask),)  # the objects where they are
        if method != "latent_shift" and pushes:
            for name, delta in (("nearer", depth_delta), ("farther", -depth_delta)):
                asked = push_depth(scene.depth, scene.object, delta)
                control = random_depth_target(scene.depth, scene.object, delta, rng)
                where = perspective_room(scene.object, delta, push_room)
                also = keep if name in push_outline else ()
                row[f"push_{name}"] = push_scores(
                    scene, edited("depth", asked.map, region=where, also=also), delta)
                row[f"push_{name}_random"] = push_scores(
                    scene, edited("depth", control.map, region=where, also=also), delta)
        rows.append(row)
    return summarise(rows, skipped, method, cfg, depth_delta, directions), examples


def _mean(xs) -> float:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.mean(xs)) if xs else float("nan")


def _median(xs) -> float:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return float(np.median(xs)) if xs else float("nan")


def fault_counts(edits: list[dict]) -> dict[str, int]:
    """How many edits broke the scene in each way (`tracker.faults`; an edit may count twice)."""
    counts: dict[str, int] = {}
    for e in edits:
        for f in e["faults"]:
            counts[f] = counts.get(f, 0) + 1
    return dict(sorted(counts.items()))


def move_summary(rows: list[dict], directions: tuple[str, ...]) -> dict:
    """Per direction and overall: share of the asked distance moved (labeler), success rate,
    the opposite direction's travel along this one, the colour segmenter's view and its
    agreement with the labeler, area ratio, outside change, pieces kept."""
    out = {}
    for d in directions + ("all",):
        moves = [r["moves"][k] for r in rows for k in r["moves"] if d in ("all", k)]
        if not moves:
            continue
        share = [m["labeler_along"] / m["distance"] if m["labeler_along"] is not None else 0.0
                 for m in moves]
        both = [m for m in moves if m["colour_along"] is not None and m["labeler_along"] is not None]
        same = [m for m in both if m.get("same_object")]
        entry = {
            "n": len(moves),
            "share_of_asked": _mean(share),
            "success": _mean([float(s >= SUCCESS_SHARE) for s in share]),
            "colour_n": len(both),
            "colour_share_of_asked": _mean([m["colour_along"] / m["distance"] for m in both]),
            "labeler_vs_colour_px": _mean([math.dist(m["labeler_shift"], m["colour_shift"])
                                           for m in both]),
            "colour_same_n": len(same),
            "labeler_vs_colour_same_px": _mean([math.dist(m["labeler_shift"], m["colour_shift"])
                                                for m in same]),
            "area_ratio_median": _median([m["area_ratio"] for m in moves]),
            "outside_change": _mean([m["outside_change"] for m in moves]),
            "kept": _mean([float(m["kept"]) for m in moves]),
            "objects_kept": _mean([float(m["objects_kept"]) for m in moves]),
            "faults": fault_counts(moves),
        }
        if d != "all":
            opposite = list(DIRECTIONS)[(list(DIRECTIONS).index(d) + 4) % 8]
            ux, uy = unit(d)
            opp = [r["moves"][opposite] for r in rows if opposite in r["moves"]]
            entry["opposite_share_along"] = _mean([
                (m["labeler_shift"][0] * ux + m["labeler_shift"][1] * uy) / m["distance"]
                for m in opp if m["labeler_shift"] is not None])
            rand = [r["random_move"]["labeler_shift"] for r in rows
                    if r["random_move"]["labeler_shift"] is not None]
            entry["random_shift_along_px"] = _mean([s[0] * ux + s[1] * uy for s in rand])
        out[d] = entry
    return out


def push_summary(rows: list[dict]) -> dict:
    out = {}
    for name in ("nearer", "farther"):
        asked = [r[f"push_{name}"] for r in rows if f"push_{name}" in r]
        control = [r[f"push_{name}_random"] for r in rows if f"push_{name}_random" in r]
        if asked:
            out[name] = {"n": len(asked),
                         "as_asked": _mean([float(p["as_asked"]) for p in asked]),
                         "random_as_asked": _mean([float(p["as_asked"]) for p in control]),
                         "mean_change": _mean([p["depth_change"] for p in asked]),
                         "area_ratio_median": _median([p["area_ratio"] for p in asked]),
                         "outside_change": _mean([p["outside_change"] for p in asked]),
                         "kept": _mean([float(p["kept"]) for p in asked]),
                         "objects_kept": _mean([float(p["objects_kept"]) for p in asked]),
                         "faults": fault_counts(asked)}
    return out


def summarise(rows: list[dict], skipped: int, method: str, cfg: dict, depth_delta: float,
              directions: tuple[str, ...] = tuple(DIRECTIONS)) -> dict:
    out = {"method": method, "n": len(rows), "skipped_no_object": skipped,
           "settings": {"strength": cfg["strength"], "steps": list(cfg["steps"]),
                        "iterations": cfg["iterations"], "layers": cfg.get("layers"),
                        "depth_delta": depth_delta, "directions": list(directions),
                        "region_margin": cfg.get("region_margin"),
                        "push_room": cfg.get("push_room", 0),
                        "saliency_shrink": cfg.get("saliency_shrink", 0),
                        "carry_step": cfg.get("carry_step"),
                        "push_steps": list(cfg.get("push_steps", cfg["steps"])),
                        "push_outline": list(cfg.get("push_outline", ())),
                        "scheduler": cfg.get("scheduler", "default")},
           "move": move_summary(rows, directions), "depth": push_summary(rows),
           "by_objects": {}}
    for n in sorted({r["n_objects"] for r in rows}):
        group = [r for r in rows if r["n_objects"] == n]
        out["by_objects"][str(n)] = {"n": len(group), "move": move_summary(group, directions),
                                     "depth": push_summary(group)}
    out["rows"] = rows
    return out


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.0%}"


def _num(x: float, fmt: str = "{:.3f}") -> str:
    return "-" if not np.isfinite(x) else fmt.format(x)


def table(summary: dict) -> str:
    """Markdown tables for one method's summary: moves per direction, pushes, and both split by
    the number of objects in the scene."""
    lines = [f"### method `{summary['method']}` ({summary['n']} images; "
             f"{summary['skipped_no_object']} skipped without a visible object)", "",
             f"settings: `{json.dumps(summary['settings'])}`", ""]
    lines += _move_table(summary["move"]) + [""] + _push_table(summary["depth"])
    lines += ["", _fault_line(summary)]
    for n, group in summary.get("by_objects", {}).items():
        lines += ["", f"#### scenes with {n} object(s) ({group['n']} images)", ""]
        lines += _move_table(group["move"], short=True) + [""] + _push_table(group["depth"])
        lines += ["", _fault_line(group)]
    return "\n".join(lines) + "\n"


def _fault_line(summary: dict) -> str:
    """Why edits did not keep the scene's objects (tracked), moves and each push."""
    parts = [("moves", summary["move"].get("all", {}).get("faults", {}))]
    parts += [(f"push {k}", e["faults"]) for k, e in summary["depth"].items()]
    said = [f"{name}: " + (", ".join(f"{f} {n}" for f, n in counts.items()) or "none")
            for name, counts in parts]
    return "Objects not kept, why (tracked): " + "; ".join(said) + "."


def _move_table(move: dict, short: bool = False) -> list[str]:
    if not move:
        return []
    lines = ["| move | n | share of asked distance (labeler) | moved >= half | opposite move, "
             "along | random move, along (px) | colour segmenter: n, share | labeler vs colour "
             "(px): all; n, same object | object area after / before (median) | outside change | "
             "pieces kept (count) | objects kept (tracked) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for d, e in move.items():
        if short and d != "all":
            continue
        lines.append(
            f"| {d} | {e['n']} | {_pct(e['share_of_asked'])} | {_pct(e['success'])} | "
            f"{_pct(e.get('opposite_share_along', float('nan')))} | "
            f"{_num(e.get('random_shift_along_px', float('nan')), '{:+.2f}')} | "
            f"{e['colour_n']}, {_pct(e['colour_share_of_asked'])} | "
            f"{_num(e['labeler_vs_colour_px'], '{:.2f}')}; {e['colour_same_n']}, "
            f"{_num(e['labeler_vs_colour_same_px'], '{:.2f}')} | "
            f"{_num(e['area_ratio_median'], 'x{:.2f}')} | {_num(e['outside_change'])} | "
            f"{_pct(e['kept'])} | {_pct(e['objects_kept'])} |")
    return lines


def _push_table(depth: dict) -> list[str]:
    if not depth:
        return []
    lines = ["| depth push | n | as asked (new mask vs old) | random-field control, as asked | "
             "mean change (z) | object area after / before (median) | outside change | "
             "pieces kept (count) | objects kept (tracked) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, e in depth.items():
        lines.append(f"| {name} | {e['n']} | {_pct(e['as_asked'])} | "
                     f"{_pct(e['random_as_asked'])} | {_num(e['mean_change'], '{:+.3f}')} | "
                     f"{_num(e['area_ratio_median'], 'x{:.2f}')} | "
                     f"{_num(e['outside_change'])} | {_pct(e['kept'])} | "
                     f"{_pct(e['objects_kept'])} |")
    return lines


def example_grid(examples: list, path: Path, n: int = 8, scale: int = 3) -> None:
    """Rows of (original | target mask over the original | edited) for the first n examples."""
    from PIL import Image

    tiles = []
    for _, before, target, after in examples[:n]:
        overlay = before.copy()
        overlay[target] = (0.4 * overlay[target] + 0.6 * MASK_COLOUR).astype(np.uint8)
        tiles.append(np.concatenate([before, overlay, after], 1))
    if not tiles:  # no moves: no grid, and none left from an earlier run under this name
        path.unlink(missing_ok=True)
        path.with_suffix(".txt").unlink(missing_ok=True)
        return
    grid = np.concatenate(tiles, 0)
    Image.fromarray(upscale(grid, scale)).save(path)
    path.with_suffix(".txt").write_text(
        "Each row: original | target mask (magenta: the edited object moved, the others where "
        "they were) over the original | edited image.\n"
        + "\n".join(f"{k + 1}. {p}" for k, (p, *_rest) in enumerate(examples[:n])) + "\n")


def write_edit_report(out_dir: str | Path, summary: dict, examples: list) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    (out / "table.md").write_text(table(summary))
    example_grid(examples, out / "examples.png")
    return out
