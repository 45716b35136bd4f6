"""The edit evaluation's report: summaries of every image's scores, Markdown tables and an
example grid.

    >>> summary = summarise(rows, skipped, settings, suite)     # from `evaluate.evaluate_edits`
    >>> print(table(summary))
    >>> write_edit_report("docs/interventions/guided", summary, examples)

Moves are summarised per direction (share of the asked distance moved by the labeler, success
rate, the opposite direction's and a random move's travel along it, the colour segmenter's
view and its agreement with the labeler, area, outside change, objects kept); pushes by how
often they went as asked against their random-field control.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..viz import MASK_COLOUR, upscale
from .edit_settings import EditSettings
from .suite import DIRECTIONS, EditSuite, unit

SUCCESS_SHARE = 0.5  # a move succeeds when the centroid travels half the asked distance along it
BOOTSTRAP = 2000  # resamples of the images for a 95% interval


def bootstrap_mean(per_image: list[list[float]], seed: int = 0) -> list[float]:
    """[low, high]: the 95% bootstrap interval of the mean of every item, the images (each a
    list of its items: its moves, or its one push) resampled with replacement."""
    per_image = [[x for x in items if x is not None and np.isfinite(x)] for items in per_image]
    per_image = [items for items in per_image if items]
    if not per_image:
        return [float("nan"), float("nan")]
    sums = np.array([sum(items) for items in per_image], float)
    counts = np.array([len(items) for items in per_image], float)
    pick = np.random.default_rng(seed).integers(0, len(sums), (BOOTSTRAP, len(sums)))
    means = sums[pick].sum(1) / counts[pick].sum(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def bootstrap_median(values: list[float], seed: int = 0) -> list[float]:
    """[low, high]: the 95% bootstrap interval of the median of one value per image."""
    values = np.array([v for v in values if v is not None and np.isfinite(v)], float)
    if not len(values):
        return [float("nan"), float("nan")]
    pick = np.random.default_rng(seed).integers(0, len(values), (BOOTSTRAP, len(values)))
    medians = np.median(values[pick], axis=1)
    return [float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))]


def share_of_asked(move: dict) -> float:
    """How much of the asked distance a move went along its direction, by the labeler (0 where
    the labeler lost the object)."""
    return move["labeler_along"] / move["distance"] if move["labeler_along"] is not None else 0.0


def colour_share(move: dict) -> float | None:
    """The same by the colour segmenter, where both scorers read the move (else None)."""
    if move["colour_along"] is None or move["labeler_along"] is None:
        return None
    return move["colour_along"] / move["distance"]


def strict_move_summary(rows: list[dict], direction: str) -> dict:
    """The stricter figures of the moves in `direction` ("all": every move), each headline
    figure with its 95% bootstrap interval over images."""
    per_image = [[m for k, m in r["moves"].items() if direction in ("all", k)] for r in rows]
    moves = [m for ms in per_image for m in ms]

    def values(fn):
        return [[fn(m) for m in ms] for ms in per_image]

    return {"share_of_asked_ci": bootstrap_mean(values(share_of_asked)),
            "colour_share_of_asked_ci": bootstrap_mean(values(colour_share)),
            "objects_kept_ci": bootstrap_mean(values(lambda m: float(m["objects_kept"]))),
            "objects_kept_strict": _mean([float(m["objects_kept_strict"]) for m in moves]),
            "objects_kept_strict_ci": bootstrap_mean(
                values(lambda m: float(m["objects_kept_strict"]))),
            "split_rate": _mean([float(m["split"]) for m in moves]),
            "outside_change_no_margin": _mean([m["outside_change_no_margin"] for m in moves]),
            "verdict_pass": _mean([float(m.get("verdict", False)) for m in moves]),
            "verdict_pass_ci": bootstrap_mean(values(lambda m: float(m.get("verdict", False))))}


def strict_push_summary(asked: list[dict], control: list[dict]) -> dict:
    """The stricter figures of one kind of push (one per image), with 95% bootstrap intervals:
    how far it went (the change as a share of the asked one: median, share reaching half),
    objects kept strictly, split rate, outside change with no margin."""
    magnitude = [p["magnitude"] for p in asked]

    def each(key, pushes=asked):  # one item per image: its push's flag (None: not read)
        return [[None if p.get(key) is None else float(p[key])] for p in pushes]

    return {"as_asked_ci": bootstrap_mean(each("as_asked")),
            "random_as_asked_ci": bootstrap_mean(each("as_asked", control)),
            "median_magnitude": _median(magnitude),
            "median_magnitude_ci": bootstrap_median(magnitude),
            "reached_half": _mean([float(m >= 0.5) for m in magnitude]),
            "reached_half_ci": bootstrap_mean([[float(m >= 0.5)] for m in magnitude]),
            "objects_kept_ci": bootstrap_mean(each("objects_kept")),
            "objects_kept_strict": _mean([float(p["objects_kept_strict"]) for p in asked]),
            "objects_kept_strict_ci": bootstrap_mean(each("objects_kept_strict")),
            "split_rate": _mean([float(p["split"]) for p in asked]),
            "outside_change_no_margin": _mean([p["outside_change_no_margin"] for p in asked]),
            "verdict_pass": _mean([float(p.get("verdict", False)) for p in asked]),
            "verdict_pass_ci": bootstrap_mean(each("verdict")),
            "colour_n": sum(p.get("colour_as_asked") is not None for p in asked),
            "colour_as_asked": _mean([float(p["colour_as_asked"]) for p in asked
                                      if p.get("colour_as_asked") is not None]),
            "colour_as_asked_ci": bootstrap_mean(each("colour_as_asked")),
            "random_colour_as_asked": _mean([float(p["colour_as_asked"]) for p in control
                                             if p.get("colour_as_asked") is not None])}


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
        share = [share_of_asked(m) for m in moves]
        both = [m for m in moves if colour_share(m) is not None]
        same = [m for m in both if m.get("same_object")]
        entry = {
            "n": len(moves),
            "share_of_asked": _mean(share),
            "success": _mean([float(s >= SUCCESS_SHARE) for s in share]),
            "colour_n": len(both),
            "colour_share_of_asked": _mean([colour_share(m) for m in both]),
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
        entry |= strict_move_summary(rows, d)
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
                         "faults": fault_counts(asked)} | strict_push_summary(asked, control)
    return out


def summarise(rows: list[dict], skipped: int, settings: EditSettings, suite: EditSuite) -> dict:
    """The report of one evaluation: its settings, moves and pushes overall and by the number
    of objects in the scene, and every image's row."""
    s = settings
    out = {"method": s.label, "n": len(rows), "skipped_no_object": skipped,
           "settings": {"strength": s.strength, "steps": list(s.steps),
                        "iterations": s.iterations,
                        "layers": list(s.layers) if s.layers is not None else None,
                        "depth_delta": suite.depth_delta, "directions": list(suite.directions),
                        "region_margin": s.region_margin, "push_room": s.push_room,
                        "saliency_shrink": s.saliency_shrink, "carry_step": s.move_carry_step,
                        "push_steps": list(s.edit_steps("depth")),
                        "push_outline": list(s.push_outline),
                        "scheduler": s.scheduler or "default", "objects": suite.objects},
           "move": move_summary(rows, suite.directions), "depth": push_summary(rows),
           "by_objects": {}}
    for n in sorted({r["n_objects"] for r in rows}):
        group = [r for r in rows if r["n_objects"] == n]
        out["by_objects"][str(n)] = {"n": len(group),
                                     "move": move_summary(group, suite.directions),
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
    lines += ["", _fault_line(summary), ""] + _strict_tables(summary)
    for n, group in summary.get("by_objects", {}).items():
        lines += ["", f"#### scenes with {n} object(s) ({group['n']} images)", ""]
        lines += _move_table(group["move"], short=True) + [""] + _push_table(group["depth"])
        lines += ["", _fault_line(group)]
    return "\n".join(lines) + "\n"


def _ci(x: float, ci: list[float]) -> str:
    return f"{_pct(x)} [{_pct(ci[0])}, {_pct(ci[1])}]"


def _strict_tables(summary: dict) -> list[str]:
    """The headline figures with 95% bootstrap intervals over images, and the stricter ones:
    objects kept strictly (each one piece, area within ±30%), split rate, outside change with
    no margin, a push's magnitude."""
    lines = ["Stricter figures, with 95% bootstrap intervals over images:", ""]
    if summary["move"]:
        lines += ["| move | share of asked distance | colour segmenter's share | objects kept "
                  "(tracked) | kept strictly | edited object split | outside change, no margin | "
                  "the app's verdict: worked |",
                  "|---|---|---|---|---|---|---|---|"]
        for d, e in summary["move"].items():
            lines.append(f"| {d} | {_ci(e['share_of_asked'], e['share_of_asked_ci'])} | "
                         f"{_ci(e['colour_share_of_asked'], e['colour_share_of_asked_ci'])} | "
                         f"{_ci(e['objects_kept'], e['objects_kept_ci'])} | "
                         f"{_ci(e['objects_kept_strict'], e['objects_kept_strict_ci'])} | "
                         f"{_pct(e['split_rate'])} | {_num(e['outside_change_no_margin'])} | "
                         f"{_ci(e['verdict_pass'], e['verdict_pass_ci'])} |")
        lines.append("")
    if summary["depth"]:
        lines += ["| depth push | as asked | random-field control | median change / asked | "
                  "reached half the asked change | objects kept (tracked) | kept strictly | "
                  "edited object split | outside change, no margin | the app's verdict: worked | "
                  "colour scorer (bottom edge and area): n, as asked; its random-field control |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, e in summary["depth"].items():
            lines.append(f"| {name} | {_ci(e['as_asked'], e['as_asked_ci'])} | "
                         f"{_ci(e['random_as_asked'], e['random_as_asked_ci'])} | "
                         f"{_ci(e['median_magnitude'], e['median_magnitude_ci'])} | "
                         f"{_ci(e['reached_half'], e['reached_half_ci'])} | "
                         f"{_ci(e['objects_kept'], e['objects_kept_ci'])} | "
                         f"{_ci(e['objects_kept_strict'], e['objects_kept_strict_ci'])} | "
                         f"{_pct(e['split_rate'])} | {_num(e['outside_change_no_margin'])} | "
                         f"{_ci(e['verdict_pass'], e['verdict_pass_ci'])} | {e['colour_n']}, "
                         f"{_ci(e['colour_as_asked'], e['colour_as_asked_ci'])}; "
                         f"{_pct(e['random_colour_as_asked'])} |")
    return lines


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
