"""Every model family runs through the one step loop: SD 2.x v-prediction, SDXL, PixArt, SD3
and FLUX, each a tiny untrained pipeline built from its diffusers config (no downloads)."""

import numpy as np
import pytest
import torch

from probe_core.families import family_of
from probe_core.sd.random_pipes import FAMILY_NAMES, IMAGE_SIZE, random_pipeline
from probe_core.probing.denoise import DenoiseHooks, DenoiseSettings, denoise
from probe_core.probing.hooks import self_attention_layers

PROMPT = "a red sphere on a gray floor"
SETTINGS = dict(num_inference_steps=3, guidance_scale=4.0, height=IMAGE_SIZE, width=IMAGE_SIZE)
EXPECTED = {"sd2-v": "sd", "sdxl": "sdxl", "pixart": "pixart", "sd3": "sd3", "flux": "flux"}


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family_pipe(request):
    return request.param, random_pipeline(request.param)


def _fresh(pipe):
    """A scheduler no run has set up (a used one keeps its last timesteps and sigmas)."""
    return type(pipe.scheduler).from_config(pipe.scheduler.config)


def _stock(name, pipe, seed):
    import copy

    extra = {"use_resolution_binning": False} if name == "pixart" else {}
    stock = copy.copy(pipe)
    stock.scheduler = _fresh(pipe)
    return stock(PROMPT, output_type="latent", generator=torch.Generator().manual_seed(seed),
                 **SETTINGS, **extra).images


def _ours(pipe, seed, **settings):
    return list(denoise(pipe, PROMPT, DenoiseSettings(**{**SETTINGS, **settings}),
                        generator=torch.Generator().manual_seed(seed), scheduler=_fresh(pipe)))


def test_each_family_is_recognised(family_pipe):
    name, pipe = family_pipe
    assert family_of(pipe).name == EXPECTED[name]


def test_probing_every_layer_equals_the_stock_pipeline(family_pipe):
    name, pipe = family_pipe
    steps = _ours(pipe, 5, capture_layers=None)  # first, each on a scheduler of its own
    stock = _stock(name, pipe, seed=5)
    assert torch.equal(family_of(pipe).from_grid(steps[-1].latents), stock)
    assert len(steps) == SETTINGS["num_inference_steps"]
    assert steps[-1].activations and steps[-1].x0_image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)


def test_activations_are_image_tokens_on_the_latent_grid(family_pipe):
    """Every layer gives (HW, C) with HW a power-of-two tiling of the latent grid (joint
    blocks' text tokens split off), and latents come back on the grid (1, C, h, w)."""
    _, pipe = family_pipe
    steps = _ours(pipe, 1, capture_layers=None, site="block")
    latent = steps[-1].latents
    assert latent.ndim == 4 and latent.shape[0] == 1
    h, w = latent.shape[-2:]
    for layer, acts in steps[-1].activations.items():
        n = acts.shape[0]
        assert any(n == (h >> k) * (w >> k) for k in range(4)), (layer, n, h, w)


def test_an_activation_edit_changes_the_run_and_only_its_image_tokens(family_pipe):
    """Zeroing one layer's image tokens changes the result; the edit sees (B, HW, C)."""
    _, pipe = family_pipe
    layer = self_attention_layers(family_of(pipe).denoiser(pipe))[0]
    seen = []

    def zero(output, name):
        seen.append(tuple(output.shape))
        return output * 0

    plain = _ours(pipe, 2)[-1].latents
    hooks = DenoiseHooks(activation_edit=lambda i: zero if i == 0 else None,
                         edit_layers=[layer])
    edited = list(denoise(pipe, PROMPT, DenoiseSettings(**SETTINGS),
                          generator=torch.Generator().manual_seed(2), hooks=hooks))[-1].latents
    assert not torch.equal(plain, edited)
    assert len(seen) == 1 and seen[0][-1] > 0 and seen[0][0] == 1  # the conditional half


