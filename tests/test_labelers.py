import numpy as np
import pytest
import torch

from probe_core.world.labeler import (LabelerNet, SceneLabeler, evaluate_labeler,
                                 inverse_depth_target, labeler_loss, train_labeler,
                                 vae_round_trip)
from probe_core.world.scenes import render_many


@pytest.fixture(scope="module")
def renders():
    images, depths, masks, _ = render_many(range(40), size=32)
    return images, depths, masks


def test_inverse_depth_target_is_near_high_and_normalised(renders):
    _, depths, _ = renders
    t = inverse_depth_target(depths)
    assert t.shape == depths.shape
    assert np.allclose(t.mean(axis=(1, 2)), 0, atol=1e-6)
    d, z = depths[0].ravel(), t[0].ravel()
    assert z[np.argmin(d)] == z.max() and z[np.argmax(d)] == z.min()


@pytest.mark.slow
def test_labeler_learns_on_a_small_set_and_round_trips(renders, tmp_path):
    images, depths, masks = renders
    untrained = SceneLabeler(LabelerNet(16))
    before = evaluate_labeler(untrained, images, depths, masks)
    labeler = train_labeler(images, depths, masks, steps=60, batch=8, lr=3e-3, width=16,
                            progress=False)
    after = evaluate_labeler(labeler, images, depths, masks)
    assert after["depth_pearson"] > before["depth_pearson"] + 0.2
    assert after["dice"] > 0.3
    labeler.save(tmp_path / "lab")
    again = SceneLabeler.load(tmp_path / "lab")
    d1, s1 = labeler(images[:3])
    d2, s2 = again(images[:3])
    np.testing.assert_allclose(d1, d2, atol=1e-6)
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    assert s1.min() >= 0 and s1.max() <= 1


def test_labeler_rejects_bad_input_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        SceneLabeler(LabelerNet(16))(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(FileNotFoundError, match="labeler.safetensors"):
        SceneLabeler.load(tmp_path)


def test_vae_round_trip_keeps_shape(tiny_pipe, renders):
    images = renders[0][:2]
    out = vae_round_trip(tiny_pipe.vae, images)
    assert out.shape == images.shape and out.dtype == np.uint8


def test_loss_is_finite():
    net = LabelerNet(16)
    x = torch.zeros(2, 3, 32, 32)
    assert torch.isfinite(labeler_loss(net, x, torch.zeros(2, 32, 32), torch.zeros(2, 32, 32)))
