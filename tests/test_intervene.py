import numpy as np
import pytest
import torch

from probe_core.edits.edit_settings import EditSettings
from probe_core.edits.methods import Edit, probe_loss, shift_latents, token_target
from probe_core.edits.outcome import outcome
from probe_core.edits.plan import plan
from probe_core.edits.request import EditRequest
from probe_core.edits.run import intervene, run_generation
from probe_core.probing.generation import Generation
from probe_core.edits.scene import SceneLabels
from probe_core.edits.scores import outside_change
from probe_core.edits.targets import move_mask
from probe_core.probing.hooks import self_attention_layers

from .helpers import PROMPT, scaled_random_probes

GENERATION = Generation(PROMPT, seed=3, num_inference_steps=4, guidance_scale=4.0)


@pytest.fixture
def setup(tiny_pipe):
    """The tiny pipeline, random probes for every (task, step, layer), and a target mask."""
    layers = self_attention_layers(tiny_pipe.unet)
    original = run_generation(tiny_pipe, GENERATION, layers=layers)
    probes = scaled_random_probes(tiny_pipe, layers)
    mask = np.zeros((32, 32), bool)
    mask[8:20, 4:14] = True
    return tiny_pipe, probes, original, move_mask(mask, 8, 0).map


def test_shift_latents_translates_and_repeats_the_border():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = shift_latents(x, 1, 0)
    assert torch.equal(y[..., 1:], x[..., :-1]) and torch.equal(y[..., 0], x[..., 0])
    assert torch.equal(shift_latents(x, 0, -1)[..., :-1, :], x[..., 1:, :])


def test_token_target_averages_patches():
    t = np.zeros((32, 32), np.float32)
    t[:16, :16] = 1
    tok = token_target(t, 4, (8, 8))  # 2x2 grid of an 8x8 latent
    assert tok.tolist() == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("method", ["activation", "guided"])
def test_zero_strength_equals_the_unedited_run(setup, method):
    pipe, probes, original, target = setup
    run = intervene(pipe, probes, Edit("saliency", target, method, strength=0.0,
                                                  steps=range(0, 2)), GENERATION)
    assert torch.equal(run.steps[-1].latents, original[-1].latents)


@pytest.mark.parametrize("method,strength", [("activation", 0.05), ("guided", 0.2)])
@pytest.mark.parametrize("task", ["saliency", "depth"])
def test_each_method_lowers_the_probe_loss(setup, method, strength, task):
    pipe, probes, original, target = setup
    target = target.astype(np.float32) if task == "depth" else target
    run = intervene(pipe, probes, Edit(task, target, method, strength=strength,
                                                  steps=range(1, 3), iterations=4),
                    GENERATION, original)
    assert set(run.probe_loss) == {1, 2}
    for before, after in run.probe_loss.values():
        assert after < before
    assert not torch.equal(run.steps[-1].latents, original[-1].latents)


@pytest.mark.parametrize("method", ["activation", "guided", "latent_shift"])
def test_rerun_from_cache_equals_a_full_rerun(setup, method):
    pipe, probes, original, target = setup
    edit = Edit("saliency", target, method, strength=0.1, steps=range(2, 4), shift=(8, 0))
    cached = intervene(pipe, probes, edit, GENERATION, original)
    full = intervene(pipe, probes, edit, GENERATION)
    assert torch.equal(cached.steps[-1].latents, full.steps[-1].latents)
    assert [s.index for s in cached.steps] == [0, 1, 2, 3]
    assert cached.steps[1] is original[1]  # steps before the edit are reused, not recomputed


def test_bad_edits_are_refused(setup):
    pipe, probes, original, target = setup
    for edit, message in [
        (Edit("saliency", target, "nudge"), "unknown edit method"),
        (Edit("colour", target), "unknown task"),
        (Edit("saliency", target, strength=float("nan")), "strength"),
        (Edit("saliency", target, steps=range(3, 9)), "edit steps"),
        (Edit("depth", np.full((32, 32), np.nan)), "finite"),
    ]:
        with pytest.raises(ValueError, match=message):
            intervene(pipe, probes, edit, GENERATION, original)
    with pytest.raises(ValueError, match="needs a probe set"):
        intervene(pipe, None, Edit("saliency", target), GENERATION, original)


