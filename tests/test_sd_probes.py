"""Our own Stable Diffusion probes, end to end on a tiny SD-shaped pipeline with tiny
transformers labelers (DPT for depth, CLIPSeg for saliency) built from configs."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from probe_core.cli import main
from probe_core.sd.labelers import HFLabeler, load_labeler
from probe_core.world.labeler import SceneLabeler
from probe_core.models import ModelUnavailableError
from probe_core.probing.probes import ProbeSet

from .helpers import SD_V1_LAYERS, save_tiny_hf_labeler, save_tiny_sd_pipeline


@pytest.fixture(scope="module")
def sd_assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd")
    return save_tiny_sd_pipeline(root / "pipe"), save_tiny_hf_labeler(root / "labeler"), root


def test_transformers_labeler_gives_normalised_depth_and_probabilities(sd_assets):
    _, spec, _ = sd_assets
    labeler = load_labeler(spec)
    assert isinstance(labeler, HFLabeler)
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    depth, sal = labeler(images)
    assert depth.shape == sal.shape == (3, 40, 40)
    assert np.allclose(depth.mean((1, 2)), 0, atol=1e-4)
    assert np.allclose(depth.std((1, 2)), 1, atol=1e-3)
    assert sal.min() >= 0 and sal.max() <= 1
    with pytest.raises(ValueError, match="uint8"):
        labeler(images.astype(np.float32))


def test_labeler_choice_and_offline_failure(sd_assets, tmp_path):
    assert isinstance(load_labeler(None, "tiny-scenes"), SceneLabeler)
    assert isinstance(load_labeler(None, "weights/tiny-scenes"), SceneLabeler)
    with pytest.raises(ValueError, match="DEPTH_MODEL,SALIENCY_MODEL"):
        load_labeler(str(tmp_path / "nothing-here"))
    with pytest.raises(ModelUnavailableError, match="hf download"):
        HFLabeler.load("nobody/no-such-depth-model", "nobody/no-such-saliency-model")


@pytest.mark.slow
def test_train_probes_and_evaluate_end_to_end_on_an_sd_shaped_model(sd_assets, tmp_path):
    pipe_dir, spec, _ = sd_assets
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a large red sphere on a gray floor\na small blue box\n")
    out = tmp_path / "probes"
    assert main(["train-probes", "--model", pipe_dir, "--labeler", spec, "--seeds", "0-4",
                 "--prompts", str(prompts), "--out", str(out), "--chunk-size", "2"]) == 0
    probes = ProbeSet.load(out)
    s = probes.settings  # the paper's preset for a local folder: LMS, 15 steps, guidance 7.5
    assert (s.scheduler, s.num_inference_steps, s.guidance_scale, s.image_size) == (
        "LMSDiscreteScheduler", 15, 7.5, 32)
    assert s.layers == SD_V1_LAYERS
    assert len(probes.keys("depth")) == len(probes.keys("saliency")) == 15 * 16
    assert len(ProbeSet.load(out / "control").keys()) == 2 * 15 * 16
    from probe_core.probing.dataset import ActivationExport

    kept = ActivationExport(tmp_path / "probes-collect")  # the chunks stay: a data set
    assert kept.n_images == 5 and kept.layers == SD_V1_LAYERS and kept.has_control

    report = tmp_path / "report"
    assert main(["evaluate", "--model", pipe_dir, "--labeler", spec, "--probes", str(out),
                 "--seeds", "100-104", "--out", str(report), "--chunk-size", "2"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["meta"]["n_test"] == 5
    dice = np.array(metrics["probes"]["dice"])
    assert dice.shape == (15, 16) and np.all((dice >= 0) & (dice <= 1))
    assert (report / "probe_scores.png").is_file()


def test_chunked_evaluation_equals_one_chunk(sd_assets, tmp_path):
    from probe_core.models import load_model
    from probe_core.cli.common import prompts_for
    from probe_core.probing.collect import settings_for
    from probe_core.probing.evaluate import EvaluationRun, evaluate_probe_sets, train_probe_sets
    from probe_core.probing.layout import load_layout
    from probe_core.probing.shards import TrainingRun

    pipe_dir, spec, _ = sd_assets
    pipe, _ = load_model(pipe_dir)
    labeler = load_labeler(spec)
    settings = settings_for(pipe, "pipe", 3, 7.5, layers=SD_V1_LAYERS[:2])
    seeds = [0, 1, 2]
    probes, control = train_probe_sets(pipe, settings, labeler, prompts_for(seeds), seeds,
                                       str(tmp_path / "p"),
                                       TrainingRun(progress=False, chunk_size=2))
    layout = load_layout(tmp_path / "p")
    for c in (1, 3):
        evaluate_probe_sets(pipe, probes, control, labeler, prompts_for([7, 8, 9]), [7, 8, 9],
                            str(tmp_path / f"r{c}"),
                            EvaluationRun(progress=False, chunk_size=c, layout=layout))
    a, b = (json.loads((tmp_path / f"r{c}" / "metrics.json").read_text()) for c in (1, 3))
    assert a["meta"]["n_test"] == b["meta"]["n_test"] == 3
    for key in ("dice", "rmse", "pearson", "partial", "partial_beyond_latent"):
        assert np.allclose(a["probes"][key], b["probes"][key], atol=1e-6)
        assert np.allclose(a["control"][key], b["control"][key], atol=1e-6)
    # the trained model's and the permuted control's maps are read apart
    assert not np.allclose(a["probes"]["partial_beyond_latent"],
                           a["control"]["partial_beyond_latent"])
    for key in ("dice", "pearson"):  # the labeler on x0 runs in batches: float noise only
        assert np.allclose(a["labeler_on_x0"][key], b["labeler_on_x0"][key], atol=1e-5)


def _train_cmd(launcher, pipe_dir, spec, out):
    return launcher + ["-m", "probe_core", "train-probes", "--model", pipe_dir, "--labeler", spec,
                       "--seeds", "0-4", "--chunk-size", "2", "--steps", "2",
                       "--layers", ",".join(SD_V1_LAYERS[:2]), "--out", str(out)]


@pytest.mark.slow
def test_sharded_training_with_accelerate_equals_one_process(sd_assets, tmp_path):
    """Two CPU processes under `accelerate launch` give exactly the one-process probes
    (with the same threads per process: float sums depend on the thread count)."""
    pipe_dir, spec, _ = sd_assets
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
                  "--cpu", "--num_machines", "1", "--mixed_precision", "no",
                  "--dynamo_backend", "no"]
    for launcher, out in (([sys.executable], tmp_path / "one"), (accelerate, tmp_path / "two")):
        done = subprocess.run(_train_cmd(launcher, pipe_dir, spec, out), env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    for sub in ("", "control"):
        one, two = ProbeSet.load(tmp_path / "one" / sub), ProbeSet.load(tmp_path / "two" / sub)
        assert one.keys() == two.keys() and len(one.keys()) == 2 * 2 * 2
        assert all(torch.equal(one.weights[k], two.weights[k]) for k in one.keys())


def test_an_interrupted_collection_resumes_from_its_chunks(sd_assets, tmp_path):
    from probe_core.models import load_model
    from probe_core.probing.shards import ChunkShare, collect_chunks
    from probe_core.cli.common import prompts_for
    from probe_core.probing.collect import settings_for

    pipe_dir, spec, _ = sd_assets
    pipe, _ = load_model(pipe_dir)
    settings = settings_for(pipe, "pipe", 2, 7.5, layers=SD_V1_LAYERS[:1])
    seeds = [0, 1, 2, 3]
    args = (pipe, settings, load_labeler(spec), prompts_for(seeds), seeds)
    first = collect_chunks(*args, ChunkShare(tmp_path, chunk_size=2), progress=False)
    assert [p.name for p in first] == ["chunk-0000000.safetensors", "chunk-0000002.safetensors"]
    first[1].unlink()  # as if the run stopped before the second chunk
    again = collect_chunks(*args, ChunkShare(tmp_path, chunk_size=2), progress=False)
    assert [p.name for p in again] == ["chunk-0000002.safetensors"]


def test_chunks_of_another_run_are_refused_and_only_our_files_removed(sd_assets, tmp_path):
    from probe_core.models import load_model
    from probe_core.probing.shards import ChunkShare, collect_chunks, remove_workdir
    from probe_core.cli.common import prompts_for
    from probe_core.probing.collect import settings_for

    pipe_dir, spec, _ = sd_assets
    pipe, _ = load_model(pipe_dir)
    settings = settings_for(pipe, "pipe", 2, 7.5, layers=SD_V1_LAYERS[:1])
    seeds = [0, 1]
    labeler = load_labeler(spec)
    collect_chunks(pipe, settings, labeler, prompts_for(seeds), seeds,
                   ChunkShare(tmp_path, chunk_size=2), progress=False)
    with pytest.raises(ValueError, match="chunk_size"):
        collect_chunks(pipe, settings, labeler, prompts_for(seeds), seeds,
                       ChunkShare(tmp_path, chunk_size=1), progress=False)
    with pytest.raises(ValueError, match="seeds_prompts"):
        collect_chunks(pipe, settings, labeler, prompts_for([5, 6]), [5, 6],
                       ChunkShare(tmp_path, chunk_size=2), progress=False)
    (tmp_path / "users-file.txt").write_text("keep me")
    remove_workdir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["users-file.txt"]


def test_the_default_probe_folder_is_named_after_the_model():
    from probe_core.cli.common import _default_probe_dir
    from probe_core.settings import PROBES_ROOT  # resolved from the package, not the cwd

    assert _default_probe_dir("weights/tiny-scenes") == str(PROBES_ROOT / "tiny-scenes")
    assert _default_probe_dir("CompVis/stable-diffusion-v1-4") == str(
        PROBES_ROOT / "CompVis--stable-diffusion-v1-4")


def test_one_process_keeps_the_given_device(monkeypatch):
    from probe_core.probing.shards import process_device

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert process_device(None) is None and process_device("cpu") == "cpu"


def test_under_accelerate_each_process_takes_its_own_device(monkeypatch):
    from types import SimpleNamespace

    from probe_core.probing import shards

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(shards, "_accelerate_state",
                        lambda: SimpleNamespace(device="cuda:1", process_index=1,
                                                num_processes=2, wait_for_everyone=lambda: None))
    assert shards.process_device(None) == "cuda:1"
    assert shards.process_device("cpu") == "cpu"  # a device given on the command line wins
    index, count, _ = shards.process_state()
    assert (index, count) == (1, 2)
