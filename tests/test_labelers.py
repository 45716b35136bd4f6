from types import SimpleNamespace

import numpy as np
import pytest
import torch

from probe_core.world.labeler import (LabelerNet, LabelerTraining, SceneLabeler, evaluate_labeler,
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
    labeler = train_labeler(images, depths, masks,
                            LabelerTraining(steps=60, batch=8, lr=3e-3, width=16, progress=False))
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


class IdentityVAE:
    """encode -> mode -> decode returns its input: a round trip through it is the conversion
    uint8 -> [-1, 1] -> uint8 alone."""

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mode=lambda: x))

    def decode(self, z):
        return SimpleNamespace(sample=z)


def test_vae_round_trip_converts_and_rounds_exactly(tiny_pipe, renders):
    images = renders[0][:2]
    np.testing.assert_array_equal(vae_round_trip(IdentityVAE(), images), images)
    out = vae_round_trip(tiny_pipe.vae, images)  # a real (untrained) VAE changes the images
    assert out.shape == images.shape and out.dtype == np.uint8 and not np.array_equal(out, images)


def test_loss_is_huber_on_depth_plus_bce_on_the_mask():
    torch.manual_seed(0)
    net = LabelerNet(16)
    x = torch.randn(2, 3, 32, 32)
    depth, mask = torch.randn(2, 32, 32), (torch.rand(2, 32, 32) > 0.5).float()
    out = net(x).detach()
    expected = (torch.nn.functional.huber_loss(out[:, 0], depth)
                + torch.nn.functional.binary_cross_entropy_with_logits(out[:, 1], mask))
    loss = labeler_loss(net, x, depth, mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # against its own output as the target the loss is lower: it measures disagreement
    assert labeler_loss(net, x, out[:, 0], (out[:, 1] > 0).float()) < loss


def test_the_labelers_depth_is_also_scored_beyond_the_layout(renders):
    images, depths, masks = renders
    truth = inverse_depth_target(depths)

    def perfect(ims):
        return truth[:len(ims)], masks[:len(ims)].astype(np.float32)

    def layout_only(ims):
        return np.broadcast_to(truth.mean(0), truth.shape).copy(), masks.astype(np.float32)

    assert evaluate_labeler(perfect, images, depths, masks)["depth_partial"] == pytest.approx(1)
    blind = evaluate_labeler(layout_only, images, depths, masks)
    assert abs(blind["depth_partial"]) < 0.05 and blind["depth_pearson"] > 0.5


def test_a_labeler_is_built_on_standard_and_varied_renders_and_scored_on_both(tiny_pipe):
    from probe_core.world.labeler import build_scene_labeler

    lab = build_scene_labeler(tiny_pipe.vae, n_images=6, steps=2, n_eval=3, varied_share=0.5,
                              progress=False)
    held = lab.info["held_out"]
    assert lab.info["n_images"] == 6 and lab.info["varied_share"] == 0.5
    assert set(held) == {"renders", "vae_round_trip", "varied_vae_round_trip", "seeds"}
    assert held["varied_vae_round_trip"]["n"] == 3 and "depth_partial" in held["renders"]
    with pytest.raises(ValueError, match="varied_share"):
        build_scene_labeler(tiny_pipe.vae, n_images=2, steps=1, varied_share=1.5)
