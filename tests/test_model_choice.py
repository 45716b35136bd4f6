"""Choosing a model per session: the embedded one, an SD-shaped folder, or one that cannot load."""

import numpy as np
import pytest
import torch

from probe_core.serve.steering import SliderValues
from probe_core.serve.facade import EditView, ProbeDemo
from probe_core.serve.model_choice import ModelChoice, demo_for_model, model_key, probe_folders_for
from probe_core.models import ModelUnavailableError, load_model
from probe_core.probing.probes import random_probe_set
from probe_core.world.tiny_ldm import check_prompt
from probe_core.probing.collect import settings_for
from probe_core.probing.denoise import DenoiseSettings, denoise

from .helpers import save_tiny_sd_pipeline


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return save_tiny_sd_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd")


def _random_probes(pipe, name, steps=15, guidance=7.5):
    return random_probe_set(pipe.unet, settings_for(pipe, name, steps, guidance))


def test_model_keys():
    assert model_key("tiny-scenes") == model_key("weights/tiny-scenes") == "tiny-scenes"
    assert model_key(" CompVis/stable-diffusion-v1-4 ") == "CompVis/stable-diffusion-v1-4"
    with pytest.raises(ValueError, match="choose a model"):
        model_key("  ")


def test_unloadable_models_fail_with_what_to_do_and_nothing_changes(tiny_pipe):
    home = ProbeDemo(tiny_pipe, "tiny test model")
    models = ModelChoice(embedded=home)
    with pytest.raises(ModelUnavailableError, match="hf download"):
        models.get("nobody/no-such-model")
    assert models.get("tiny-scenes") is home and models.loaded() == ["tiny-scenes"]


def test_loaded_models_are_shared_and_bounded(tiny_pipe):
    calls = []

    def loader(name):
        calls.append(name)
        return ProbeDemo(tiny_pipe, name)

    models = ModelChoice(embedded=ProbeDemo(tiny_pipe, "home"), max_loaded=1, loader=loader)
    a = models.get("a/model")
    assert models.get("a/model") is a and calls == ["a/model"]
    models.get("b/model")
    assert models.loaded() == ["tiny-scenes", "b/model"]  # "a" was dropped
    models.get("a/model")
    assert calls == ["a/model", "b/model", "a/model"]


def test_an_sd_shaped_folder_without_probes_generates_and_says_what_is_missing(sd_folder):
    demo = demo_for_model(sd_folder)
    assert demo.preset.scheduler == "LMSDiscreteScheduler" and demo.default_guidance == 7.5
    assert demo.default_method == "activation"  # the paper's edit for models other than ours
    assert len(demo.layers) == 16 and demo.probes is None
    assert "import-paper-probes" in demo.notice and "No labeler" in demo.notice
    *_, run = demo.stream("a red sphere", seed=0, num_inference_steps=2, guidance_scale=7.5)
    assert run.done and run.image.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="no probe set"):
        list(demo.intervene(run, SliderValues(move_x=4)))


def test_an_sd_shaped_folder_finds_its_probes_and_can_be_steered(sd_folder, tmp_path):
    pipe, _ = load_model(sd_folder)
    _random_probes(pipe, "tiny-sd").save(tmp_path / "tiny-sd-probes")
    _random_probes(pipe, "other-model").save(tmp_path / "other")
    assert probe_folders_for(sd_folder, tmp_path) == [tmp_path / "tiny-sd-probes"]
    demo = demo_for_model(sd_folder, probes_root=tmp_path)
    assert demo.probes is not None and "probe set" not in demo.notice
    *_, run = demo.stream("a red sphere", seed=1, num_inference_steps=15, guidance_scale=7.5)
    view = demo.view(run, 14, "best")
    assert view.depth is not None and view.saliency is not None
    layer = demo.best_layer()  # the view shows this layer's probes on the same activations
    *_, state = denoise(demo.pipe, "a red sphere",
                        DenoiseSettings(15, 7.5, capture_layers=[layer], decode_x0=False),
                        torch.Generator().manual_seed(1))
    expected = demo.probes.depth_map(14, layer, state.activations[layer],
                                     tuple(state.latents.shape[-2:]), demo.image_size)
    np.testing.assert_allclose(demo.maps(run, 14, layer)[0], expected, rtol=1e-5, atol=1e-5)
    updates = list(demo.intervene(run, SliderValues(depth_push=1.0, first_step=0, last_step=1)))
    assert isinstance(updates[-1], EditView) and updates[-1].after.shape == view.x0.shape


