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


# ------------------------------------------------ depth models that output metric distance

class _ExactDepth(torch.nn.Module):
    """A stand-in depth model that 'predicts' a rendered scene's exact depth: as metric
    distance (ZoeDepth, DepthPro: larger is farther) or as inverse depth (DPT, Depth Anything:
    larger is nearer), by its model type."""

    def __init__(self, distance: np.ndarray, model_type: str):
        super().__init__()
        from types import SimpleNamespace

        self.distance = torch.as_tensor(distance)
        self.config = SimpleNamespace(model_type=model_type)

    def forward(self, pixel_values):
        from types import SimpleNamespace

        metric = self.config.model_type in ("zoedepth", "depth_pro")
        return SimpleNamespace(predicted_depth=self.distance if metric else 1 / self.distance)


class _Pixels:
    def __call__(self, images, return_tensors="pt"):
        return {"pixel_values": torch.zeros(len(images), 3, 8, 8)}


@pytest.mark.parametrize("model_type", ["zoedepth", "depth_pro", "dpt", "depth_anything"])
def test_every_depth_model_gives_nearer_as_larger(model_type):
    """On rendered scenes whose exact distance is known, the labeler's depth correlates with
    inverse distance for metric and relative models alike (the sign guard)."""
    from probe_core.metrics import pearson
    from probe_core.sd.labelers import HFLabeler
    from probe_core.world.scenes import render_many

    images, distance, _, _ = render_many(range(3))
    labeler = HFLabeler(_ExactDepth(distance, model_type), _Pixels(), None)
    depth = labeler._depth(list(images), images.shape[1:3])
    for d, z in zip(depth, distance):
        assert pearson(d.ravel(), 1 / z.ravel()) > 0.99


def test_depth_models_are_named_choices():
    from probe_core.sd.labelers import DEPTH_MODELS, load_labeler

    assert DEPTH_MODELS["depth-anything-v2-small"] == "depth-anything/Depth-Anything-V2-Small-hf"
    with pytest.raises(Exception, match="depth-anything-v2-small"):
        load_labeler("no-such-labeler")


def test_a_depth_anything_model_labels_through_the_same_path(tmp_path):
    """Depth Anything (transformers' depth-estimation, no remote code), tiny and untrained,
    saved and named as the depth half of a labeler spec."""
    from transformers import (DepthAnythingConfig, DepthAnythingForDepthEstimation,
                              Dinov2Config, DPTImageProcessor)

    from probe_core.sd.labelers import HFLabeler, load_labeler

    from .helpers import save_tiny_hf_labeler

    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                            intermediate_size=32, image_size=28, patch_size=14,
                            out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    model = DepthAnythingForDepthEstimation(DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=8, head_hidden_size=8))
    model.save_pretrained(tmp_path / "depth-anything")
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=False,
                      ensure_multiple_of=14).save_pretrained(tmp_path / "depth-anything")
    clipseg = save_tiny_hf_labeler(tmp_path / "hf").split(",")[1]
    labeler = load_labeler(f"{tmp_path / 'depth-anything'},{clipseg}")
    assert isinstance(labeler, HFLabeler)
    assert labeler.depth_model.config.model_type == "depth_anything"
    images = render_many(range(2), size=32)[0]
    depth, saliency = labeler(images)
    assert depth.shape == saliency.shape == (2, 32, 32) and np.isfinite(depth).all()



# ------------------------------------------------ a prompt-free object: a panoptic segment

def test_the_salient_segment_is_the_central_confident_object_sized_one():
    from probe_core.sd.labelers import salient_segment

    seg = np.zeros((40, 40), int)
    seg[30:] = 1          # the floor: 25% of the image, low in the frame
    seg[:8] = 2           # the sky
    seg[14:26, 14:26] = 3  # an object at the centre
    seg[2:6, 2:6] = 4     # a small thing in a corner
    segments = [{"id": i, "score": 0.9} for i in (1, 2, 3, 4)]
    np.testing.assert_array_equal(salient_segment(seg, segments), (seg == 3).astype(np.float32))
    off_centre = [{"id": 3, "score": 0.1}, {"id": 4, "score": 0.99}, {"id": 1, "score": 0.9}]
    assert salient_segment(seg, off_centre)[3, 3] == 1  # confident enough to beat the centre
    whole = np.zeros((40, 40), int)
    assert salient_segment(whole, [{"id": 0, "score": 1.0}]).sum() == 0  # too large: none


def test_a_panoptic_segmenter_labels_objects_without_a_prompt(tmp_path):
    """A tiny untrained Mask2Former, saved and named as the saliency half of a labeler spec,
    runs through transformers' universal segmentation: P(object) maps of the image's size."""
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation,
                              Mask2FormerImageProcessor, SwinConfig)

    from probe_core.sd.labelers import PanopticSaliency, load_labeler

    from .helpers import save_tiny_hf_labeler

    torch.manual_seed(0)
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=32, depths=[1, 1, 1, 1],
                          num_heads=[1, 1, 1, 1], window_size=2,
                          out_features=["stage1", "stage2", "stage3", "stage4"])
    labels = {0: "thing", 1: "floor", 2: "sky"}
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(
        backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32,
        encoder_feedforward_dim=32, dim_feedforward=32, encoder_layers=1, decoder_layers=2,
        num_attention_heads=2, num_queries=5, num_labels=3, common_stride=4, id2label=labels,
        label2id={v: k for k, v in labels.items()}))
    model.save_pretrained(tmp_path / "mask2former")
    Mask2FormerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(
        tmp_path / "mask2former")
    dpt = save_tiny_hf_labeler(tmp_path / "hf").split(",")[0]
    labeler = load_labeler(f"{dpt},{tmp_path / 'mask2former'}")
    assert isinstance(labeler.saliency, PanopticSaliency) and labeler.info["saliency"] == "panoptic"
    images = render_many(range(2), size=64)[0]
    depth, saliency = labeler(images)
    assert depth.shape == saliency.shape == (2, 64, 64)
    assert set(np.unique(saliency)) <= {0.0, 1.0}
