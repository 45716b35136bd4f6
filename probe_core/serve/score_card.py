"""The Markdown score card of an intervention, as the app shows it.

    >>> score_card(outcome)    # '**move the object 16 px right** via `guided` in 0.52 s ...'
"""

from __future__ import annotations

import numpy as np

from .steering import EditOutcome


def probe_steps_line(probe_steps: dict) -> str:
    """Which probe set steps the edited steps used, 1-based; empty when each used its own."""
    if all(k == v for k, v in probe_steps.items()):
        return ""
    pairs = ", ".join(f"{k + 1} -> {v + 1}" for k, v in sorted(probe_steps.items()))
    return (f"\n\nThis run's schedule is not the probe set's: each edited step used the "
            f"probes of the probed step nearest in time (run step -> probe step: {pairs}).")


def score_card(edit: EditOutcome) -> str:
    s = edit.scores
    first, last = edit.request.first_step + 1, edit.request.last_step + 1
    head = (f"**{edit.description}** via `{edit.request.method}` at steps {first}-{last} in "
            f"{edit.seconds:.2f} s" + probe_steps_line(edit.probe_steps))
    if not s:
        return head + " (no labeler: not scored)"
    if edit.task == "saliency":
        ok = s["dice_after"] - s["dice_before"]
        return (f"{head}\n\n| | unedited | edited |\n|---|---|---|\n"
                f"| Dice with target | {s['dice_before']:.2f} | {s['dice_after']:.2f} "
                f"({ok:+.2f}) |\n"
                f"| object centre moved | - | x {s['shift_x']:+.1f} px, y {s['shift_y']:+.1f} px "
                f"(asked x {s['asked_x']:+.1f}, y {s['asked_y']:+.1f}) |\n"
                f"| object area | {s['area_before']} px | {s['area_after']} px |\n"
                f"| change outside the edit | - | {s['outside_change']:.3f} |\n\n"
                + (f"The move takes {100 * s['target_cut']:.0f}% of the object past the image "
                   "edge; the target keeps the part inside, so its centre moves less than "
                   "asked on the sliders.\n\n" if s.get("target_cut", 0.0) > 0.02 else "")
                + ("**The edit worked.**" if ok >= 0.1 else "**The edit did not take.**"))
    moved = s["depth_change"] * np.sign(s["asked"])
    return (f"{head}\n\n| | unedited | edited |\n|---|---|---|\n"
            f"| object depth (z units, + = near) | {s['depth_before']:+.2f} | "
            f"{s['depth_after']:+.2f} |\n"
            f"| change outside the object | - | {s['outside_change']:.3f} |\n\n"
            + ("**The object moved as asked.**" if moved > 0
               else "**The object did not move as asked.**"))
