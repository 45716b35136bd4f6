import numpy as np
import pytest
import torch

from probe_core.metrics import zscore
from probe_core.probing.probes import ProbeSettings
from probe_core.probing.collect import CollectSettings, collect, fit_probes, permuted_unet
from probe_core.probing.evaluate import evaluate_labeler_on_x0, evaluate_probes


def brightness_labeler(images):
    """A stand-in labeler: 'depth' is z-scored brightness, 'saliency' the red pixels."""
    x = images.astype(np.float32) / 255
    depth = np.stack([zscore(im.mean(-1)) for im in x]).astype(np.float32)
    sal = (x[..., 0] > x[..., 1:].mean(-1) + 0.05).astype(np.float32)
    return depth, sal


@pytest.fixture(scope="module")
def data():
    from tests.helpers import build_tiny_pipe

    pipe = build_tiny_pipe()
    prompts = ["a large red sphere on a gray plain floor", "a small blue box on a green plain floor",
               "a large yellow cylinder on a beige striped floor", ""] * 2
    return collect(pipe, prompts, list(range(8)), brightness_labeler,
                   CollectSettings(num_inference_steps=2, guidance_scale=4.0),
                   control_unet=permuted_unet(pipe.unet, seed=1)), pipe


def test_collect_shapes(data):
    d, pipe = data
    assert d.n == 8 and d.steps == [0, 1]
    assert d.depth.shape == (8, 32, 32) and d.saliency.dtype == bool
    assert d.x0_images.shape == (8, 2, 32, 32, 3)
    first = d.layers[0]
    assert d.acts[(0, first)].shape == (8, 64, 32) and d.acts[(0, first)].dtype == torch.float16
    assert set(d.control_acts) == set(d.acts)
    assert set(d.unet_inputs) == {0, 1} and d.unet_inputs[0].shape == (8, 4, 8, 8)
    assert d.subset([1, 2]).unet_inputs[1].shape == (2, 4, 8, 8)
    assert not torch.equal(d.control_acts[(0, first)], d.acts[(0, first)])


def test_fit_and_evaluate_give_scores_for_every_step_and_layer(data):
    d, _ = data
    train, test = d.split(6)
    settings = ProbeSettings("tiny", "DDIMScheduler", 2, 32, 4.0, d.layers)
    probes = fit_probes(train, settings)
    assert len(probes.keys()) == 2 * len(d.steps) * len(d.layers)
    scores = evaluate_probes(probes, test)
    assert np.array(scores["dice"]).shape == (2, len(d.layers))
    assert all(0 <= v <= 1 for row in scores["dice"] for v in row)
    assert all(-1 <= v <= 1 for row in scores["pearson"] for v in row)
    # fitted and scored on the same 8 images, ridge must beat the all-zero prediction, whose
    # RMSE against a z-normalised target is 1
    own = evaluate_probes(fit_probes(d, settings, lam=1e-6), d)
    assert min(min(r) for r in own["rmse"]) < 0.99
    assert max(max(r) for r in own["pearson"]) > 0
    control = fit_probes(train, settings, control=True)
    ctrl = evaluate_probes(control, test, control=True)
    assert np.array(ctrl["rmse"]).shape == (2, len(d.layers))
    # the control probes are fitted on, and score, the permuted model's activations
    key = ("depth", 0, d.layers[0])
    assert not torch.equal(control.weights[key], probes.weights[key])
    own_ctrl = evaluate_probes(fit_probes(d, settings, lam=1e-6, control=True), d, control=True)
    assert min(min(r) for r in own_ctrl["rmse"]) < 0.99
    assert ctrl["rmse"] != evaluate_probes(control, test)["rmse"]


def test_labeler_on_x0(data):
    d, _ = data
    out = evaluate_labeler_on_x0(brightness_labeler, d)
    assert len(out["dice"]) == 2 and len(out["pearson"]) == 2
    assert out["pearson"][-1] > 0.5  # the last x0 is close to the final image


def test_permuted_unet_keeps_values_but_changes_order(tiny_pipe):
    control = permuted_unet(tiny_pipe.unet, seed=0)
    for (name, a), b in zip(tiny_pipe.unet.named_parameters(), control.parameters()):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values), name
    w = dict(tiny_pipe.unet.named_parameters())["conv_in.weight"]
    assert not torch.equal(w, dict(control.named_parameters())["conv_in.weight"])


