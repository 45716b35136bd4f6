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
