"""The embedded model shipped in weights/tiny-scenes: loads offline like Stable Diffusion,
stays small, and draws a scene (bright sky above a darker floor), not noise."""

from pathlib import Path

import numpy as np
import pytest

from probe_core.world.scenes import caption_vocabulary, render_scene, sample_scene

FOLDER = Path(__file__).resolve().parents[1] / "weights" / "tiny-scenes"


@pytest.fixture(scope="module")
def pipe():
    from diffusers import StableDiffusionPipeline

    p = StableDiffusionPipeline.from_pretrained(FOLDER)  # HF_HUB_OFFLINE=1 (conftest)
    p.set_progress_bar_config(disable=True)
    return p


def test_folder_is_small_and_safetensors_only():
    assert (FOLDER / "model_index.json").is_file(), f"{FOLDER} is missing"
    files = [f for f in FOLDER.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= 40 * 2**20
    assert not [f for f in files if f.suffix in (".bin", ".pth", ".pt", ".ckpt", ".pkl")]
    assert {f.parent.name for f in files if f.suffix == ".safetensors"} == {
        "unet", "vae", "text_encoder"}


def test_knows_the_caption_vocabulary(pipe):
    assert set(caption_vocabulary()) <= set(pipe.tokenizer.get_vocab())


def _sky_minus_floor(images: np.ndarray) -> float:
    """Mean brightness of the top eighth minus the bottom quarter, over (N, H, W, 3) images."""
    h = images.shape[1]
    return float(images[:, : h // 8].mean() - images[:, -h // 4:].mean())


def test_generates_a_scene_not_noise(pipe):
    from probe_core.world.tiny_ldm import generate

    prompts = [render_scene(sample_scene(s), size=16).caption for s in range(4)]
    images = np.stack([generate(pipe, p, seed=s, num_inference_steps=15)
                       for s, p in enumerate(prompts)])
    assert images.shape == (4, 64, 64, 3)
    assert images.std() > 20  # not a flat image
    assert np.abs(np.diff(images.astype(int), axis=2)).mean() < 40  # not per-pixel noise
    renders = np.stack([render_scene(sample_scene(s)).image for s in range(4)])
    assert _sky_minus_floor(renders) > 30  # the layout this test looks for
    assert _sky_minus_floor(images) > 15
    assert not np.array_equal(images[0], images[1])


def test_shipped_probes_and_labeler_load_for_the_shipped_model():
    from probe_core.serve.facade import ProbeDemo
    from probe_core.settings import EMBEDDED_PROBES

    demo = ProbeDemo.embedded()
    assert demo.notice == "" and demo.probes is not None and demo.labeler is not None
    s = demo.probes.settings
    assert (s.model, s.scheduler, s.num_inference_steps) == ("tiny-scenes", "DDIMScheduler", 15)
    assert len(demo.probes.keys("depth")) == 15 * len(demo.layers)
    assert (EMBEDDED_PROBES / "control" / "probes.json").is_file()
    # the held-out evaluation the app shows belongs to these probes
    assert demo.evaluation["meta"]["settings"]["model_fingerprint"] == s.model_fingerprint
    assert demo.best_layer() in demo.layers


def test_the_shipped_model_in_float16_keeps_its_fingerprint_and_its_probe_set():
    """The probe set is tied to the weights, not to the dtype they are run in."""
    import torch

    from probe_core.models import load_model
    from probe_core.probing.collect import expected_settings
    from probe_core.probing.probes import ProbeSet, unet_fingerprint
    from probe_core.settings import EMBEDDED_FINGERPRINT, EMBEDDED_PROBES

    pipe, _ = load_model("tiny-scenes", device="cpu", torch_dtype=torch.float16)
    assert pipe.unet.dtype == torch.float16
    assert unet_fingerprint(pipe.unet) == EMBEDDED_FINGERPRINT
    ProbeSet.load(EMBEDDED_PROBES, expect=expected_settings(pipe, "tiny-scenes", EMBEDDED_PROBES))