def test_collect_at_the_block_site_reads_the_residual_stream(data):
    d, pipe = data
    blocks = collect(pipe, d.prompts[:2], d.seeds[:2], brightness_labeler,
                     CollectSettings(num_inference_steps=2, guidance_scale=4.0, keep_x0=False,
                                     site="block"))
    first = d.layers[0]
    assert blocks.acts[(0, first)].shape == d.acts[(0, first)][:2].shape
    assert not torch.equal(blocks.acts[(0, first)], d.acts[(0, first)][:2])
    np.testing.assert_array_equal(blocks.depth, d.depth[:2])  # same images, same labels


def test_bilinear_fit_recovers_a_probe_read_out_bilinearly():
    """Labels made by a known per-token linear map, bilinearly upsampled to twice the grid:
    fitting on fit_inputs(..., "bilinear") recovers the map; the nearest fit cannot."""
    import torch.nn.functional as F

    from probe_core.probing.fitting import fit_inputs, fit_ridge
    from probe_core.probing.readout import upsample_tokens

    g = torch.Generator().manual_seed(0)
    acts = torch.randn(40, 16, 6, generator=g)  # (N, HW, C): a 4x4 grid, latent 4x4
    w_true = torch.randn(1, 6, generator=g)
    depth = upsample_tokens(acts @ w_true.T, (4, 4), (8, 8), "bilinear").reshape(40, 8, 8)
    saliency = depth.numpy() > 0
    X, depth_t, sal_t = fit_inputs(acts, depth.numpy(), saliency, (4, 4), "bilinear")
    assert X.shape == (40 * 64, 6) and depth_t.shape == sal_t.shape == (40 * 64,)
    assert torch.allclose(fit_ridge(X, depth_t, lam=1e-8), w_true, atol=1e-4)
    Xn, depth_n, _ = fit_inputs(acts, depth.numpy(), saliency, (4, 4), "nearest")
    assert Xn.shape == (40 * 16, 6)
    assert torch.allclose(depth_n, F.avg_pool2d(depth[:, None], 2).reshape(-1))
    assert not torch.allclose(fit_ridge(Xn, depth_n, lam=1e-8), w_true, atol=1e-2)


