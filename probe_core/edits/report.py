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


def summarise(rows: list[dict], skipped: int, settings: EditSettings, suite: EditSuite) -> dict:
    """The report of one evaluation: its settings, moves and pushes overall and by the number
    of objects in the scene, and every image's row."""
    s = settings
    out = {"method": s.method, "n": len(rows), "skipped_no_object": skipped,
           "settings": {"strength": s.strength, "steps": list(s.steps),
                        "iterations": s.iterations,
                        "layers": list(s.layers) if s.layers is not None else None,
                        "depth_delta": suite.depth_delta, "directions": list(suite.directions),
                        "region_margin": s.region_margin, "push_room": s.push_room,
                        "saliency_shrink": s.saliency_shrink, "carry_step": s.carry_at((1, 0)),
                        "push_steps": list(s.edit_steps("depth")),
                        "push_outline": list(s.push_outline),
                        "scheduler": s.scheduler or "default"},
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
