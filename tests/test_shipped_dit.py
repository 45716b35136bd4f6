"""The scene DiT shipped in weights/tiny-scenes-dit: a stock PixArtAlphaPipeline folder that loads
offline, carries the embedded model's VAE and text encoder unchanged, draws a scene, and comes
with its probes and held-out evaluation, as the app offers it."""

import numpy as np
import pytest
import torch

from probe_core import settings
from probe_core.world.scenes import render_scene, sample_scene

FOLDER = settings.EMBEDDED_DIT


@pytest.fixture(scope="module")
def pipe():
    from diffusers import PixArtAlphaPipeline

    p = PixArtAlphaPipeline.from_pretrained(FOLDER)  # HF_HUB_OFFLINE=1 (conftest)
    p.set_progress_bar_config(disable=True)
    return p


def test_folder_is_safetensors_only_and_weights_stay_under_80_mb():
    files = [f for f in FOLDER.rglob("*") if f.is_file()]
    assert (FOLDER / "model_index.json").is_file(), f"{FOLDER} is missing"
    assert not [f for f in files if f.suffix in (".bin", ".pth", ".pt", ".ckpt", ".pkl")]
    assert {f.parent.name for f in files if f.suffix == ".safetensors"} == {
        "transformer", "vae", "text_encoder"}
    everything = [f for f in settings.WEIGHTS.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in everything) <= 80 * 2**20


def test_it_shares_the_embedded_models_vae_text_encoder_and_words(pipe):
    from probe_core.world.tiny_ldm import load_pipeline

    unet_model = load_pipeline(settings.EMBEDDED_MODEL)
    for part in ("vae", "text_encoder"):
        mine, theirs = getattr(pipe, part).state_dict(), getattr(unet_model, part).state_dict()
        assert mine.keys() == theirs.keys(), part
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), part
    assert pipe.tokenizer.get_vocab() == unet_model.tokenizer.get_vocab()
    assert pipe.scheduler.config == unet_model.scheduler.config


def test_the_stock_call_draws_a_scene_not_noise(pipe):
    from probe_core.families import family_of

    captions = [render_scene(sample_scene(s), size=16).caption for s in range(3)]
    images = np.stack([pipe(c, num_inference_steps=15, guidance_scale=4.0, output_type="np",
                            generator=torch.Generator().manual_seed(s),
                            **family_of(pipe).stock_arguments(pipe)).images[0]
                       for s, c in enumerate(captions)])
    assert images.shape == (3, 64, 64, 3)
    assert images.std() > 0.08  # not flat
    assert np.abs(np.diff(images, axis=2)).mean() < 0.15  # not per-pixel noise
    sky, floor = images[:, :8].mean(), images[:, -16:].mean()
    assert sky - floor > 0.06  # the rendered world's bright sky above a darker floor


def test_the_app_offers_it_with_its_probes_labeler_and_evaluation():
    from probe_core.serve.model_choice import CHOICES, demo_for_model

    assert settings.EMBEDDED_DIT_NAME in CHOICES
    demo = demo_for_model(settings.EMBEDDED_DIT_NAME)
    assert demo.notice == "" and demo.probes is not None and demo.labeler is not None
    s = demo.probes.settings
    assert (s.model, s.family, s.num_inference_steps) == ("tiny-scenes-dit", "pixart", 15)
    assert len(demo.layers) == 12 and all(l.startswith("transformer_blocks.") for l in demo.layers)
    assert (settings.EMBEDDED_DIT_PROBES / "control" / "probes.json").is_file()
    # the held-out evaluation the app labels layers with belongs to these probes
    assert demo.evaluation["meta"]["settings"]["model_fingerprint"] == s.model_fingerprint
    assert demo.best_layer() in demo.layers


def test_the_apps_default_move_steers_every_block_and_moves_the_object():
    """The guided edit's tuned layers are the UNet's; on the DiT the app steers every probed
    block (its validation round chose that) and the object goes where the slider asks."""
    from probe_core.edits.edit_settings import METHOD_DEFAULTS
    from probe_core.serve.model_choice import demo_for_model
    from probe_core.serve.steering import SliderValues

    demo = demo_for_model(settings.EMBEDDED_DIT_NAME)
    assert METHOD_DEFAULTS["guided"].for_layers(demo.layers).layers is None  # every block
    caption = render_scene(sample_scene(settings.SEEDS.edit_validation[0])).caption
    *_, run = demo.stream(caption, seed=settings.SEEDS.edit_validation[0],
                          num_inference_steps=15, guidance_scale=4.0)
    *_, view = demo.intervene(run, SliderValues(move_x=8))
    shift_x, _ = run.edit.scores["labeler_shift"]
    asked_x = run.edit.scores["asked_x"]  # less than 8 where the move takes some past the edge
    assert 0 < asked_x <= 8 and shift_x >= asked_x / 2
    assert "The edit worked" in view.score
