"""Import the authors' published SD v1.4 probes (one `.pth` per step and layer) as a ProbeSet.

    >>> probes = import_paper_probes("probes.zip")          # or the unzipped folder
    >>> probes.save("weights/probes/sd-v1-4-paper")
    python -m probe_core import-paper-probes probes.zip --out weights/probes/sd-v1-4-paper

File names: `.../at_step_{s}/segmentation_probe_{kind}_{b}_attn1_out_{l}[_final].pth`
(saliency, `dense1.weight` (2, C)) and `.../at_step_{s}/regression_probe_{kind}_{b}_attn1_out_{l}
[_final][suffix].pth` (depth, (1, C)). Files without `_final` are the authors' best-on-held-out
checkpoints and are imported by default. Every file is read with `torch.load(weights_only=True)`;
all 15 steps x 16 layers must be present for each task.
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from pathlib import Path

import torch

from ..probing.probes import ProbeSet, ProbeSettings

STEPS = 15
# (kind, block) -> (number of attention layers, channels) in SD v1.x
SD_V1_BLOCKS = {("down", 0): (2, 320), ("down", 1): (2, 640), ("down", 2): (2, 1280),
                ("mid", 0): (1, 1280),
                ("up", 1): (3, 1280), ("up", 2): (3, 640), ("up", 3): (3, 320)}
PATTERN = re.compile(r"at_step_(\d+)/(segmentation|regression)_probe_(down|mid|up)_(\d+)_attn1_out_"
                     r"(\d+)(_final)?([A-Za-z0-9_]*)\.pth$")
TASK = {"segmentation": "saliency", "regression": "depth"}


class PaperProbeError(ValueError):
    """The files are not a complete, well-formed set of the authors' probes."""


def layer_name(kind: str, block: int, layer: int) -> str:
    if kind == "mid":
        return "mid_block.attentions.0.transformer_blocks.0.attn1"
    return f"{kind}_blocks.{block}.attentions.{layer}.transformer_blocks.0.attn1"


def sd_v1_layers() -> list[str]:
    """The 16 self-attention layers of SD v1.x in forward order."""
    return [layer_name(k, b, l) for (k, b), (n, _) in SD_V1_BLOCKS.items() for l in range(n)]


MAX_ZIP_BYTES = 512 * 2**20  # uncompressed; the authors' 960 probe files hold about 10 MB
MAX_ZIP_MEMBERS = 10_000


def _extract(zip_path: Path, into: Path) -> Path:
    """Extract the .pth files of a zip after checking every member: its path must stay inside
    `into`, and the sizes and counts must be bounded, before anything is written."""
    root = into.resolve()
    with zipfile.ZipFile(zip_path) as z:
        members = [m for m in z.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise PaperProbeError(f"{zip_path.name} holds {len(members)} files; at most "
                                  f"{MAX_ZIP_MEMBERS} are read")
        total = sum(m.file_size for m in members)
        if total > MAX_ZIP_BYTES:
            raise PaperProbeError(f"{zip_path.name} expands to {total / 2**20:.0f} MB; at most "
                                  f"{MAX_ZIP_BYTES // 2**20} MB are read")
        for m in members:
            if not (root / m.filename).resolve().is_relative_to(root):
                raise PaperProbeError(f"{zip_path.name} has an unsafe path {m.filename!r}")
        for m in members:
            if m.filename.endswith(".pth"):
                z.extract(m, root)
    return into


def import_paper_probes(source: str | Path, final: bool = False,
                        model: str = "CompVis/stable-diffusion-v1-4") -> ProbeSet:
    """Read the authors' probe files from a folder or a zip into a ProbeSet for `model`."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        root = _extract(source, Path(tmp)) if source.suffix == ".zip" else source
        found: dict[tuple[str, int, str], Path] = {}
        for path in sorted(root.rglob("*.pth")):
            m = PATTERN.search(path.as_posix())
            if not m:
                continue
            step, kind_task, kind, block, layer, is_final, _suffix = m.groups()
            if bool(is_final) != final:
                continue
            block, layer = int(block), int(layer)
            if (kind, block) not in SD_V1_BLOCKS or layer >= SD_V1_BLOCKS[(kind, block)][0]:
                raise PaperProbeError(f"{path.name}: no SD v1.x layer {kind} {block}/{layer}")
            key = (TASK[kind_task], int(step), layer_name(kind, block, layer))
            if key in found:
                raise PaperProbeError(f"two files for {key}: {found[key].name}, {path.name}")
            found[key] = path
        layers = sd_v1_layers()
        missing = [(t, s, l) for t in ("saliency", "depth") for s in range(STEPS) for l in layers
                   if (t, s, l) not in found]
        if missing:
            raise PaperProbeError(
                f"{len(missing)} of {2 * STEPS * len(layers)} probe files missing "
                f"({'final' if final else 'best-on-held-out'} versions), e.g. {missing[0]}")
        settings = ProbeSettings(model=model, scheduler="LMSDiscreteScheduler",
                                 num_inference_steps=STEPS, image_size=512, guidance_scale=7.5,
                                 layers=layers, readout="nearest")  # as they were trained
        probes = ProbeSet(settings, extra={"source": "Chen, Viegas, Wattenberg (2023) probes",
                                           "final": final})
        channels = {layer_name(k, b, l): c for (k, b), (n, c) in SD_V1_BLOCKS.items()
                    for l in range(n)}
        for (task, step, layer), path in found.items():
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # a pickle with code in it, or not a state dict at all
                raise PaperProbeError(f"{path.name} is not a plain state dict: {err}") from None
            weight = state.get("dense1.weight") if isinstance(state, dict) else None
            want = (2 if task == "saliency" else 1, channels[layer])
            if weight is None or tuple(weight.shape) != want:
                got = None if weight is None else tuple(weight.shape)
                raise PaperProbeError(f"{path.name}: expected dense1.weight of shape {want}, "
                                      f"got {got}")
            probes.add(task, step, layer, weight.float())
    return probes
