import numpy as np
import pytest
import torch

from probe_core.edits.latent_carry import carry_latents, carry_order, latent_source


@pytest.mark.parametrize("dx,dy", [(2, 0), (0, -1), (1, 1), (-3, 2)])
def test_carry_is_a_permutation_that_moves_the_source_by_the_shift(dx, dy):
    rng = np.random.default_rng(abs(dx) * 10 + abs(dy))
    for _ in range(50):
        source = rng.random((9, 11)) < 0.3
        order = carry_order(source, dx, dy)
        assert np.array_equal(np.sort(order), np.arange(99))
        grid = np.arange(99).reshape(9, 11)
        out = grid.ravel()[order].reshape(9, 11)
        for y, x in zip(*np.nonzero(source)):
            if 0 <= y + dy < 9 and 0 <= x + dx < 11:
                assert out[y + dy, x + dx] == grid[y, x]
        # pixels neither in the source nor where it goes keep their values
        dest = np.zeros_like(source)
        ys, xs = np.nonzero(source)
        ok = (ys + dy >= 0) & (ys + dy < 9) & (xs + dx >= 0) & (xs + dx < 11)
        dest[ys[ok] + dy, xs[ok] + dx] = True
        untouched = ~source & ~dest
        assert np.array_equal(out[untouched], grid[untouched])


def test_uncovered_pixels_take_the_values_the_object_now_covers():
    source = np.zeros((1, 6), bool)
    source[0, 1:3] = True  # a 2-pixel object moved 2 right: [a b c d e f] -> [a d e b c f]
    grid = np.arange(6)[None]
    out = grid.ravel()[carry_order(source, 2, 0)].reshape(1, 6)
    assert out.tolist() == [[0, 3, 4, 1, 2, 5]]


def test_carried_latents_keep_their_values_and_a_zero_shift_changes_nothing():
    x = torch.randn(1, 4, 8, 8)
    source = np.zeros((8, 8), bool)
    source[2:4, 2:5] = True
    y = carry_latents(x, source, 2, 1)
    assert torch.equal(torch.sort(y.flatten()).values, torch.sort(x.flatten()).values)
    assert torch.equal(y[..., 3:5, 4:7], x[..., 2:4, 2:5])
    assert torch.equal(carry_latents(x, source, 0, 0), x)


def test_latent_source_marks_every_patch_the_mask_touches():
    mask = np.zeros((64, 64), bool)
    mask[5, 9] = True  # image pixel (5, 9) lies in latent pixel (1, 2) of a 16x16 grid
    s = latent_source(mask, (16, 16))
    assert s.sum() == 1 and s[1, 2]


def test_image_shifts_round_to_the_nearest_latent_pixel_ties_to_even():
    from probe_core.edits.methods import latent_shift

    assert [latent_shift(p, 0.25) for p in (3, 5, 7, -7, 1, 0)] == [1, 1, 2, -2, 0, 0]
    assert [latent_shift(p, 0.25) for p in (2, 6, 10, -6)] == [0, 2, 2, -2]  # ties


def test_a_multistep_schedulers_history_is_carried_with_the_latent():
    """LMS keeps derivatives, DPM-Solver model outputs, of earlier steps at every latent pixel:
    the carry moves them with the latent; anything else in the scheduler is left alone."""
    from probe_core.edits.methods import Edit, GuidedEdit

    mask = np.zeros((32, 32), bool)
    mask[8:16, 4:12] = True
    edit = Edit("saliency", mask, "guided", shift=(8, 0), moved_from=mask, carry_step=0,
                steps=range(0, 1))
    editor = GuidedEdit.__new__(GuidedEdit)
    editor.edit = edit
    x = torch.randn(1, 4, 8, 8)
    older, other = torch.randn(1, 4, 8, 8), torch.randn(3)

    class Scheduler:
        derivatives = [older, other]
        model_outputs = [None, older.clone()]

    s = Scheduler()
    out = editor.carry(x, s)
    source = latent_source(mask, (8, 8))
    assert torch.equal(out, carry_latents(x, source, 2, 0))
    assert torch.equal(s.derivatives[0], carry_latents(older, source, 2, 0))
    assert s.derivatives[1] is other and s.model_outputs[0] is None
    assert torch.equal(s.model_outputs[1], carry_latents(older, source, 2, 0))