def test_flux_single_stream_attention_gives_only_image_tokens():
    pipe = random_pipeline("flux")
    denoiser = family_of(pipe).denoiser(pipe)
    layers = self_attention_layers(denoiser)
    single = [name for name in layers if name.startswith("single_")]
    assert single and layers[-1] == single[-1]  # double-stream blocks first
    steps = _ours(pipe, 0, capture_layers=single)
    double = _ours(pipe, 0, capture_layers=[layers[0]])
    n_image = double[-1].activations[layers[0]].shape[0]
    assert all(acts.shape[0] == n_image for acts in steps[-1].activations.values())


def test_flow_matching_x0_preview_is_the_clean_latent_at_the_last_step():
    """For flow matching x0 = x_t - sigma v; at the last step the preview and the sampled
    latents agree closely (sigma goes to zero)."""
    pipe = random_pipeline("sd3")
    steps = _ours(pipe, 4, num_inference_steps=6)
    first, last = steps[0], steps[-1]
    assert first.x0_latents.shape == first.latents.shape
    gap_last = (last.x0_latents - last.latents).abs().mean()
    gap_first = (first.x0_latents - first.latents).abs().mean()
    assert gap_last < gap_first


def test_v_prediction_preview_without_the_schedulers_x0():
    """SD 2.x v-prediction under DPM-Solver (whose step reports no x0): the preview reads the
    output as v, so the last step's x0 lies near the sampled latents; read as epsilon it
    would not."""
    from probe_core.probing.schedulers import make_scheduler

    pipe = random_pipeline("sd2-v")
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    scheduler = make_scheduler(pipe, "DPM-Solver multistep")
    steps = list(denoise(pipe, PROMPT, DenoiseSettings(**{**SETTINGS, "num_inference_steps": 8}),
                         generator=torch.Generator().manual_seed(3), scheduler=scheduler))
    last = steps[-1]
    gap = (last.x0_latents - last.latents).abs().mean()
    assert gap < 0.25 * last.latents.abs().mean()


@pytest.fixture(scope="module")
def saved_families(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families")
    for name in FAMILY_NAMES:
        random_pipeline(name).save_pretrained(folder / name)
    return folder


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_load_model_opens_each_family_from_a_folder(saved_families, name):
    from probe_core.models import load_model

    pipe, preset = load_model(str(saved_families / name))
    assert family_of(pipe).name == EXPECTED[name] == preset.family
    assert preset.image_size == family_of(pipe).default_size(pipe)[0]


def test_a_gated_model_gets_a_one_line_message_on_how_to_get_access(monkeypatch):
    from diffusers import DiffusionPipeline
    from huggingface_hub.errors import GatedRepoError

    from probe_core.models import ModelUnavailableError, load_model

    def refuse(*args, **kwargs):
        raise GatedRepoError("401 Client Error: access to this repo is restricted")

    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", refuse)
    model = "stabilityai/stable-diffusion-3-medium-diffusers"
    with pytest.raises(ModelUnavailableError) as err:
        load_model(model)
    text = str(err.value)
    assert "\n" not in text and "gated" in text and f"huggingface.co/{model}" in text
    assert "HF_TOKEN" in text or "hf auth login" in text


def test_presets_name_each_family_at_its_native_size():
    from probe_core.models import PRESETS

    native = {"stabilityai/stable-diffusion-2-1": ("sd", 768),
              "stabilityai/stable-diffusion-xl-base-1.0": ("sdxl", 1024),
              "stabilityai/stable-diffusion-3-medium-diffusers": ("sd3", 1024),
              "PixArt-alpha/PixArt-XL-2-512x512": ("pixart", 512),
              "black-forest-labs/FLUX.1-schnell": ("flux", 1024)}
    for model, (family, size) in native.items():
        assert (PRESETS[model].family, PRESETS[model].image_size) == (family, size)


# ---------------------------------------------------------------- probes and edits per family

E2E_FAMILIES = ("sdxl", "pixart", "sd3", "flux")


@pytest.mark.slow
@pytest.mark.parametrize("name", E2E_FAMILIES)
def test_probes_train_evaluate_and_steer_an_edit_on_each_family(tmp_path, name):
    """Train probes on the family's activations (sharded, with the permuted-model control),
    evaluate them on held-out seeds, load them in the app's facade, generate, and run a
    scored guided move from the sliders."""
    import json

    from probe_core.probing.collect import settings_for
    from probe_core.probing.evaluate import (EvaluationRun, evaluate_probe_sets,
                                             train_probe_sets)
    from probe_core.probing.probes import ProbeSet
    from probe_core.serve.facade import ProbeDemo
    from probe_core.serve.steering import SliderValues

    from .helpers import BoxLabeler

    pipe = random_pipeline(name)
    denoiser = family_of(pipe).denoiser(pipe)
    layers = self_attention_layers(denoiser)[:2]
    settings = settings_for(pipe, name, 3, 4.0, layers=layers)
    labeler = BoxLabeler()
    train_probe_sets(pipe, settings, labeler, [PROMPT] * 4, list(range(4)), str(tmp_path / "p"))
    probes = ProbeSet.load(tmp_path / "p", expect=settings)
    control = ProbeSet.load(tmp_path / "p" / "control")
    metrics = evaluate_probe_sets(pipe, probes, control, labeler, [PROMPT] * 2, [10, 11],
                                  str(tmp_path / "eval"), EvaluationRun(progress=False))
    assert (tmp_path / "eval" / "metrics.json").is_file() and metrics
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())

    demo = ProbeDemo(pipe, name, probes, labeler)
    *_, run = demo.stream(PROMPT, seed=4, num_inference_steps=3, guidance_scale=4.0)
    assert run.done and run.image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    for method in ("activation", "guided"):  # the default for such models, the probes' gradient
        *_, final = demo.intervene(run, SliderValues(move_x=8, first_step=1, last_step=1,
                                                     strength=0.3, method=method))
        assert final.after.shape == final.before.shape
        assert not np.array_equal(final.after, final.before), method
        assert f"via `{method}`" in final.score and "object centre moved" in final.score