def test_probe_loss_is_zero_for_a_perfect_depth_readout():
    w = torch.tensor([[1.0, 0.0]])
    acts = torch.tensor([[0.5, 9.0], [-1.0, 3.0]])
    assert float(probe_loss("depth", w, acts, torch.tensor([0.5, -1.0]))) == 0.0


def test_a_depth_edit_aims_the_probe_at_the_target_less_the_layout_offset():
    from probe_core.edits.methods import probe_target
    from probe_core.probing.probes import ProbeSet, ProbeSettings

    settings = ProbeSettings(model="m", scheduler="DDIMScheduler", num_inference_steps=2,
                             image_size=8, guidance_scale=1.0, layers=["l"], depth_offset="layout")
    probes = ProbeSet(settings)
    probes.add("depth", 0, "l", torch.tensor([[1.0, 0.0]]))
    probes.set_offset("l", torch.tensor([2.0, -2.0]))
    acts = torch.tensor([[0.5, 9.0], [-1.0, 3.0]])
    # the offset set reads offset + W a = [2.5, -3.0]: that is a perfect readout of this target
    target = torch.tensor([2.5, -3.0])
    aimed = probe_target(probes, "depth", "l", target)
    assert float(probe_loss("depth", probes.get("depth", 0, "l"), acts, aimed)) == 0.0
    assert torch.equal(probe_target(probes, "saliency", "l", target), target)


class FakeLabeler:
    """Labels the bright pixels as the object; depth = brightness."""

    def __call__(self, images):
        v = images.astype(np.float32).mean(-1) / 255
        return v, (v > 0.5).astype(np.float32)


def _image_with_box(x0):
    im = np.zeros((32, 32, 3), np.uint8)
    im[10:20, x0:x0 + 8] = 255
    return im


def scored(before, after, request) -> dict:
    """The outcome's scores of `after` as the edit `request` of `before` (default settings)."""
    scene = SceneLabels.label(FakeLabeler(), "", before)
    return outcome(scene, after, plan(request, EditSettings(), scene)).scores


def test_score_move_sees_the_shift_and_the_target():
    before, after = _image_with_box(4), _image_with_box(12)
    s = scored(before, after, EditRequest(move_x=8))
    assert s["shift_x"] == pytest.approx(8) and s["shift_y"] == pytest.approx(0)
    assert s["dice_before"] == 0.0 and s["dice_after"] == 1.0
    assert s["outside_change"] == 0.0


def test_score_depth_and_outside_change():
    before = _image_with_box(4)
    after = before.copy()
    after[10:20, 4:12] = 200  # the object got darker: farther for the fake labeler
    after[0:2, 30:32] = 100  # collateral change far away (too dark to be called object)
    mask = before[..., 0] > 0
    s = scored(before, after, EditRequest(depth_push=-1.0))
    assert s["depth_change"] < 0
    assert s["outside_change"] > 0
    assert outside_change(before, before, mask) == 0.0


def test_a_depth_push_is_read_where_the_object_is_after_the_edit():
    """An object that only moves is neither nearer nor farther: the old reading, inside the old
    mask, called it farther (the background behind it is dark)."""
    before, after = _image_with_box(4), _image_with_box(14)
    s = scored(before, after, EditRequest(depth_push=-1.0))
    assert s["depth_change"] == pytest.approx(0.0) and s["area_ratio"] == 1.0
    shrunk = before.copy()
    shrunk[10:20, 8:12] = 0  # half the object gone: same brightness where it still is
    assert scored(before, shrunk, EditRequest(depth_push=-1.0))["depth_change"] == \
        pytest.approx(0.0)


def test_guided_step_stays_finite_in_float16():
    """Tiny float16 gradients must not square to zero and divide to inf."""
    import numpy as np
    import torch

    from probe_core.edits.methods import Edit, GuidedEdit
    from probe_core.families import Conditioning

    class Stub(GuidedEdit):
        def __init__(self):
            self.edit = Edit("depth", np.zeros((8, 8)), "guided", 0.2, range(0, 1),
                             iterations=1)
            self.layers, self.losses = ["x"], {}

        def loss(self, latents, step, t, cond, scheduler):
            return (latents.float() * 1e-6).sum()  # gradient 1e-6: below float16's range

    latents = torch.ones(1, 4, 2, 2, dtype=torch.float16)
    out = Stub()(latents, 0, 0, Conditioning(torch.zeros(2, 1, 1), True), None)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    assert torch.allclose(out.float(), torch.full_like(out.float(), 0.8), atol=1e-2)


