"""The edit report's headline: every protocol run side by side, the targets met or missed, and
what the probes add beyond the carry by both scorers.

    >>> report = summarise_protocol("docs/interventions/test-446000")   # writes report.json, .md
    >>> [t["met"] for t in report["targets"]]

Differences between two runs are paired by image (the same seeds, the same edits): for every
image, the mean over its moves of one run less the other's, with a 95% bootstrap interval over
images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .protocol import protocol_runs
from .report import bootstrap_mean, colour_share, share_of_asked

SEALED = range(400_000, 500_000)  # where a sealed test range is chosen

# (key, what, threshold, ">=" or "<="): the targets of the default method on the sealed range
TARGETS = (
    ("move_every_direction", "move: share of the asked distance, worst direction", 0.90, ">="),
    ("objects_kept", "move: every object kept (tracked)", 0.90, ">="),
    ("objects_kept_strict", "move: every object kept strictly (one piece, area within 30%)",
     0.80, ">="),
    ("objects_kept_3", "move: every object kept, 3-object scenes", 0.85, ">="),
    ("colour_share", "move: share of the asked distance by the colour scorer", 0.95, ">="),
    ("probes_add_colour", "move: what the probes add over the carry alone, colour scorer "
     "(points)", 0.10, ">="),
    ("nearer", "push nearer: as asked (labeler)", 0.85, ">="),
    ("farther", "push farther: as asked (labeler)", 0.85, ">="),
    ("nearer_shuffled", "push nearer with shuffled-label probes (control)", 0.50, "<="),
    ("farther_shuffled", "push farther with shuffled-label probes (control)", 0.50, "<="),
    ("nearer_magnitude", "push nearer: median change / asked", 0.50, ">="),
    ("farther_magnitude", "push farther: median change / asked", 0.50, ">="),
    ("outside_moves", "move: change outside the edit, no margin", 0.03, "<="),
    ("outside_pushes", "push: change outside the edit, no margin (worse of the two)", 0.03,
     "<="),
)


def load_runs(folder: Path) -> dict:
    """{run name: its metrics.json} for every protocol run found in `folder`."""
    out = {}
    for run in protocol_runs():
        path = folder / run.name / "metrics.json"
        if path.is_file():
            out[run.name] = json.loads(path.read_text())
    return out


def paired_difference(a: dict, b: dict, measure) -> dict:
    """Run a less run b, paired by image and move: `measure(move)` (None: not read) averaged
    over the moves both runs made and read, with a 95% bootstrap interval over images."""
    rows_b = {(r["prompt"], r["seed"]): r for r in b["rows"]}
    per_image = []
    for ra in a["rows"]:
        rb = rows_b.get((ra["prompt"], ra["seed"]))
        if rb is None:
            continue
        diffs = []
        for d, ma in ra["moves"].items():
            mb = rb["moves"].get(d)
            va, vb = measure(ma), measure(mb) if mb else None
            if va is not None and vb is not None:
                diffs.append(va - vb)
        per_image.append(diffs)
    flat = [x for xs in per_image for x in xs]
    return {"n_moves": len(flat), "mean": float(np.mean(flat)) if flat else float("nan"),
            "ci": bootstrap_mean(per_image)}


def _value(runs: dict, key: str) -> tuple[float, list[float] | None]:
    """(value, its 95% interval or None) of one target on the protocol's runs."""
    g = runs.get("guided", {})
    move = g.get("move", {})
    depth = g.get("depth", {})
    shuffled = runs.get("shuffled-probes", {}).get("depth", {})
    nan = float("nan")
    if key == "move_every_direction":
        worst = min((e["share_of_asked"], e["share_of_asked_ci"]) for d, e in move.items()
                    if d != "all") if move else (nan, None)
        return worst
    if key in ("objects_kept", "objects_kept_strict"):
        return move["all"][key], move["all"][f"{key}_ci"]
    if key == "objects_kept_3":
        three = g.get("by_objects", {}).get("3", {}).get("move", {}).get("all")
        return (three["objects_kept"], three["objects_kept_ci"]) if three else (nan, None)
    if key == "colour_share":
        return move["all"]["colour_share_of_asked"], move["all"]["colour_share_of_asked_ci"]
    if key == "probes_add_colour":
        if "carry-only" not in runs:
            return nan, None
        d = paired_difference(g, runs["carry-only"], colour_share)
        return d["mean"], d["ci"]
    if key in ("nearer", "farther"):
        return depth[key]["as_asked"], depth[key]["as_asked_ci"]
    if key.endswith("_shuffled"):
        e = shuffled.get(key.split("_")[0])
        return (e["as_asked"], e["as_asked_ci"]) if e else (nan, None)
    if key.endswith("_magnitude"):
        e = depth[key.split("_")[0]]
        return e["median_magnitude"], e["median_magnitude_ci"]
    if key == "outside_moves":
        return move["all"]["outside_change_no_margin"], None
    return max((e["outside_change_no_margin"] for e in depth.values()), default=nan), None


