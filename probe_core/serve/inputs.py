"""Checks of what a visitor sends: each raises `ValueError` with a message fit to show them.

    >>> bounded("seed", "12", 0, 2**32 - 1)        # 12.0
    >>> check_generation(tokenizer, prompt, seed, steps, guidance)   # (prompt, seed, steps, guidance)
"""

from __future__ import annotations

import math

from ..settings import MAX_GUIDANCE, MAX_PROMPT_CHARS, MAX_SEED, MAX_STEPS
from ..world.tiny_ldm import check_prompt


MAX_SIDE = 4096  # pixels: a larger image (upload, painted mask) is refused before resizing


def echo(value, limit: int = 40) -> str:
    """A visitor's value as a message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def bounded(name: str, value, low: float, high: float) -> float:
    """`value` as a finite float in [low, high], else a ValueError naming `name`."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {echo(value)}") from None
    if not math.isfinite(x) or not low <= x <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {echo(value)}")
    return x


def whole(name: str, value, low: int, high: int) -> int:
    """`value` as an int in [low, high]; a fraction is refused, not rounded."""
    x = bounded(name, value, low, high)
    if x != int(x):
        raise ValueError(f"{name} must be a whole number, got {echo(value)}")
    return int(x)


def check_finished(run, to_do: str) -> None:
    """A run must exist and have reached its last step (not stopped) for `to_do`."""
    if run is None or not run.steps:
        raise ValueError(f"generate an image first, then {to_do}")
    if not run.done:
        raise ValueError(f"this run was stopped at step {len(run.steps)} of "
                         f"{run.num_inference_steps}: its steps can be scrubbed; generate it to "
                         f"the end to {to_do}")


def step_number(name: str, value, first: int, last: int) -> int:
    """A step as the page numbers them (from 1), checked against [first, last] and returned as
    a 0-based index."""
    return whole(name, value, first, last) - 1


def check_prompt_text(prompt, allow_empty: bool = False, name: str = "prompt") -> str:
    """A prompt must be text of at most MAX_PROMPT_CHARS characters, and not empty unless
    `allow_empty`: checked before any other work on it, so a huge prompt costs nothing."""
    if not isinstance(prompt, str):
        raise ValueError(f"{name} must be text")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"{name} is {len(prompt)} characters long; at most "
                         f"{MAX_PROMPT_CHARS} are read")
    if not prompt.strip() and not allow_empty:
        raise ValueError("type a prompt first (an empty prompt would generate an "
                         "unconditional image, which this app does not offer)")
    return prompt


def check_generation(tokenizer, prompt, seed, num_inference_steps, guidance_scale,
                     max_steps: int = MAX_STEPS):
    """(prompt, seed, steps, guidance) checked and converted; unknown words of a word-level
    tokenizer raise `UnknownWordsError` (a ValueError)."""
    prompt = check_prompt_text(prompt)
    seed = whole("seed", seed, 0, MAX_SEED)
    steps = whole("steps", num_inference_steps, 1, max_steps)
    guidance = bounded("guidance", guidance_scale, 0.0, MAX_GUIDANCE)
    check_prompt(tokenizer, prompt)
    return prompt, seed, steps, guidance
