import numpy as np
import pytest

from probe_core.edits.targets import (centroid, flip_mask, move_mask, paint_mask, push_depth,
                                scale_mask, shift_depth, swap_depth)


def square(y0=10, x0=10, size=8, shape=(32, 32)):
    m = np.zeros(shape, bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_move_translates_and_marks_the_changed_region():
    m = square()
    t = move_mask(m, dx=5, dy=-3)
    assert np.array_equal(t.map, square(7, 15))
    assert np.array_equal(t.region, m ^ square(7, 15))
    assert t.region.sum() == 2 * (m.sum() - (t.map & m).sum())
    assert centroid(t.map)[1] - centroid(m)[1] == pytest.approx(5)
    # moving off the image drops the part that leaves it
    assert move_mask(m, dx=30, dy=0).map.sum() == 0


def test_scale_about_the_centroid():
    m = square(12, 12, 8)
    big = scale_mask(m, 2.0).map
    assert big.sum() == 16 * 16
    assert centroid(big) == pytest.approx(centroid(m))
    small = scale_mask(m, 0.5).map
    assert small.sum() == 4 * 4 and centroid(small) == pytest.approx(centroid(m))
    with pytest.raises(ValueError, match="positive"):
        scale_mask(m, float("nan"))


def test_flip_and_paint():
    m = square(4, 2, 4)
    assert np.array_equal(flip_mask(m).map, square(4, 26, 4))
    new = square(20, 20, 3)
    t = paint_mask(m, new)
    assert np.array_equal(t.map, new) and t.region.sum() == m.sum() + new.sum()
    with pytest.raises(ValueError, match="does not match"):
        paint_mask(m, np.zeros((8, 8), bool))


def test_depth_editors():
    depth = np.linspace(-1, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    m = square()
    t = push_depth(depth, m, 0.7)
    assert np.allclose(t.map[m], depth[m] + 0.7) and np.array_equal(t.map[~m], depth[~m])
    assert np.array_equal(t.region, m) and "nearer" in t.description
    assert "farther" in push_depth(depth, m, -0.2).description
    with pytest.raises(ValueError, match="finite"):
        push_depth(depth, m, float("inf"))
    s = shift_depth(depth, 0, 4).map
    assert np.array_equal(s[4:], depth[:-4]) and np.array_equal(s[0], depth[0])
    w = swap_depth(depth).map
    assert w[0, 0] == pytest.approx(depth[-1, -1])
    assert w.mean() == pytest.approx(depth.mean(), abs=1e-6)


def test_centroid_of_empty_mask_is_nan():
    assert all(np.isnan(centroid(np.zeros((4, 4), bool))))


def test_a_push_may_redraw_the_object_where_perspective_takes_it():
    from probe_core.edits.targets import perspective_room

    mask = np.zeros((16, 16), bool)
    mask[8:10, 4:6] = True
    farther, nearer = perspective_room(mask, -1.0, 3), perspective_room(mask, 1.0, 3)
    assert np.array_equal(np.nonzero(farther.any(1))[0], np.arange(5, 10))  # up to the horizon
    assert np.array_equal(np.nonzero(nearer.any(1))[0], np.arange(8, 13))  # down toward us
    assert farther[:, 4:6].any(0).all() and not farther[:, :4].any() and not farther[:, 6:].any()
    assert np.array_equal(perspective_room(mask, -1.0, 0), mask)


def test_shrinking_peels_the_outline_and_never_erases_the_object():
    from probe_core.edits.targets import shrink_mask

    mask = square(4, 4, 6)
    assert np.array_equal(shrink_mask(mask, 1), square(5, 5, 4))
    assert np.array_equal(shrink_mask(mask, 0), mask)
    speck = square(4, 4, 2)
    assert np.array_equal(shrink_mask(speck, 1), speck)  # a speck stays a speck
    edge = square(0, 0, 4)
    assert np.array_equal(shrink_mask(edge, 1), square(1, 1, 2))  # the frame is outside
