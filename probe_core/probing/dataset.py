"""Activation data sets on disk: what `scene-probe collect` (and `train-probes`) write, read back
for a researcher's own probes.

    >>> data = ActivationExport("exports/tiny-scenes")
    >>> data.n_images, data.steps, data.layers[:2], data.latent_hw   # 64, [0, ..], [...], (16, 16)
    >>> x = data.activations(9, data.layers[0])   # (N, HW, C) float16, every image in order
    >>> depth, saliency = data.labels()           # (N, H, W) float32, (N, H, W) bool

An export is a folder of safetensors shards (`chunk-0000000.safetensors`, ..., each holding
`act/STEP/LAYER` activations (n, HW, C) float16, the permuted model's `control/STEP/LAYER` when
collected, `depth` and `saliency` labels of the final images, and the seeds and prompts in its
metadata) and `collect-manifest.json` (the probe settings: model, scheduler, steps, size,
guidance, layers, site; chunk size, image count). Nothing in it is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .probes import ProbeSettings
from .shards import MANIFEST, chunk_path, chunk_starts


class ActivationExport:
    """An activation data set written by `collect_chunks`, read shard by shard."""

    def __init__(self, folder: str | Path):
        from safetensors import safe_open

        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no {MANIFEST} in {self.folder.name}: not an activation "
                                    f"export (make one with `scene-probe collect --out DIR`)")
        self.manifest = json.loads(manifest_path.read_text())
        self.settings = ProbeSettings(**self.manifest["settings"])
        self.n_images = int(self.manifest["n_images"])
        files = [chunk_path(self.folder, s)
                 for s in chunk_starts(self.n_images, int(self.manifest["chunk_size"]))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{self.folder.name} lacks shards {missing[:3]}: its "
                                    f"collection did not finish (run it again to resume)")
        self._handles = [safe_open(str(f), framework="pt") for f in files]
        meta = self._handles[0].metadata()
        self.latent_hw = tuple(json.loads(meta["latent_hw"]))
        self.layers = json.loads(meta["layers"])
        self.seeds = [s for h in self._handles for s in json.loads(h.metadata()["seeds"])]
        self.prompts = [p for h in self._handles for p in json.loads(h.metadata()["prompts"])]
        keys = self._handles[0].keys()
        self.steps = sorted({int(k.split("/")[1]) for k in keys if k.startswith("act/")})
        self.has_control = any(k.startswith("control/") for k in keys)

    def activations(self, step: int, layer: str, control: bool = False) -> torch.Tensor:
        """(N, HW, C) float16 of every image at one step and layer (the permuted model's with
        `control`), in the export's image order."""
        key = f"{'control' if control else 'act'}/{int(step)}/{layer}"
        if key not in self._handles[0].keys():
            raise KeyError(f"no {key} in this export; steps {self.steps}, layers "
                           f"{', '.join(self.layers)}")
        return torch.cat([h.get_tensor(key) for h in self._handles])

    def labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(depth (N, H, W) float32 z-normalised inverse depth, saliency (N, H, W) bool) of
        the final images."""
        depth = np.concatenate([h.get_tensor("depth").numpy() for h in self._handles])
        saliency = np.concatenate([h.get_tensor("saliency").numpy().astype(bool)
                                   for h in self._handles])
        return depth, saliency