def test_the_layout_controls_in_evaluation_and_report(data, tmp_path):
    import json

    from probe_core.probing.evaluate import (latent_probe_scores, layout_scores_per_image,
                                             probe_scores_per_image, _mean_scores)
    from probe_core.probing.layout import layout_baseline
    from probe_core.probing.report import write_report

    d, _ = data
    layout = layout_baseline(d.depth, d.saliency)
    settings = ProbeSettings("tiny", "DDIMScheduler", 2, 32, 4.0, d.layers, readout="bilinear")
    probes = fit_probes(d, settings, lam=1e-6)
    per = probe_scores_per_image(probes, d, layout=layout)
    assert per["partial"].shape == per["beats"].shape == (2, len(d.layers), d.n)
    assert set(np.unique(per["beats"])) <= {0.0, 1.0}
    fixed = layout_scores_per_image(layout, d, "bilinear")
    assert fixed["pearson"].shape == (d.n,) and fixed["ceiling_partial"].shape == (len(d.layers), d.n)
    # the finest grid sees the labels best
    assert fixed["ceiling_pearson"].mean(-1).max() == pytest.approx(
        fixed["ceiling_pearson"].mean(-1)[0], abs=0.05)
    scores = _mean_scores(per, d.steps, d.layers)
    control = _mean_scores(probe_scores_per_image(fit_probes(d, settings, control=True), d,
                                                  control=True, layout=layout),
                           d.steps, d.layers)
    averaged = {"layers": d.layers, **{k: v.mean(-1).tolist() for k, v in fixed.items()}}
    latent = latent_probe_scores(d.unet_inputs, d.depth, layout, "bilinear")
    assert latent["steps"] == d.steps and all(-1 <= v <= 1 for v in latent["partial"])
    head = write_report(tmp_path, scores, control, None, {"settings": {}}, averaged, latent)
    beyond = head["depth_beyond_layout"]
    assert -1 <= beyond["partial_last_step"] <= 1 and "control_partial_last_step" in beyond
    assert beyond["latent_probe"]["partial"] == latent["partial"]
    table = (tmp_path / "table.md").read_text()
    assert "Depth beyond the layout" in table and "latent probe partial" in table
    assert "beyond latent" not in table  # not asked for: no column
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["layout_controls"]["pearson"] and saved["latent_probe"]["beats"]
    # beyond the input latent too: each probe map against the labels, less the layout and the
    # latent probe's map of the same image
    from probe_core.probing.evaluate import beyond_input_latent, depth_tokens
    from probe_core.probing.latent_control import cross_fitted_depth
    from probe_core.probing.readout import to_map, upsample_tokens

    control_probes = fit_probes(d, settings, control=True)
    tokens = depth_tokens(probes, d)
    layer = d.layers[0]
    assert tokens[(d.steps[-1], layer)].shape == (d.n, d.acts[(d.steps[-1], layer)].shape[1])
    # the token outputs are what depth_map upsamples
    assert np.allclose(probes.depth_map(d.steps[-1], layer, d.acts[(d.steps[-1], layer)][0],
                                        d.latent_hw, d.depth.shape[-1]),
                       to_map(tokens[(d.steps[-1], layer)][0], d.latent_hw, d.depth.shape[-1],
                              "bilinear"), atol=1e-5)
    latent_maps = cross_fitted_depth(d.unet_inputs, d.depth, layout["depth"], "bilinear")

    def beyond(t):
        return beyond_input_latent(t, d.depth, layout, latent_maps, d.steps, d.layers,
                                   d.latent_hw, "bilinear")

    per_image = beyond(tokens)
    assert per_image.shape == (len(d.steps), len(d.layers), d.n)
    # a probe whose map is the regressed-out map itself reads nothing beyond it
    H, W = d.depth.shape[1:]
    own = {s: upsample_tokens(tokens[(s, layer)][..., None], d.latent_hw, (H, W),
                              "bilinear").reshape(d.n, H, W).numpy() for s in d.steps}
    assert np.abs(beyond_input_latent(tokens, d.depth, layout, own, d.steps, [layer],
                                      d.latent_hw, "bilinear")).max() < 1e-6
    assert np.abs(per_image).max() > 0.05  # where it is not, something is left
    scores["partial_beyond_latent"] = per_image.mean(-1).tolist()
    control["partial_beyond_latent"] = beyond(
        depth_tokens(control_probes, d, control=True)).mean(-1).tolist()
    head = write_report(tmp_path, scores, control, None, {"settings": {}}, averaged, latent)
    summary = head["depth_beyond_layout"]
    b = d.layers.index(summary["layer"])
    assert summary["partial_beyond_latent_last_step"] == scores["partial_beyond_latent"][-1][b]
    assert (summary["control_partial_beyond_latent_last_step"]
            == control["partial_beyond_latent"][-1][b])
    last_row = [line for line in (tmp_path / "table.md").read_text().splitlines()
                if line.startswith(f"| {d.steps[-1]} |")][-1]
    cells = [c.strip() for c in last_row.strip("|").split("|")]
    assert cells[-2:] == [f"{scores['partial_beyond_latent'][-1][b]:.3f}",
                          f"{control['partial_beyond_latent'][-1][b]:.3f}"]


def test_the_report_says_what_a_layout_offset_scores_alone(data, tmp_path):
    from probe_core.probing.evaluate import (layout_scores_per_image, probe_scores_per_image,
                                             _mean_scores)
    from probe_core.probing.layout import layout_baseline
    from probe_core.probing.report import write_report

    d, _ = data
    layout = layout_baseline(d.depth, d.saliency)
    settings = ProbeSettings("tiny", "DDIMScheduler", 2, 32, 4.0, d.layers, readout="bilinear",
                             depth_offset="layout")
    probes = fit_probes(d, settings, lam=1e-6)
    assert set(probes.offsets) == set(d.layers)
    fixed = layout_scores_per_image(layout, d, "bilinear", probes)
    assert fixed["offset_partial"].shape == fixed["offset_beats"].shape == (len(d.layers), d.n)
    # the offset is the layout on a token grid: close to the fixed map, image-blind
    assert fixed["offset_pearson"].mean() > 0.5 * fixed["pearson"].mean()
    assert "offset_pearson" not in layout_scores_per_image(layout, d, "bilinear")
    scores = _mean_scores(probe_scores_per_image(probes, d, layout=layout), d.steps, d.layers)
    averaged = {"layers": d.layers, **{k: v.mean(-1).tolist() for k, v in fixed.items()}}
    head = write_report(tmp_path, scores, None, None, {"settings": settings.__dict__}, averaged)
    alone = head["depth_beyond_layout"]["offset_alone"]
    assert 0 <= alone["beats_fixed_map"] <= 1
    table = (tmp_path / "table.md").read_text()
    assert "depth offset alone (no probe)" in table and "adds the layout offset" in table
