"""The image-blind layout control: the fixed map, what lies beyond it, the token-grid ceiling."""

import numpy as np
import pytest

from probe_core.metrics import partial_correlation
from probe_core.probing.layout import (layout_baseline, load_layout,
                                       save_layout, token_readout)


def test_partial_correlation_is_what_lies_beyond_the_fixed_map():
    rng = np.random.default_rng(0)
    layout = np.linspace(-1, 1, 64 * 64).reshape(64, 64)  # near at the bottom, far at the top
    own = rng.standard_normal((64, 64))  # this image's own structure
    label = layout + 0.5 * own
    assert partial_correlation(layout, label, layout) == pytest.approx(0.0, abs=1e-9)
    assert partial_correlation(label, label, layout) == pytest.approx(1.0)
    # a map that is layout plus the image's own part reads it beyond the layout; one that is
    # layout plus unrelated noise does not, though its plain correlation is about as high
    good, blind = layout + 0.5 * own, layout + 0.5 * rng.standard_normal((64, 64))
    assert partial_correlation(good, label, layout) > 0.99
    assert abs(partial_correlation(blind, label, layout)) < 0.05
    assert np.corrcoef(blind.ravel(), label.ravel())[0, 1] > 0.5


def test_the_fixed_maps_are_the_mean_labels_and_round_trip(tmp_path):
    depths = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)])
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = True
    layout = layout_baseline(depths, masks)
    assert np.allclose(layout["depth"], 2.0) and np.allclose(layout["saliency"][:2], 0.5)
    save_layout(layout, tmp_path)
    back = load_layout(tmp_path)
    assert all(np.array_equal(back[k], layout[k]) for k in layout)
    assert load_layout(tmp_path / "none") is None


def test_the_ceiling_is_the_label_seen_through_the_token_grid():
    blocks = np.kron(np.arange(16.0).reshape(4, 4), np.ones((8, 8)))  # constant on 8x8 tokens
    assert np.allclose(token_readout(blocks, (4, 4), "nearest"), blocks)
    fine = np.indices((32, 32)).sum(0) % 2 * 1.0  # a checkerboard finer than the tokens
    assert np.allclose(token_readout(fine, (4, 4), "bilinear"), 0.5)  # invisible to them


def test_best_layers_can_be_picked_on_other_images():
    """A clean protocol: the layer chosen on validation seeds is reported on test seeds, even
    when another layer scores higher on the test images."""
    from probe_core.probing.report import best_layer, markdown_table, picked_layers

    scores = {"layers": ["a", "b"], "steps": [0], "n": 3, "dice": [[0.2, 0.9]],
              "pearson": [[0.8, 0.1]], "rmse": [[1.0, 1.0]]}
    assert best_layer(scores, "dice") == 1 and best_layer(scores, "pearson") == 0
    validation = {"summary": {"dice": {"best_layer": "a"}, "pearson": {"best_layer": "b"}},
                  "meta": {"seeds": [210000, 210099]}}
    scores["picked"] = picked_layers(validation)
    assert best_layer(scores, "dice") == 0 and best_layer(scores, "pearson") == 1
    assert "picked on other images (seeds 210000-210099)" in markdown_table(scores, None, None)
