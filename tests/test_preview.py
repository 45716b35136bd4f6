"""Per-step previews: which one a model gets, what each returns, and a fitted linear map that
actually previews the embedded model's images."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from probe_core import settings
from probe_core.probing import preview as P
from probe_core.probing.denoise import decode_latents
from probe_core.serve.figures import filmstrip_tiles, step_view
from probe_core.world.scenes import render_many


def test_small_latents_get_the_full_decode(tiny_pipe):
    chosen = P.choose_preview(tiny_pipe)
    assert isinstance(chosen, P.DecodePreview)
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(chosen(x0), decode_latents(tiny_pipe, x0))


def test_impossible_previews_are_refused(tiny_pipe):
    for kind, match in (("taesd", "another VAE"), ("linear", "no linear"), ("fast", "unknown")):
        with pytest.raises(ValueError, match=match):
            P.choose_preview(tiny_pipe, kind)


def test_an_sd_vae_without_taesd_in_the_cache_gets_the_published_linear_map(tiny_pipe,
                                                                           monkeypatch):
    monkeypatch.setattr(P, "vae_kind", lambda pipe: "sd")
    monkeypatch.setattr(P, "SMALL_LATENT", 4)
    chosen = P.choose_preview(tiny_pipe)  # offline, empty cache: no TAESD
    assert isinstance(chosen, P.LinearPreview) and chosen.name == "linear latent->RGB"
    assert torch.equal(chosen.factors, torch.tensor(P.SD_V1_LATENT_RGB))
    image = chosen(torch.zeros(1, 4, 8, 8))
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert np.all(image == 128)  # zero latents, zero bias: mid grey


@pytest.fixture(scope="module")
def shipped_pipe():
    from probe_core.world.tiny_ldm import load_pipeline

    return load_pipeline(settings.EMBEDDED_MODEL)


def test_a_fitted_linear_preview_previews_held_out_renders(shipped_pipe):
    """Fitted on 48 renders, tested on 16 others: the preview of each render's latents is closer to
    the render (pooled to the latent grid) than the mean colour is."""
    images = render_many(range(5000, 5064))[0]
    factors, bias = P.fit_linear_preview(shipped_pipe, images[:48])
    chosen = P.LinearPreview(factors, bias)
    test = images[48:]
    x = torch.as_tensor(test.astype(np.float32) / 127.5 - 1).permute(0, 3, 1, 2)
    with torch.no_grad():
        latents = shipped_pipe.vae.encode(x).latent_dist.mean * shipped_pipe.vae.config.scaling_factor
    pooled = F.adaptive_avg_pool2d(x, latents.shape[-2:]).permute(0, 2, 3, 1).numpy()
    pooled = (pooled + 1) * 127.5
    previews = np.stack([chosen(latents[i:i + 1]) for i in range(len(test))]).astype(np.float32)
    err = np.abs(previews - pooled).mean()
    baseline = np.abs(pooled.mean(axis=(0, 1, 2)) - pooled).mean()
    assert err < 0.5 * baseline, (err, baseline)


def test_figures_scale_a_small_preview_to_the_maps():
    x0 = np.zeros((8, 8, 3), np.uint8)
    maps = (np.zeros((32, 32), np.float32), np.zeros((32, 32), np.float32))
    view = step_view(x0, maps, 0.5, "step 1")
    assert view.depth.shape == view.saliency.shape == view.x0.shape
    tile, _ = filmstrip_tiles([x0], [maps])[0]
    assert tile.ndim == 3


def _vae_config(channels, scaling, shift=None, blocks=(128, 256, 512, 512)):
    from types import SimpleNamespace

    from diffusers.configuration_utils import FrozenDict

    config = FrozenDict(latent_channels=channels, scaling_factor=scaling, shift_factor=shift,
                        block_out_channels=blocks)
    return SimpleNamespace(vae=SimpleNamespace(config=config))


def test_each_published_vae_is_known_by_its_latent_space():
    assert P.vae_kind(_vae_config(4, 0.18215)) == "sd"
    assert P.vae_kind(_vae_config(4, 0.13025)) == "sdxl"
    assert P.vae_kind(_vae_config(16, 1.5305, 0.0609)) == "sd3"
    assert P.vae_kind(_vae_config(16, 0.3611, 0.1159)) == "flux"
    assert P.vae_kind(_vae_config(16, 0.3611, 0.0)) is None  # no shift: another VAE
    assert P.vae_kind(_vae_config(4, 0.18215, blocks=(8, 8))) is None  # a tiny VAE
    for kind, (factors, bias) in P.LATENT_RGB.items():
        channels = 16 if kind in ("sd3", "flux") else 4
        assert np.asarray(factors).shape == (channels, 3) and len(bias) == 3


@pytest.mark.parametrize("family", ["sdxl", "sd3", "flux"])
def test_every_family_gets_its_linear_map_or_its_taesd(family, monkeypatch, tmp_path):
    """Without TAESD in the cache a family's published linear map; with one (a random-weight
    AutoencoderTiny of the family's latent channels, saved locally), TAESD decoding x0 scaled
    by its own config, as a pipeline that swapped it in for the VAE would."""
    from diffusers import AutoencoderTiny

    from probe_core.sd.random_pipes import random_pipeline

    pipe = random_pipeline(family)
    monkeypatch.setattr(P, "vae_kind", lambda pipe: family)
    monkeypatch.setattr(P, "SMALL_LATENT", 4)
    chosen = P.choose_preview(pipe)
    assert isinstance(chosen, P.LinearPreview)
    assert torch.equal(chosen.factors, torch.tensor(P.LATENT_RGB[family][0]))
    channels = len(P.LATENT_RGB[family][0])  # the real VAE's channels
    x0 = torch.randn(1, channels, 8, 8, generator=torch.Generator().manual_seed(0))
    assert chosen(x0).shape == (8, 8, 3)
    torch.manual_seed(0)
    AutoencoderTiny(latent_channels=channels, encoder_block_out_channels=(8, 8, 8, 8),
                    decoder_block_out_channels=(8, 8, 8, 8), scaling_factor=2.0,
                    shift_factor=0.5).save_pretrained(tmp_path / family)
    monkeypatch.setitem(P.TAESD, family, str(tmp_path / family))
    tiny = P.choose_preview(pipe)
    assert isinstance(tiny, P.TinyAutoencoderPreview)
    image = tiny(x0)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    raw = x0 / 2.0 + 0.5  # its own config's scaling and shift, as a pipeline would apply
    expected = P.to_uint8(tiny.vae.decode(raw, return_dict=False)[0].detach())
    np.testing.assert_array_equal(image, expected)
