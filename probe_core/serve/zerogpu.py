"""`spaces.GPU` for functions that run a model, when the app runs on a ZeroGPU Space.

    >>> on_generate = on_gpu(on_generate, duration=120)   # identity off ZeroGPU

Hugging Face sets SPACES_ZERO_GPU on ZeroGPU hardware and provides the `spaces` package there;
a decorated function is given a GPU while it runs. Elsewhere the function is returned as is.
"""

from __future__ import annotations

import os


def zero_gpu_available() -> bool:
    return "SPACES_ZERO_GPU" in os.environ


def on_gpu(fn, duration: int = 60):
    """`spaces.GPU(fn, duration=duration)` on ZeroGPU, else `fn` itself."""
    if not zero_gpu_available():
        return fn
    import spaces

    return spaces.GPU(fn, duration=duration)
