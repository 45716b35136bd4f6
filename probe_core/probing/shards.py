"""Probe training that scales past one process: chunks of images on disk, fits by (step, layer).

    python -m probe_core train-probes --model CompVis/stable-diffusion-v1-4 --seeds 0-999 ...
    accelerate launch --num_processes 8 -m probe_core train-probes ...   # same result, sharded

Stage 1 (collect): the images are cut into chunks of `chunk_size`; process i generates, labels
and records chunks i, i + n, ... and writes each to `workdir/chunk-START.safetensors` (activations
of every (step, layer) as float16, both labels). A chunk already on disk is skipped, so an
interrupted run resumes. Memory holds one chunk, not the data set.
Stage 2 (fit): the (step, layer) keys are dealt out the same way; for each of its keys a process
reads that key's activations from every chunk, fits the depth and saliency probes (trained and
control model) and drops them. Memory holds one key's activations of all images.
Stage 3: the main process merges the partial probe sets and saves them.

Each image is generated and labelled on its own, so the merged result equals the one-process
result exactly. Under `accelerate launch` the process index and count come from accelerate
(`PartialState`); otherwise there is one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .collect import CollectSettings, collect
from .layout import layout_baseline, save_layout
from .fitting import FitOptions, fit_probe_set
from .probes import ProbeSet, ProbeSettings

MANIFEST = "collect-manifest.json"


@dataclass(frozen=True)
class TrainingRun:
    """How a probe set is trained (train_sharded, evaluate.train_probe_sets)."""
    lam: float = 1e-3  # relative ridge penalty
    workdir: str | Path | None = None  # where the chunks go; None: OUT-collect beside `out`
    chunk_size: int = 16  # images generated and kept in memory at a time
    keep_workdir: bool = True  # keep the chunks after the merge: an activation data set
    # (`dataset.ActivationExport`); False removes what this module wrote there
    progress: bool = True  # show progress bars


@dataclass(frozen=True)
class ChunkShare:
    """This process's share of stage 1: of the chunks of `chunk_size` images in `workdir`,
    process `index` of `count` writes chunks index, index + count, ..."""
    workdir: str | Path  # where the chunks and their manifest go
    chunk_size: int = 16  # images per chunk
    index: int = 0  # this process's number
    count: int = 1  # how many processes share the chunks


def _accelerate_state():
    """accelerate's PartialState when launched by `accelerate launch` (several processes)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        return PartialState()
    return None


def process_state():
    """(process index, process count, barrier): from accelerate when launched by it."""
    state = _accelerate_state()
    if state is None:
        return 0, 1, lambda: None
    return state.process_index, state.num_processes, state.wait_for_everyone


def process_device(device: str | None = None) -> str | None:
    """This process's device: the given one, else accelerate's pick for this process when
    launched by it (each process its own GPU), else None (models.pick_device decides)."""
    state = _accelerate_state() if device is None else None
    return str(state.device) if state is not None else device


def chunk_starts(n_images: int, chunk_size: int) -> list[int]:
    return list(range(0, n_images, chunk_size))


def chunk_path(workdir: Path, start: int) -> Path:
    """The chunk whose first image is number `start`."""
    return workdir / f"chunk-{start:07d}.safetensors"


def save_chunk(path: Path, data) -> None:
    """One chunk of ProbeData (acts, control acts, labels) as safetensors; written atomically."""
    from safetensors.torch import save_file

    tensors = {f"act/{s}/{layer}": a.contiguous() for (s, layer), a in data.acts.items()}
    tensors.update({f"control/{s}/{layer}": a.contiguous()
                    for (s, layer), a in data.control_acts.items()})
    tensors["depth"] = torch.from_numpy(np.ascontiguousarray(data.depth, np.float32))
    tensors["saliency"] = torch.from_numpy(data.saliency.astype(np.uint8))
    meta = {"seeds": json.dumps(data.seeds), "prompts": json.dumps(data.prompts),
            "layers": json.dumps(data.layers), "latent_hw": json.dumps(list(data.latent_hw))}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def collect_chunks(pipe, settings: ProbeSettings, labeler, prompts: list[str], seeds: list[int],
                   share: ChunkShare, control_unet=None, progress: bool = True) -> list[Path]:
    """Stage 1 for process `share.index` of `share.count`: write its chunks (skipping those on
    disk)."""
    workdir = Path(share.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    check_manifest(workdir, {
        "settings": settings.__dict__, "chunk_size": share.chunk_size, "n_images": len(seeds),
        "control": control_unet is not None,
        "seeds_prompts_sha256": hashlib.sha256(json.dumps([list(map(int, seeds)), list(prompts)])
                                               .encode()).hexdigest()})
    written = []
    for c, start in enumerate(chunk_starts(len(seeds), share.chunk_size)):
        path = chunk_path(workdir, start)
        if c % share.count != share.index or path.exists():
            continue
        end = start + share.chunk_size
        data = collect(pipe, prompts[start:end], seeds[start:end], labeler,
                       CollectSettings.for_probes(settings, keep_x0=False), control_unet,
                       progress=progress)
        save_chunk(path, data)
        written.append(path)
        del data  # free this chunk before the next one is collected
    return written


def check_manifest(workdir: Path, manifest: dict) -> None:
    """Chunks on disk may be reused only by the run that made them: same settings, model,
    chunk size, seeds and prompts. The first run writes the manifest; a different run is refused."""
    path = workdir / MANIFEST
    new = json.loads(json.dumps(manifest))  # as it reads back from disk (tuples become lists)
    if path.exists():
        old = json.loads(path.read_text())
        if old != new:
            diffs = sorted(k for k in new if old.get(k) != new[k])
            raise ValueError(f"{workdir} holds chunks of another run (differs in: "
                             f"{', '.join(diffs)}); pass another --workdir or delete it")
        return
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, path)  # every process writes the same text: the race is harmless


