"""Damaged or replaced files: the app starts with a notice naming the file and what to do, or,
for the model itself, stops with one clear line."""

import json
import shutil

import pytest

from probe_core import settings
from probe_core.serve.facade import ProbeDemo


@pytest.fixture
def assets(tmp_path):
    """Copies of the shipped probe set, labeler and evaluation, to damage."""
    probes, labeler = tmp_path / "probes", tmp_path / "labeler"
    shutil.copytree(settings.EMBEDDED_PROBES, probes)
    shutil.copytree(settings.EMBEDDED_LABELER, labeler)
    evaluation = tmp_path / "metrics.json"
    shutil.copy(settings.EMBEDDED_EVALUATION, evaluation)
    return probes, labeler, evaluation


def _demo(assets):
    probes, labeler, evaluation = assets
    return ProbeDemo.embedded(probes=probes, labeler=labeler, evaluation=evaluation)


def _still_works(demo):
    *_, run = demo.stream("a large red sphere on a gray plain floor", 0, 2, 4.0)
    assert run.done and demo.view(run, 1).x0.shape[0] == settings.DISPLAY_SIZE


def test_the_copies_load_cleanly(assets):
    demo = _demo(assets)
    assert demo.notice == "" and demo.probes is not None and demo.evaluation is not None


@pytest.mark.parametrize("damage, notice", [
    (lambda p, lab, ev: (p / "probes.json").write_text("[]"), "probes.json is not a probe set"),
    (lambda p, lab, ev: (p / "probes.json").write_text("{"), "probes.json is not a probe set"),
    (lambda p, lab, ev: _truncate(p / "probes.safetensors"), "probes.safetensors cannot be read"),
    (lambda p, lab, ev: _truncate(lab / "labeler.safetensors"), "the labeler in labeler/ cannot"),
    (lambda p, lab, ev: (lab / "labeler.json").write_text("[1]"), "the labeler in labeler/ cannot"),
    (lambda p, lab, ev: ev.write_text("not json"), "No held-out scores"),
    (lambda p, lab, ev: ev.write_text("[]"), "No held-out scores"),
    (lambda p, lab, ev: ev.write_text(json.dumps({"probes": {"dice": [[0.5]], "pearson": [[1]],
                                                             "steps": [0, 1], "layers": ["a"],
                                                             "n": 3}})), "No held-out scores"),
])
def test_a_damaged_asset_leaves_a_working_app_with_a_notice(assets, damage, notice):
    damage(*assets)
    demo = _demo(assets)
    assert notice in demo.notice
    assert str(settings.ROOT) not in demo.notice and "/tmp/" not in demo.notice  # no server paths
    demo.heatmap(), demo.layer_choices()  # what the page draws at start
    _still_works(demo)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.fixture
def model_copy(tmp_path):
    folder = tmp_path / "tiny-scenes"
    shutil.copytree(settings.EMBEDDED_MODEL, folder)
    return folder


def test_replaced_model_weights_are_named_in_the_notice(model_copy):
    unet = model_copy / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(unet.read_bytes())
    start = len(data) // 4
    data[start:] = bytes(len(data) - start)  # zeros: same size, other weights
    unet.write_bytes(bytes(data))
    demo = ProbeDemo.embedded(folder=model_copy)
    assert "not the shipped ones" in demo.notice and "No probe maps" in demo.notice


@pytest.mark.parametrize("damage", [
    lambda f: _truncate(f / "unet" / "diffusion_pytorch_model.safetensors"),
    lambda f: (f / "tokenizer" / "tokenizer.json").write_text("{"),
])
def test_a_damaged_model_stops_the_app_with_one_line(model_copy, damage, monkeypatch):
    import app

    damage(model_copy)
    monkeypatch.setattr(app, "ModelChoice",
                        lambda **kw: ProbeDemo.embedded(folder=model_copy))
    with pytest.raises(SystemExit) as stop:
        app.launch(app.Deployment())
    message = str(stop.value)
    assert "cannot be loaded" in message and "\n" not in message and "train-model" in message
