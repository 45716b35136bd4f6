"""The input-latent control: a probe of the UNet's input latent, cross-fitted on held-out images."""

import numpy as np
import pytest
import torch

from probe_core.probing.latent_control import cross_fitted_depth, latent_features
from probe_core.metrics import partial_correlation


def test_features_are_each_pixels_neighbourhood_and_a_constant():
    x = torch.arange(2 * 4 * 5 * 6, dtype=torch.float32).reshape(2, 4, 5, 6)
    f = latent_features(x)
    assert f.shape == (2, 30, 4 * 9 + 1)
    assert torch.all(f[..., -1] == 1)
    centre = f[..., :-1].reshape(2, 30, 4, 9)[..., 4]  # (N, HW, channels) the pixel itself
    assert torch.equal(centre, x.reshape(2, 4, 30).transpose(1, 2))


def _scenes(n=12, hw=8, size=32, seed=0):
    """Latents whose first channel is each image's own depth departure; labels = layout + it."""
    rng = np.random.default_rng(seed)
    layout = np.repeat(np.linspace(-1, 1, size)[:, None], size, 1).astype(np.float32)
    own = rng.standard_normal((n, hw, hw)).astype(np.float32)
    latents = torch.from_numpy(rng.standard_normal((n, 4, hw, hw)).astype(np.float32))
    latents[:, 0] = torch.from_numpy(own)
    depth = layout + np.kron(own, np.ones((size // hw, size // hw), np.float32))
    return latents, depth, layout


def test_a_latent_that_shows_the_depth_is_read_and_one_that_does_not_is_not():
    latents, depth, layout = _scenes()
    maps = cross_fitted_depth({0: latents, 1: latents[:, [1, 2, 3, 1]]}, depth, layout)
    assert maps[0].shape == depth.shape
    seen = np.mean([partial_correlation(m, d, layout) for m, d in zip(maps[0], depth)])
    blind = np.mean([partial_correlation(m, d, layout) for m, d in zip(maps[1], depth)])
    assert seen > 0.95 and abs(blind) < 0.2


def test_no_image_is_read_by_a_probe_fitted_on_it():
    latents, depth, layout = _scenes()
    before = cross_fitted_depth({0: latents}, depth, layout)[0]
    changed = depth.copy()
    changed[0] = -changed[0]  # image 0 is in fold 0: only fold 1's probe sees its labels
    after = cross_fitted_depth({0: latents}, changed, layout)[0]
    assert np.array_equal(before[0::2], after[0::2])
    assert not np.allclose(before[1::2], after[1::2])
    with pytest.raises(ValueError, match="at least 2 images"):
        cross_fitted_depth({0: latents[:1]}, depth[:1], layout)
