"""What this deployment of the app allows, from the environment: one place for its limits.

    >>> d = Deployment.from_env()          # GRADIO_SERVER_NAME, SPACE_ID, SCENE_PROBE_* variables
    >>> d.public, d.allow_any_model, d.max_steps

A deployment is public when it runs on a Hugging Face Space (SPACE_ID is set) or listens on an
address other than loopback. A public one loads only the listed models unless
SCENE_PROBE_ANY_MODEL=1 says otherwise; a local one loads any hub id or folder unless
SCENE_PROBE_ANY_MODEL=0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..settings import MAX_STEPS

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _flag(value: str | None) -> bool | None:
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


def _int(env, name: str, default: int, low: int, high: int) -> int:
    text = env.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = int(text)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise SystemExit(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Deployment:
    server_name: str = "127.0.0.1"
    public: bool = False  # served beyond this machine
    allow_any_model: bool = True  # visitors may name any hub id or server folder
    max_steps: int = MAX_STEPS  # denoising steps a request may ask for
    max_queue: int = 32  # jobs waiting in all

    @classmethod
    def from_env(cls, env=None) -> "Deployment":
        env = os.environ if env is None else env
        server = env.get("GRADIO_SERVER_NAME", "127.0.0.1")
        public = bool(env.get("SPACE_ID")) or server not in LOOPBACK
        any_model = _flag(env.get("SCENE_PROBE_ANY_MODEL"))
        return cls(server_name=server, public=public,
                   allow_any_model=(not public) if any_model is None else any_model,
                   max_steps=_int(env, "SCENE_PROBE_MAX_STEPS", MAX_STEPS, 1, MAX_STEPS),
                   max_queue=_int(env, "SCENE_PROBE_MAX_QUEUE", 32, 1, 1000))
