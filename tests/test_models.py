import pytest
import torch
from diffusers import LMSDiscreteScheduler

from probe_core.probing.hooks import self_attention_layers
from probe_core.models import (EMBEDDED, ModelUnavailableError, load_model,
                               pick_device)
from tests.helpers import SD_V1_LAYERS, build_tiny_sd_unet


def test_device_and_dtype_defaults_and_overrides(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == ("cuda", torch.float16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == ("cpu", torch.float32)
    assert pick_device("cpu", torch.bfloat16) == ("cpu", torch.bfloat16)
    assert pick_device("cuda") == ("cuda", torch.float16)


def test_embedded_model_loads_with_its_preset():
    pipe, preset = load_model(EMBEDDED, device="cpu")
    assert preset.image_size == 64 and type(pipe.scheduler).__name__ == "DDIMScheduler"


def test_a_local_sd_shaped_folder_loads_with_the_papers_scheduler(tiny_pipe, tmp_path):
    tiny_pipe.unet = build_tiny_sd_unet(sample_size=8)
    tiny_pipe.save_pretrained(tmp_path / "sd")
    pipe, preset = load_model(str(tmp_path / "sd"), device="cpu")
    assert isinstance(pipe.scheduler, LMSDiscreteScheduler)
    assert self_attention_layers(pipe.unet) == SD_V1_LAYERS
    assert (preset.num_inference_steps, preset.guidance_scale, preset.image_size) == (15, 7.5, 32)


def test_a_folder_train_model_made_gets_the_embedded_preset_and_labeler(tiny_cfg, tmp_path):
    from probe_core.sd.labelers import load_labeler
    from probe_core.world.labeler import SceneLabeler
    from probe_core.world.tiny_ldm import build_pipeline, save_pipeline

    save_pipeline(build_pipeline(tiny_cfg), tmp_path / "scenes", tiny_cfg)
    pipe, preset = load_model(str(tmp_path / "scenes"), device="cpu")
    assert type(pipe.scheduler).__name__ == "DDIMScheduler"
    assert (preset.num_inference_steps, preset.guidance_scale, preset.image_size) == (15, 4.0, 32)
    assert isinstance(load_labeler(None, str(tmp_path / "scenes")), SceneLabeler)


def test_unavailable_models_fail_fast_with_what_to_do(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not in the local Hugging Face cache"):
        load_model("CompVis/stable-diffusion-v1-4", device="cpu", cache_dir=str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="no folder"):
        load_model(str(tmp_path / "missing"), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelUnavailableError, match="not a complete diffusers pipeline"):
        load_model(str(tmp_path / "empty"), device="cpu")


def test_the_deployment_decides_what_visitors_may_load():
    from probe_core.serve.deployment import Deployment

    local = Deployment.from_env({})
    assert not local.public and local.allow_any_model
    assert Deployment.from_env({"GRADIO_SERVER_NAME": "0.0.0.0"}).allow_any_model is False
    space = Deployment.from_env({"SPACE_ID": "someone/scene-probe"})
    assert space.public and not space.allow_any_model
    assert Deployment.from_env({"SPACE_ID": "x", "SCENE_PROBE_ANY_MODEL": "1"}).allow_any_model
    assert not Deployment.from_env({"SCENE_PROBE_ANY_MODEL": "0"}).allow_any_model
    assert Deployment.from_env({"SCENE_PROBE_MAX_STEPS": "20"}).max_steps == 20
    with pytest.raises(SystemExit, match="SCENE_PROBE_MAX_STEPS must be between 1 and 50"):
        Deployment.from_env({"SCENE_PROBE_MAX_STEPS": "500"})


def test_launch_applies_the_deployments_limits(monkeypatch):
    import gradio as gr

    import app
    from probe_core.serve.deployment import Deployment

    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    monkeypatch.setattr(gr.Blocks, "queue", lambda self, **kw: seen.update(kw) or self)
    app.launch(Deployment(server_name="0.0.0.0", public=True, allow_any_model=False,
                          max_steps=20, max_queue=8))
    assert seen["max_file_size"] == app.MAX_UPLOAD and seen["max_size"] == 8
    assert seen["server_name"] == "0.0.0.0"


def test_library_errors_lose_their_server_paths():
    from probe_core.models import without_paths

    text = ("no file '/root/.cache/huggingface/hub/models--a--b/snapshots/1/unet/x.bin' for "
            "a/b; see https://huggingface.co/docs (in /tmp/work/)")
    out = without_paths(text)
    assert "/root" not in out and "/tmp" not in out and "'<...>/x.bin'" in out
    assert "for a/b;" in out and "https://huggingface.co/docs" in out
