"""The Markdown score card of an intervention, as the app shows it, with the rule its verdict
applies, stated on the card.

    >>> ok, checks = verdict(outcome)     # True only if every check passed
    >>> score_card(outcome)               # '**move the object 16 px right** via `guided` ...'

The rule: the edit worked when, for every part of it, the labelled object did at least half of
what was asked (its centre moved at least half the asked distance along the asked direction;
its area changed at least half as much as a scale asked, on a log scale; its depth moved at
least half the asked change, in the asked direction; a painted or flipped mask: its Dice with
the target rose; a swapped or shifted depth map: the labelled depth map's Pearson r with the
target rose) and the image changed little outside the edited region (mean absolute pixel
change at most MAX_OUTSIDE_CHANGE of the 0-1 range).
"""

from __future__ import annotations

import math

from .steering import DRAWN, EditOutcome, PartOutcome, SteerRequest

SHARE_OF_ASKED = 0.5  # at least half of what was asked
MAX_OUTSIDE_CHANGE = 0.15  # mean absolute pixel change outside the edit, 0-1


def probe_steps_line(probe_steps: dict) -> str:
    """Which probe set steps the edited steps used, 1-based; empty when each used its own."""
    if all(k == v for k, v in probe_steps.items()):
        return ""
    pairs = ", ".join(f"{k + 1} -> {v + 1}" for k, v in sorted(probe_steps.items()))
    return (f"\n\nThis run's schedule is not the probe set's: each edited step used the "
            f"probes of the probed step nearest in time (run step -> probe step: {pairs}).")


def part_checks(part: PartOutcome, request: SteerRequest) -> list[tuple[bool, str]]:
    """(passed, text) for each check of one part of an edit."""
    s, checks = part.scores, []
    if part.task == "saliency":
        ax, ay = s["asked_x"], s["asked_y"]
        asked = math.hypot(ax, ay)
        # a flip alone moves the centre only by the object's asymmetry: its Dice is the check
        flip_only = request.drawn == "flip" and not (request.move_x or request.move_y)
        if asked >= 1.0 and not flip_only:
            along = (s["shift_x"] * ax + s["shift_y"] * ay) / asked
            checks.append((along >= SHARE_OF_ASKED * asked,
                           f"centre moved {along:+.1f} px along the asked {asked:.1f} px "
                           f"(needs >= {SHARE_OF_ASKED * asked:.1f})"))
        factor = request.scale
        if factor != 1.0:
            wanted = 2 * math.log(factor)  # log of the asked area ratio
            got = math.log(max(s["area_after"], 1) / max(s["area_before"], 1))
            checks.append((got / wanted >= SHARE_OF_ASKED,
                           f"area x{math.exp(got):.2f} for the asked x{factor ** 2:.2f} "
                           f"(needs at least half of it on a log scale)"))
        if request.drawn in ("paint", "flip"):
            checks.append((s["dice_after"] > s["dice_before"],
                           f"Dice with the {DRAWN[request.drawn]} rose "
                           f"{s['dice_before']:.2f} -> {s['dice_after']:.2f} (needs a rise)"))
    else:
        asked = s["asked"]
        if abs(asked) >= 0.1:
            moved = s["depth_change"] * math.copysign(1.0, asked)
            checks.append((moved >= SHARE_OF_ASKED * abs(asked),
                           f"object depth moved {moved:+.2f} z-units toward the asked "
                           f"{abs(asked):.2f} (needs >= {SHARE_OF_ASKED * abs(asked):.2f})"))
        if request.drawn == "swap" or request.shift_x or request.shift_y:
            checks.append((s["map_r_after"] > s["map_r_before"],
                           f"depth map's r with the target rose {s['map_r_before']:+.2f} -> "
                           f"{s['map_r_after']:+.2f} (needs a rise)"))
    return checks


def verdict(edit: EditOutcome) -> tuple[bool, list[str]]:
    """(worked, one line per check with its numbers): every part's checks and the change
    outside the edit."""
    checks = [c for part in edit.parts for c in part_checks(part, edit.request)]
    outside = edit.scores["outside_change"]
    checks.append((outside <= MAX_OUTSIDE_CHANGE,
                   f"change outside the edit {outside:.3f} (needs <= {MAX_OUTSIDE_CHANGE})"))
    return all(ok for ok, _ in checks), [("pass: " if ok else "fail: ") + text
                                         for ok, text in checks]


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
               f"{s['map_r_after']:+.2f} |\n" if "map_r_before" in s else "") + "\n")


def score_card(edit: EditOutcome) -> str:
    first, last = edit.request.first_step + 1, edit.request.last_step + 1
    head = (f"**{edit.description}** via `{edit.request.method}` at steps {first}-{last} in "
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
