"""The rule an edit's verdict applies, as the app's score card states it.

    >>> ok, checks = verdict(result)     # result: an outcome.EditOutcome; True if every check passed

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

from .outcome import EditOutcome, PartOutcome
from .request import DRAWN, EditRequest

SHARE_OF_ASKED = 0.5  # at least half of what was asked
MAX_OUTSIDE_CHANGE = 0.15  # mean absolute pixel change outside the edit, 0-1


def part_checks(part: PartOutcome, request: EditRequest) -> list[tuple[bool, str]]:
    """(passed, text) for each check of one part of an edit (none for a part that only keeps
    the objects' outlines)."""
    s, checks = part.scores, []
    if part.kept:
        return checks
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