def targets(runs: dict) -> list[dict]:
    """Every target with its value on the sealed range, its interval and whether it is met."""
    out = []
    for key, what, bar, way in TARGETS:
        try:
            value, ci = _value(runs, key)
        except (KeyError, ValueError):
            value, ci = float("nan"), None
        met = bool(np.isfinite(value) and (value >= bar if way == ">=" else value <= bar))
        out.append({"key": key, "what": what, "target": f"{way} {bar:g}", "value": value,
                    "ci": ci, "met": met})
    return out


def probes_add(runs: dict) -> dict:
    """What the default method's probe gradient adds to a move over each control that lacks
    it, by the labeler and by the colour scorer (paired by image)."""
    g = runs.get("guided")
    out = {}
    for control in ("carry-only", "shuffled-probes", "guidance-only", "latent-shift"):
        if g is None or control not in runs:
            continue
        out[control] = {"labeler": paired_difference(g, runs[control], share_of_asked),
                        "colour": paired_difference(g, runs[control], colour_share)}
    return out


# (label, section, key, has an interval): the side-by-side table's rows
ROWS = (
    ("share of the asked distance (labeler)", "move", "share_of_asked", True),
    ("share of the asked distance (colour scorer)", "move", "colour_share_of_asked", True),
    ("every object kept (tracked)", "move", "objects_kept", True),
    ("every object kept strictly", "move", "objects_kept_strict", True),
    ("edited object split", "move", "split_rate", False),
    ("outside change, no margin", "move", "outside_change_no_margin", False),
    ("the app's verdict: worked", "move", "verdict_pass", True),
    ("opposite move, read along the asked direction (mean of directions)", "move",
     "opposite_share_along", False),
    ("nearer: as asked (labeler)", "nearer", "as_asked", True),
    ("nearer: as asked (colour scorer)", "nearer", "colour_as_asked", True),
    ("nearer: median change / asked", "nearer", "median_magnitude", True),
    ("nearer: reached half the asked change", "nearer", "reached_half", True),
    ("nearer: every object kept strictly", "nearer", "objects_kept_strict", True),
    ("nearer: the app's verdict: worked", "nearer", "verdict_pass", True),
    ("nearer: random-field control, as asked", "nearer", "random_as_asked", True),
    ("farther: as asked (labeler)", "farther", "as_asked", True),
    ("farther: as asked (colour scorer)", "farther", "colour_as_asked", True),
    ("farther: median change / asked", "farther", "median_magnitude", True),
    ("farther: reached half the asked change", "farther", "reached_half", True),
    ("farther: every object kept strictly", "farther", "objects_kept_strict", True),
    ("farther: the app's verdict: worked", "farther", "verdict_pass", True),
    ("farther: random-field control, as asked", "farther", "random_as_asked", True),
)


def _entry(run: dict, section: str) -> dict | None:
    return (run.get("move", {}).get("all") if section == "move"
            else run.get("depth", {}).get(section))


def _opposite(run: dict) -> dict:
    """The opposite-direction control of the moves, averaged over the directions."""
    along = [e["opposite_share_along"] for d, e in run.get("move", {}).items()
             if d != "all" and np.isfinite(e.get("opposite_share_along", float("nan")))]
    return {"opposite_share_along": float(np.mean(along)) if along else float("nan")}