def _save_first_layer_probes(pipe, name: str, width: int, folder) -> None:
    """A probe set of `pipe`'s first layer only, `width` channels wide, saved to `folder`."""
    from probe_core.probing.collect import settings_for
    from probe_core.probing.probes import ProbeSet

    layer = self_attention_layers(family_of(pipe).denoiser(pipe))[0]
    probes = ProbeSet(settings_for(pipe, name, 3, 4.0, layers=[layer]))
    probes.add("depth", 0, layer, torch.zeros(1, width))
    probes.add("saliency", 0, layer, torch.zeros(2, width))
    probes.save(folder)


def test_probes_of_one_family_are_refused_on_another_naming_both(tmp_path):
    from probe_core.probing.collect import expected_settings
    from probe_core.probing.probes import ProbeMismatchError, ProbeSet

    _save_first_layer_probes(random_pipeline("sd3"), "tiny-sd3", 16, tmp_path)
    sdxl = random_pipeline("sdxl")
    with pytest.raises(ProbeMismatchError) as err:
        ProbeSet.load(tmp_path, expect=expected_settings(sdxl, "tiny-sdxl", tmp_path))
    text = str(err.value)
    assert "sd3" in text and "sdxl" in text and "tiny-sd3" in text and "tiny-sdxl" in text


def test_a_flow_model_refuses_a_noise_prediction_sampler():
    from probe_core.probing.schedulers import make_scheduler

    pipe = random_pipeline("flux")
    assert type(make_scheduler(pipe)).__name__ == "FlowMatchEulerDiscreteScheduler"
    with pytest.raises(ValueError, match="flow matching"):
        make_scheduler(pipe, "LMS")


def test_the_probe_step_map_reads_a_flow_models_shifted_schedule():
    """FLUX shifts its timesteps by the image's tokens: the probe set's schedule is the one a
    run at the default size takes, so a run's steps map to themselves."""
    from probe_core.probing.schedulers import timesteps_of
    from probe_core.probing.step_map import ProbeStepMap

    pipe = random_pipeline("flux")
    steps = _ours(pipe, 0, num_inference_steps=4, height=None, width=None)
    run_t = [st.timestep for st in steps]
    assert list(timesteps_of(pipe.scheduler, 4, pipe)) == run_t
    assert ProbeStepMap(pipe.scheduler, 4, pipe).for_run(4) == {i: i for i in range(4)}


