"""Checks of what a visitor sends: each raises `ValueError` with a message fit to show them.

    >>> bounded("seed", "12", 0, 2**32 - 1)        # 12.0
    >>> check_generation(tokenizer, prompt, seed, steps, guidance)   # (prompt, seed, steps, guidance)
"""

from __future__ import annotations

import math

from ..settings import MAX_GUIDANCE, MAX_SEED, MAX_STEPS
from ..world.tiny_ldm import check_prompt


def bounded(name: str, value, low: float, high: float) -> float:
    """`value` as a finite float in [low, high], else a ValueError naming `name`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or not low <= x <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return x


def check_generation(tokenizer, prompt, seed, num_inference_steps, guidance_scale):
    """(prompt, seed, steps, guidance) checked and converted; unknown words of a word-level
    tokenizer raise `UnknownWordsError` (a ValueError)."""
    if not isinstance(prompt, str):
        raise ValueError("prompt must be text")
    seed = int(bounded("seed", seed, 0, MAX_SEED))
    steps = int(bounded("steps", num_inference_steps, 1, MAX_STEPS))
    guidance = bounded("guidance", guidance_scale, 0.0, MAX_GUIDANCE)
    check_prompt(tokenizer, prompt)
    return prompt, seed, steps, guidance