def test_open_vocabulary_tokenizers_get_a_length_check_only():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(vocab={"a": 0, "b": 1, "<unk>": 2}, merges=[], unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", model_max_length=5)
    check_prompt(tok, "a b z")  # unknown to a word list, fine for an open vocabulary
    with pytest.raises(ValueError, match="at most 5"):
        check_prompt(tok, "a b a b a b a")


def test_a_folder_train_model_made_gets_the_embedded_settings_and_our_labeler(tiny_cfg, tmp_path):
    from probe_core.world.labeler import SceneLabeler
    from probe_core.world.tiny_ldm import build_pipeline, save_pipeline

    folder = save_pipeline(build_pipeline(tiny_cfg), tmp_path / "scenes-variant", tiny_cfg)
    demo = demo_for_model(str(folder), probes_root=tmp_path)
    assert demo.preset.scheduler == "DDIMScheduler" and demo.default_guidance == 4.0
    assert isinstance(demo.labeler, SceneLabeler) and "No labeler" not in demo.notice


def test_a_failed_load_evicts_no_other_sessions_model(tiny_pipe):
    def loader(name):
        if name == "bad/model":
            raise ModelUnavailableError("cannot load bad/model")
        return ProbeDemo(tiny_pipe, name)

    models = ModelChoice(embedded=ProbeDemo(tiny_pipe, "home"), max_loaded=1, loader=loader,
                         max_steps=7)
    a = models.get("a/model")
    assert models.embedded.max_steps == a.max_steps == 7  # the deployment's bound, every model
    with pytest.raises(ValueError, match="steps must be between 1 and 7"):
        list(a.stream("a red sphere", 0, 8, 4.0))
    with pytest.raises(ModelUnavailableError):
        models.get("bad/model")
    assert models.loaded() == ["tiny-scenes", "a/model"] and models.get("a/model") is a


def test_a_public_server_loads_only_the_listed_models_and_probes_no_paths(tiny_pipe, tmp_path):
    calls = []
    models = ModelChoice(embedded=ProbeDemo(tiny_pipe, "home"), allow_any=False,
                         loader=lambda name: calls.append(name) or ProbeDemo(tiny_pipe, name))
    for name in (str(tmp_path), "/etc", "/no/such/folder", "someone/other-model"):
        with pytest.raises(ModelUnavailableError, match="this server loads only") as err:
            models.get(name)
        assert name not in str(err.value)  # the same answer for what exists and what does not
    assert calls == []
    models.get("CompVis/stable-diffusion-v1-4")
    assert calls == ["CompVis/stable-diffusion-v1-4"]


@pytest.mark.parametrize("name", ["x" * 10_000, "a\x00b", "line\nbreak"])
def test_unreadable_model_names_are_refused_before_any_lookup(name):
    with pytest.raises(ModelUnavailableError, match="printable characters"):
        model_key(name)
    with pytest.raises(ModelUnavailableError, match="printable characters"):
        load_model(name)


def test_a_folder_with_pickled_weights_is_refused(tmp_path):
    from .helpers import build_tiny_pipe

    folder = tmp_path / "pickled"
    build_tiny_pipe().save_pretrained(folder, safe_serialization=False)
    assert (folder / "unet" / "diffusion_pytorch_model.bin").is_file()  # a pickle
    assert not (folder / "unet" / "diffusion_pytorch_model.safetensors").exists()
    with pytest.raises(ModelUnavailableError, match="safetensors"):
        load_model(str(folder))
