"""ProbeDemo: the plain-Python facade the app calls. No gradio import here.

    >>> demo = ProbeDemo.embedded()
    >>> image = demo.generate("a large red sphere on a gray plain floor", seed=0)  # (256, 256, 3)

Every public method validates its input and raises `ValueError` with a message fit to show a user.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .scenes import render_scene, sample_scene
from .tiny_ldm import DEFAULT_GUIDANCE, check_prompt, generate, load_pipeline
from .viz import upscale

EMBEDDED_MODEL = Path(__file__).resolve().parents[1] / "weights" / "tiny-scenes"
MAX_SEED = 2**32 - 1
MAX_STEPS = 100
MAX_GUIDANCE = 20.0
DISPLAY_SIZE = 256  # pixels per side of images shown in the app


def _finite(name: str, value, low: float, high: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x) or not low <= x <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return x


class ProbeDemo:
    """Wraps one loaded pipeline and answers the app's requests.

        >>> demo = ProbeDemo.embedded()
        >>> demo.vocabulary()[:3], demo.example_prompts(2)
    """

    def __init__(self, pipe, name: str):
        self.pipe = pipe
        self.name = name

    @classmethod
    def embedded(cls, folder: str | Path = EMBEDDED_MODEL) -> "ProbeDemo":
        return cls(load_pipeline(folder), "tiny-scenes (embedded)")

    def vocabulary(self) -> list[str]:
        return sorted(w for w in self.pipe.tokenizer.get_vocab() if not w.startswith("<"))

    def example_prompts(self, n: int = 6) -> list[str]:
        """Captions of held-out scenes (seeds below the training range)."""
        return [render_scene(sample_scene(s), size=16).caption for s in range(20_000, 20_000 + n)]

    def generate(self, prompt: str, seed=0, num_inference_steps=25,
                 guidance_scale=DEFAULT_GUIDANCE) -> np.ndarray:
        """Returns the image upscaled to DISPLAY_SIZE, (S, S, 3) uint8."""
        if not isinstance(prompt, str):
            raise ValueError("prompt must be text")
        seed = int(_finite("seed", seed, 0, MAX_SEED))
        steps = int(_finite("steps", num_inference_steps, 1, MAX_STEPS))
        guidance = _finite("guidance", guidance_scale, 0.0, MAX_GUIDANCE)
        check_prompt(self.pipe.tokenizer, prompt)  # UnknownWordsError is a ValueError
        image = generate(self.pipe, prompt, seed=seed, num_inference_steps=steps,
                         guidance_scale=guidance)
        return upscale(image, max(1, DISPLAY_SIZE // image.shape[0]))