def _cell(run: dict, section: str, key: str, interval: bool) -> str:
    e = _opposite(run) if key == "opposite_share_along" else _entry(run, section)
    if e is None or key not in e or not np.isfinite(e[key]):
        return "-"
    value = e[key]
    if key == "outside_change_no_margin":
        return f"{value:.3f}"
    ci = e.get(f"{key}_ci") if interval else None
    text = f"{value:.0%}" if key != "median_magnitude" else f"{value:.2f}"
    if ci and all(np.isfinite(ci)):
        text += (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if key != "median_magnitude"
                 else f" [{ci[0]:.2f}, {ci[1]:.2f}]")
    if key == "colour_as_asked":
        text += f" (n {e.get('colour_n', 0)})"
    return text


def side_by_side(runs: dict) -> list[str]:
    names = [r.name for r in protocol_runs() if r.name in runs]
    lines = ["| measure | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for label, section, key, interval in ROWS:
        cells = [_cell(runs[n], section, key, interval) for n in names]
        if any(c != "-" for c in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _number(value: float, ci) -> str:
    if not np.isfinite(value):
        return "not measured"
    text = f"{value:.3f}"
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci and all(np.isfinite(ci)) else "")


def plainly(control: str, d: dict) -> str:
    """One sentence: whether the default's gain over `control` is seen by both scorers, only
    by the labeler the probes were trained on, or by neither (95% intervals against zero)."""
    def gain(x):
        ci = x["ci"]
        return bool(ci and np.all(np.isfinite(ci)) and ci[0] > 0)
    by_labeler, by_colour = gain(d["labeler"]), gain(d["colour"])
    said = ("both scorers see it" if by_labeler and by_colour else
            "**only the labeler sees it** (the colour scorer's interval holds zero)"
            if by_labeler else "the colour scorer alone sees it" if by_colour else
            "neither scorer's interval is above zero")
    return f"- Over `{control}`: {said}."


def report_markdown(report: dict) -> str:
    """The short page: where the figures come from, the targets, the runs side by side."""
    first, last = report["seeds"][:2]
    if SEALED.start <= first and last < SEALED.stop:
        head = [f"# Edits on the sealed test range {first}-{last}", "",
                f"{report['n_images']} images, run once at commit `{report['commit']}` after "
                "the design was frozen (tuned on validation seeds only)."]
    else:
        head = [f"# Edits on seeds {first}-{last} (not a sealed range: tuning only)", "",
                f"{report['n_images']} images, commit `{report['commit']}`."]
    lines = head + ["95% bootstrap intervals over images. Each run's own tables are in its "
                    "folder here.", "",
             "## Targets of the default method", "", "| target | bar | measured | met |",
             "|---|---|---|---|"]
    for t in report["targets"]:
        lines.append(f"| {t['what']} | {t['target']} | {_number(t['value'], t['ci'])} | "
                     f"{'yes' if t['met'] else '**no**'} |")
    lines += ["", "## What the probes add to a move (paired by image)", "",
              "| the default less | labeler: points of the asked distance | colour scorer |",
              "|---|---|---|"]
    for control, d in report["probes_add"].items():
        lines.append(f"| `{control}` | {_number(d['labeler']['mean'], d['labeler']['ci'])} | "
                     f"{_number(d['colour']['mean'], d['colour']['ci'])} |")
    lines += [""] + [plainly(c, d) for c, d in report["probes_add"].items()]
    lines += ["", "## Every run side by side", ""] + side_by_side(report["runs"])
    lines += ["", "Runs: " + "; ".join(f"`{r['name']}`: {r['role']}" for r in report["roles"]),
              ""]
    return "\n".join(lines)


def summarise_protocol(folder: str | Path) -> dict:
    """Reads every protocol run in `folder`, writes report.json and report.md there."""
    folder = Path(folder)
    runs = load_runs(folder)
    if "guided" not in runs:
        raise FileNotFoundError(f"no finished run of the default method in {folder.name}")
    meta = runs["guided"]["protocol"]
    slim = {name: {k: v for k, v in r.items() if k != "rows"} for name, r in runs.items()}
    report = {"seeds": meta["seeds"], "commit": meta["commit"],
              "commits": {n: r["protocol"]["commit"] for n, r in runs.items()},
              "n_images": runs["guided"]["n"], "targets": targets(runs),
              "probes_add": probes_add(runs), "runs": slim,
              "roles": [{"name": r.name, "role": r.role} for r in protocol_runs()
                        if r.name in runs]}
    (folder / "report.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    (folder / "report.md").write_text(report_markdown(report))
    return report
