import numpy as np
import pytest

from probe_core.metrics import dice, pearson, rmse, zscore


def test_dice_on_hand_made_masks():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 pixels
    b[:2, :1] = True  # 2 pixels, both inside a
    assert dice(a, b) == pytest.approx(2 * 2 / 6)
    assert dice(a, a) == 1.0
    assert dice(a, ~a) == 0.0
    assert dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_rmse_and_pearson_on_hand_made_maps():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert rmse(x, x + 2) == pytest.approx(2.0)
    assert pearson(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, np.ones_like(x)) == 0.0
    assert pearson(x, np.exp(x)) < 1.0  # monotone, not linear


def test_zscore():
    z = zscore(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    assert np.all(zscore(np.ones(5)) == 0)


def test_partial_correlation_given_several_maps():
    from probe_core.metrics import partial_correlation, partial_correlation_given

    rng = np.random.default_rng(0)
    z1, z2, noise = rng.normal(size=(3, 16, 16))
    x = z1 + 0.5 * noise
    y = z1 + 0.3 * rng.normal(size=(16, 16)) + 0.4 * noise
    # one map: the same as the three-correlation formula
    assert partial_correlation_given(x, y, [z1]) == pytest.approx(partial_correlation(x, y, z1))
    # what both share through z2 alone goes once z2 is regressed out too
    a, b = z2 + 0.1 * rng.normal(size=(16, 16)), z2 + 0.1 * rng.normal(size=(16, 16))
    assert partial_correlation_given(a, b, [z1]) > 0.9
    assert abs(partial_correlation_given(a, b, [z1, z2])) < 0.3
    # a map wholly explained by the regressed maps leaves nothing: 0, not a division by zero
    assert partial_correlation_given(2 * z1 - z2 + 1, y, [z1, z2]) == 0.0