def test_a_guided_edit_with_a_region_moves_only_its_latent_pixels():
    import numpy as np
    import torch

    from probe_core.edits.methods import Edit, GuidedEdit
    from probe_core.families import Conditioning

    region = np.zeros((32, 32), bool)
    region[0:8, 0:4] = True  # latent pixels (0-1, 0) of an 8x8 latent (4 px each)

    class Stub(GuidedEdit):
        def __init__(self, margin):
            self.edit = Edit("depth", np.zeros((32, 32)), "guided", 0.2, range(0, 1),
                             iterations=1, region=region, region_margin=margin)
            self.layers, self.losses, self.where = ["x"], {}, None

        def loss(self, latents, step, t, cond, scheduler):
            return (latents.float() ** 2).sum()

    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    for margin, moved in ((0, (slice(0, 2), slice(0, 1))), (1, (slice(0, 3), slice(0, 2)))):
        out = Stub(margin)(latents, 0, 0, Conditioning(torch.zeros(2, 1, 1), True), None)
        changed = (out != latents).any(1)[0]  # (8, 8)
        want = torch.zeros(8, 8, dtype=torch.bool)
        want[moved] = True
        assert torch.equal(changed, want), (margin, changed)
        # the moved pixels took the full step: the normalised gradient over the region only
        g = 2 * latents[..., moved[0], moved[1]]
        step = 0.2 * latents.pow(2).mean().sqrt() / g.pow(2).mean().sqrt()
        assert torch.allclose(out[..., moved[0], moved[1]], latents[..., moved[0], moved[1]]
                              - step * g, atol=1e-5)


def test_a_carried_move_permutes_the_latent_entering_its_step(setup):
    """A guided move with a carry step moves the object's latent pixels by the shift (in
    latent pixels) entering that step, and only then; with strength 0 that is all it does."""
    from probe_core.edits.latent_carry import carry_latents, latent_source
    from probe_core.edits.methods import GuidedEdit

    pipe, probes, original, _ = setup
    mask = np.zeros((32, 32), bool)
    mask[8:20, 4:14] = True
    edit = Edit("saliency", move_mask(mask, 8, 0).map, "guided", strength=0.0, steps=range(1, 3),
                shift=(8, 0), moved_from=mask, carry_step=1)
    layers = self_attention_layers(pipe.unet)
    editor = GuidedEdit(edit, probes, pipe, layers, {i: i for i in range(4)})
    x = original[0].latents  # (1, 4, 8, 8): the latent entering step 1; 4 image px a latent px
    expected = carry_latents(x, latent_source(mask, (8, 8)), 2, 0)
    assert torch.equal(editor(x, 1, None, None, None), expected)
    assert not torch.equal(expected, x)
    assert torch.equal(editor(x, 2, None, None, None), x)  # strength 0: nothing else moves
    run = intervene(pipe, probes, edit, GENERATION, original)
    assert torch.equal(run.steps[0].latents, original[0].latents)  # before the carry: cached
    assert not torch.equal(run.steps[-1].latents, original[-1].latents)


def test_a_carry_step_outside_the_edit_steps_is_refused(setup):
    pipe, probes, original, target = setup
    edit = Edit("saliency", target, "guided", steps=range(1, 3), shift=(8, 0),
                moved_from=target, carry_step=0)
    with pytest.raises(ValueError, match="carry step"):
        intervene(pipe, probes, edit, GENERATION, original)


def test_a_methods_steps_are_moved_inside_a_shorter_run():
    d = EditSettings("guided", 0.2, range(5, 9), 2)
    assert d.steps_within() == (5, 8) and d.steps_within(15) == (5, 8)
    assert d.steps_within(7) == (5, 6) and d.steps_within(4) == (3, 3)
