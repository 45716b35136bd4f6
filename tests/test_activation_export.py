"""Activation data sets: `scene-probe collect` writes them, ActivationExport reads them, and the
researcher's notebook trains and scores a probe from one (its cells executed here)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from probe_core.probing.dataset import ActivationExport
from probe_core.probing.shards import ChunkShare, collect_chunks

from .helpers import BoxLabeler, random_probes

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["a small blue box on a beige plain floor", "a large red sphere on a gray floor"]


@pytest.fixture(scope="module")
def tiny_pipe():
    from .helpers import build_tiny_pipe

    return build_tiny_pipe()


@pytest.fixture(scope="module")
def export(tmp_path_factory, tiny_pipe):
    from probe_core.probing.collect import permuted_unet

    folder = tmp_path_factory.mktemp("export")
    settings = random_probes(tiny_pipe).settings  # 3 steps, every layer, guidance 4
    collect_chunks(tiny_pipe, settings, BoxLabeler(), PROMPTS * 4, list(range(8)),
                   ChunkShare(folder, chunk_size=3), permuted_unet(tiny_pipe.unet),
                   progress=False)
    return folder, settings


def test_an_export_reads_back_every_image_step_and_layer(export, tiny_pipe):
    from probe_core.probing.collect import CollectSettings, collect

    folder, settings = export
    data = ActivationExport(folder)
    assert data.n_images == 8 and data.seeds == list(range(8)) and data.prompts == PROMPTS * 4
    assert data.steps == [0, 1, 2] and data.layers == settings.layers and data.has_control
    layer = data.layers[0]
    x = data.activations(2, layer)
    assert x.dtype == torch.float16 and x.shape[0] == 8
    direct = collect(tiny_pipe, PROMPTS[:1], [0], BoxLabeler(),
                     CollectSettings.for_probes(settings, keep_x0=False))
    assert torch.equal(x[0], direct.acts[(2, layer)][0])  # image 0 as collected on its own
    depth, saliency = data.labels()
    assert depth.shape[0] == saliency.shape[0] == 8 and saliency.dtype == bool
    with pytest.raises(KeyError, match="no act/7"):
        data.activations(7, layer)


def test_an_unfinished_or_foreign_folder_is_refused_clearly(export, tmp_path):
    folder, _ = export
    with pytest.raises(FileNotFoundError, match="not an activation export"):
        ActivationExport(tmp_path)
    for f in folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    sorted(tmp_path.glob("chunk-*.safetensors"))[-1].unlink()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        ActivationExport(tmp_path)


def test_the_notebook_trains_and_scores_a_probe_from_an_export(export, monkeypatch):
    folder, _ = export
    monkeypatch.setenv("SCENE_PROBE_EXPORT", str(folder))
    notebook = json.loads((ROOT / "notebooks" / "train_probe_from_export.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "notebook", "exec"), namespace)  # noqa: S102
    results = namespace["results"]
    assert set(results) == {"probe", "permuted model", "layout (depth only)"}
    r, d = results["probe"]
    assert -1 <= r <= 1 and 0 <= d <= 1 and np.isfinite(results["permuted model"][0])


@pytest.mark.slow
def test_collect_command_writes_an_export(tmp_path):
    from probe_core.cli import main

    from .helpers import save_tiny_hf_labeler, save_tiny_sd_pipeline

    model = save_tiny_sd_pipeline(tmp_path / "model")
    labeler = save_tiny_hf_labeler(tmp_path / "labeler")
    out = tmp_path / "export"
    assert main(["collect", "--model", model, "--seeds", "0-2", "--out", str(out),
                 "--steps", "2", "--guidance", "4", "--chunk-size", "2", "--no-control",
                 "--labeler", labeler]) == 0
    data = ActivationExport(out)
    assert data.n_images == 3 and data.steps == [0, 1] and not data.has_control