def remove_workdir(workdir: Path) -> None:
    """Delete only what this module wrote there; the folder itself only if then empty."""
    ours = ("chunk-*.safetensors", "chunk-*.tmp", f"{Path(MANIFEST).stem}.*.tmp")
    for f in [f for pattern in ours for f in workdir.glob(pattern)]:
        f.unlink(missing_ok=True)
    for d in workdir.glob("fit-*-[0-9][0-9][0-9]"):
        shutil.rmtree(d, ignore_errors=True)
    (workdir / MANIFEST).unlink(missing_ok=True)
    try:
        workdir.rmdir()
    except OSError:
        pass


def _chunk_files(workdir: Path, n_images: int, chunk_size: int) -> list[Path]:
    files = [chunk_path(workdir, s) for s in chunk_starts(n_images, chunk_size)]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{workdir} lacks chunks {missing[:5]}: stage 1 did not finish")
    return files


def _chunk_labels(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) depth labels and (N, H, W) bool masks of every image in the chunks."""
    from safetensors import safe_open

    handles = [safe_open(str(f), framework="pt") for f in files]
    return (np.concatenate([h.get_tensor("depth").numpy() for h in handles]),
            np.concatenate([h.get_tensor("saliency").numpy().astype(bool) for h in handles]))


def fit_from_chunks(files: list[Path], settings: ProbeSettings, keys: list[tuple[int, str]],
                    lam: float = 1e-3, control: bool = False, progress: bool = True) -> ProbeSet:
    """Stage 2: fit the probes of `keys` ((step, layer) pairs) from the chunks on disk."""
    from safetensors import safe_open

    handles = [safe_open(str(f), framework="pt") for f in files]
    meta = handles[0].metadata()
    latent_hw = tuple(json.loads(meta["latent_hw"]))
    depth = np.concatenate([h.get_tensor("depth").numpy() for h in handles])
    saliency = np.concatenate([h.get_tensor("saliency").numpy().astype(bool) for h in handles])
    prefix = "control" if control else "act"

    def activations(step: int, layer: str) -> torch.Tensor:  # (N, HW, C) of every chunk
        return torch.cat([h.get_tensor(f"{prefix}/{step}/{layer}") for h in handles])

    return fit_probe_set(settings, keys, activations, depth, saliency, latent_hw,
                         FitOptions(lam, progress, "fit control" if control else "fit"))


def train_sharded(pipe, settings: ProbeSettings, labeler, prompts: list[str], seeds: list[int],
                  out: str | Path, run: TrainingRun = TrainingRun(),
                  control_unet=None) -> tuple[ProbeSet, ProbeSet | None]:
    """All three stages in this process's share; returns the merged (probes, control probes)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    lam, chunk_size, progress = run.lam, run.chunk_size, run.progress
    out = Path(out)
    workdir = Path(run.workdir) if run.workdir else out.with_name(out.name + "-collect")
    index, count, barrier = process_state()
    collect_chunks(pipe, settings, labeler, prompts, seeds,
                   ChunkShare(workdir, chunk_size, index, count), control_unet, progress)
    barrier()
    files = _chunk_files(workdir, len(seeds), chunk_size)
    steps = range(settings.num_inference_steps)
    keys = [(s, layer) for s in steps for layer in settings.layers][index::count]
    for control in (False, True) if control_unet is not None else (False,):
        part = fit_from_chunks(files, settings, keys, lam, control, progress)
        part.save(workdir / f"fit-{'control' if control else 'probes'}-{index:03d}")
    barrier()
    extra = {"n_train": len(seeds), "seeds": [min(seeds), max(seeds)], "lam": lam}
    if index == 0:
        merged = {}
        for name in ("probes", "control") if control_unet is not None else ("probes",):
            ps = ProbeSet(settings, extra=dict(extra))
            for i in range(count):
                part = ProbeSet.load(workdir / f"fit-{name}-{i:03d}")
                ps.weights.update(part.weights)
                ps.offsets.update(part.offsets)
            merged[name] = ps
        if "control" in merged:
            merged["control"].extra["control"] = "every UNet weight tensor permuted, seed 0"
            merged["control"].save(out / "control")
        merged["probes"].save(out)
        save_layout(layout_baseline(*_chunk_labels(files)), out)  # the image-blind control
        if not run.keep_workdir:
            remove_workdir(workdir)
    barrier()
    probes = ProbeSet.load(out)
    control_set = ProbeSet.load(out / "control") if control_unet is not None else None
    return probes, control_set