def test_a_probe_set_of_another_hidden_size_is_refused_naming_both_widths(tmp_path):
    from probe_core.probing.collect import load_probes_for
    from probe_core.probing.probes import ProbeMismatchError

    pipe = random_pipeline("sdxl")
    _save_first_layer_probes(pipe, "tiny-sdxl", 7, tmp_path)
    with pytest.raises(ProbeMismatchError, match="reads 7 channels") as err:
        load_probes_for(pipe, "tiny-sdxl", tmp_path)
    assert "has 32" in str(err.value) or "has 16" in str(err.value)


@pytest.mark.parametrize("name", ["sdxl", "sd3"])
def test_the_apps_model_choice_opens_a_family_folder(saved_families, name, tmp_path):
    """A visitor naming a saved SDXL or SD3 folder gets it with its family's preset; without
    probes it generates and says what is missing."""
    from probe_core.serve.model_choice import demo_for_model

    demo = demo_for_model(str(saved_families / name), probes_root=tmp_path)
    assert demo.preset.family == name and demo.probes is None
    assert "No usable probe set" in demo.notice
    assert demo.layers == self_attention_layers(family_of(demo.pipe).denoiser(demo.pipe))
    *_, run = demo.stream(PROMPT, seed=0, num_inference_steps=2,
                          guidance_scale=demo.preset.guidance_scale)
    assert run.done and run.image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)


def test_runs_of_joint_attention_models_keep_no_word_maps_and_image_probing_says_why():
    """SD3 and FLUX have no cross-attention: a run asked for word maps keeps none (and does not
    fail); probing a given image is for the UNet families and says so."""
    from probe_core.probing.image_probe import probe_image

    pipe = random_pipeline("sd3")
    steps = _ours(pipe, 0, word_attention=True)
    assert all(st.word_attention is None for st in steps)
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match="UNet families"):
        next(probe_image(pipe, image, PROMPT, num_inference_steps=2))


def test_sdxl_image_probing_passes_its_size_conditioning():
    from probe_core.probing.image_probe import probe_image

    pipe = random_pipeline("sdxl")
    image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    states = list(probe_image(pipe, image, PROMPT, num_inference_steps=2))
    assert len(states) == 2 and states[0].activations


def test_flux_dev_and_schnell_get_their_own_defaults_and_bfloat16():
    from probe_core.models import pick_device, preset_for

    pipe = random_pipeline("flux")
    assert preset_for("some/flux-folder", pipe).num_inference_steps == 4  # schnell: no guidance
    pipe.transformer.register_to_config(guidance_embeds=True)
    dev = preset_for("some/flux-folder", pipe)
    assert (dev.num_inference_steps, dev.guidance_scale) == (28, 3.5)
    assert pick_device("cuda", None, "black-forest-labs/FLUX.1-schnell")[1] == torch.bfloat16
    assert pick_device("cuda", None, "stabilityai/stable-diffusion-xl-base-1.0")[1] == torch.float16


def test_an_sdxl_vae_in_float16_decodes_upcast_and_is_put_back():
    pipe = random_pipeline("sdxl")
    pipe.vae.register_to_config(force_upcast=True)
    pipe.vae.to(torch.float16)
    grid = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    image = family_of(pipe).decode(pipe, grid.half())
    assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and pipe.vae.dtype == torch.float16
    pipe.vae.to(torch.float32)
    np.testing.assert_array_equal(image, family_of(pipe).decode(pipe, grid.half().float()))


def test_a_gated_preset_offline_says_how_to_get_access_first(monkeypatch):
    from probe_core.models import ModelUnavailableError, load_model

    model = "stabilityai/stable-diffusion-3-medium-diffusers"
    with pytest.raises(ModelUnavailableError) as err:
        load_model(model)  # offline, not cached: an ordinary error from the hub client
    text = str(err.value)
    assert text.startswith(f"{model} is gated") and "\n" not in text
    assert f"https://huggingface.co/{model}" in text and "hf auth login" in text
