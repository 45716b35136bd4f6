"""Which model a session of the app uses: the embedded one, always loaded, or one chosen by name.

    >>> models = ModelChoice()                       # holds the embedded demo
    >>> demo = models.get("tiny-scenes")
    >>> demo = models.get("CompVis/stable-diffusion-v1-4")   # ModelUnavailableError offline

A chosen model (hub id or local diffusers folder) is loaded once and shared by the sessions that
choose it; at most `max_loaded` besides the embedded one stay in memory (least recently used
goes; a session whose model was dropped reloads it on its next request). Its probe set is the
first folder under weights/probes/ made for it (a set records its model name and a fingerprint
of the UNet, so one made for another model is refused); its labeler is ours for a model
`train-model` made, else DPT + CLIPSeg when those are in the local cache. What is missing is
said in `demo.notice`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

from ..models import (EMBEDDED, PRESETS, SHIPPED, ModelUnavailableError, check_model_name,
                      is_embedded, is_scene_model, load_model, model_name)
from ..sd.labelers import load_labeler
from ..settings import PROBES_ROOT, SHIPPED_EVALUATIONS
from .facade import ProbeDemo

# the embedded model, the scene DiT where weights/ has it, then every preset: SD 1.x (the
# paper's), SD 2.x, SDXL, SD3, PixArt, FLUX
CHOICES = [EMBEDDED] + [name for name in PRESETS if name != EMBEDDED
                        and (name not in SHIPPED or (SHIPPED[name] / "model_index.json").is_file())]


def model_key(name: str) -> str:
    """One key per model: the embedded one by any of its names, others by their text."""
    if name is not None and not isinstance(name, str):
        raise ValueError("a model is named by text")
    name = (name or "").strip()
    if not name:
        raise ValueError("choose a model: a name from the list, a hub id or a local folder")
    check_model_name(name)
    return EMBEDDED if is_embedded(name) else name


def probe_folders_for(model: str, root: Path = PROBES_ROOT) -> list[Path]:
    """Probe-set folders under `root` whose settings name `model` (its hub id, or the folder's
    last part as the CLI records it)."""
    names = {model, Path(model).name}
    out = []
    for meta in sorted(root.glob("*/probes.json")):
        try:
            if json.loads(meta.read_text())["settings"]["model"] in names:
                out.append(meta.parent)
        except (ValueError, KeyError):
            continue
    return out


def demo_for_model(name: str, device: str | None = None,
                   probes_root: Path = PROBES_ROOT) -> ProbeDemo:
    """A ProbeDemo for a hub id or folder, with whatever probes and labeler exist for it."""
    pipe, preset = load_model(name, device=device)
    folders = probe_folders_for(name, probes_root)
    scene_model = is_scene_model(name)
    notes = []
    demo = None
    for folder in folders:
        demo = ProbeDemo.with_assets(pipe, name, model_name(name), folder, labeler=None,
                                     evaluation=SHIPPED_EVALUATIONS.get(folder),
                                     scene_model=scene_model)
        if demo.probes is not None:
            break
        notes = [demo.notice]  # a set for this model that was refused, and why
    if demo is None or demo.probes is None:
        demo = ProbeDemo(pipe, name, scene_model=scene_model)
        notes.append("No usable probe set for this model under weights/probes/: import the "
                     "authors' (`python -m probe_core import-paper-probes`) or train one "
                     "(`python -m probe_core train-probes --model ...`); images and steps only.")
    try:
        # ours for a model train-model made, else DPT-Large + CLIPSeg
        demo.labeler = load_labeler(None, name, device=str(pipe.device))
    except ModelUnavailableError:
        notes.append("No labeler (DPT-Large and CLIPSeg are not in the local cache): edits are "
                     "not scored.")
    demo.notice = " ".join(notes)
    demo.preset = preset
    return demo


class ModelChoice:
    """Loaded demos by model key; the embedded one is created eagerly and never dropped.

    allow_any: whether visitors may name any hub id or server folder. Off, only CHOICES load
    (what a public deployment should offer: a folder name would let a visitor probe the
    server's files)."""

    def __init__(self, embedded: ProbeDemo | None = None, max_loaded: int = 1, loader=None,
                 allow_any: bool = True, max_steps: int | None = None):
        self.embedded = embedded if embedded is not None else ProbeDemo.embedded()
        self.max_steps = max_steps  # a deployment's bound on every model's steps
        if max_steps is not None:
            self.embedded.max_steps = max_steps
        self.max_loaded = max_loaded
        self.loader = loader or demo_for_model
        self.allow_any = allow_any
        self._loaded: OrderedDict[str, ProbeDemo] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> ProbeDemo:
        """The demo for `name`, loading it if needed (raises ModelUnavailableError, ValueError).
        A model that fails to load leaves the loaded ones as they were."""
        key = model_key(name)
        if key == EMBEDDED:
            return self.embedded
        if not self.allow_any and key not in CHOICES:
            raise ModelUnavailableError(
                "this server loads only the listed models: " + ", ".join(CHOICES)
                + " (local folders and other hub ids are for a local run: set "
                  "SCENE_PROBE_ANY_MODEL=1 there)")
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            demo = self.loader(key)  # first load, then evict: a failure drops nothing
            if self.max_steps is not None:
                demo.max_steps = self.max_steps
            while len(self._loaded) >= self.max_loaded:
                self._loaded.popitem(last=False)
            self._loaded[key] = demo
            return demo

    def peek(self, name: str) -> ProbeDemo | None:
        """The demo for `name` if it is loaded, else None (never loads)."""
        key = model_key(name)
        if key == EMBEDDED:
            return self.embedded
        with self._lock:
            return self._loaded.get(key)

    def loaded(self) -> list[str]:
        return [EMBEDDED] + list(self._loaded)
