"""The Markdown score card of an intervention, as the app shows it, with the rule its verdict
applies (`edits.verdict`), stated on the card.

    >>> score_card(result)     # '**move object by (16, 0) px** via `guided` at steps 6-9 ...'
"""

from __future__ import annotations

from ..edits.outcome import EditOutcome, PartOutcome
from ..edits.verdict import MAX_OUTSIDE_CHANGE, verdict


def probe_steps_line(probe_steps: dict) -> str:
    """Which probe set steps the edited steps used, 1-based; empty when each used its own."""
    if all(k == v for k, v in probe_steps.items()):
        return ""
    pairs = ", ".join(f"{k + 1} -> {v + 1}" for k, v in sorted(probe_steps.items()))
    return (f"\n\nThis run's schedule is not the probe set's: each edited step used the "
            f"probes of the probed step nearest in time (run step -> probe step: {pairs}).")


def part_table(part: PartOutcome) -> str:
    s = part.scores
    if part.task == "saliency":
        return (f"*Object mask: {part.description}*\n\n"
                f"| | unedited | edited |\n|---|---|---|\n"
                f"| Dice with target | {s['dice_before']:.2f} | {s['dice_after']:.2f} "
                f"({s['dice_after'] - s['dice_before']:+.2f}) |\n"
                f"| object centre moved | - | x {s['shift_x']:+.1f} px, y {s['shift_y']:+.1f} "
                f"px (asked x {s['asked_x']:+.1f}, y {s['asked_y']:+.1f}) |\n"
                f"| object area | {s['area_before']} px | {s['area_after']} px |\n\n"
                + (f"The move takes {100 * s['target_cut']:.0f}% of the object past the image "
                   "edge; the target keeps the part inside, so its centre moves less than "
                   "asked on the sliders.\n\n" if s.get("target_cut", 0.0) > 0.02 else ""))
    return (f"*Depth map: {part.description}*\n\n"
            f"| | unedited | edited |\n|---|---|---|\n"
            f"| object depth (z units, + = near; asked {s['asked']:+.2f}) | "
            f"{s['depth_before']:+.2f} | {s['depth_after']:+.2f} |\n"
            + (f"| depth map's Pearson r with the target | {s['map_r_before']:+.2f} | "
               f"{s['map_r_after']:+.2f} |\n" if "map_r_before" in s else "") + "\n"
            + colour_depth_line(s))


COLOUR_VERDICTS = {1: "nearer", -1: "farther", 0: "no verdict (its cues disagree)"}


def colour_depth_line(scores: dict) -> str:
    """The second opinion on a depth change, from a scorer that never sees the labeler: the
    object found by its caption's colour, its bottom edge and area (empty where it cannot
    read the object)."""
    said = scores.get("colour_depth_verdict")
    if said is None:
        return ""
    return (f"Second opinion, no labeler (the object by its colour): bottom edge "
            f"{scores['colour_bottom_shift']:+.0f} px (+ = lower, nearer), area "
            f"x{scores['colour_area_ratio']:.2f}: {COLOUR_VERDICTS[said]}.\n\n")


def score_card(edit: EditOutcome) -> str:
    steps = edit.plan.edit.steps
    first, last = min(steps) + 1, max(steps) + 1
    head = (f"**{edit.description}** via `{edit.settings.label}` at steps {first}-{last} in "
            f"{edit.seconds:.2f} s" + probe_steps_line(edit.probe_steps))
    if not edit.scores:
        return head + " (no labeler: not scored)"
    tables = "".join(part_table(p) for p in edit.parts)
    tables += f"Change outside the edit: {edit.scores['outside_change']:.3f}\n\n"
    ok, checks = verdict(edit)
    rule = ("Rule: the object does at least half of what was asked (a drawn target: its Dice "
            "or the depth map's r with the target rises), and the image changes at most "
            f"{MAX_OUTSIDE_CHANGE} outside the edit.")
    return (f"{head}\n\n{tables}"
            + ("**The edit worked.**" if ok else "**The edit did not do what was asked.**")
            + f" {rule}\n\n" + "\n".join(f"- {c}" for c in checks))
