import json

import numpy as np
import pytest

from probe_core.serve.steering import SliderValues
from probe_core.metrics import dice, pearson
from probe_core.serve.facade import EditView, ProbeDemo
from probe_core.serve.figures import emergence_scores
from probe_core.settings import DISPLAY_SIZE
from probe_core.world.tiny_ldm import generate

from .helpers import random_probes, tiny_test_demo

PROMPT = "a small blue box on a beige plain floor"


@pytest.fixture
def demo(tiny_pipe):
    return tiny_test_demo(tiny_pipe)


@pytest.fixture
def run(demo):
    *_, last = demo.stream(PROMPT, seed=4, num_inference_steps=3, guidance_scale=4.0)
    return last


def test_stream_yields_every_step_then_a_finished_run(demo):
    runs = [(len(r.steps), r.done) for r in demo.stream(PROMPT, 4, 3, 4.0)]
    assert runs == [(1, False), (2, False), (3, True)]


def test_the_final_image_equals_plain_generation(demo, run):
    plain = generate(demo.pipe, PROMPT, seed=4, num_inference_steps=3, guidance_scale=4.0)
    np.testing.assert_array_equal(plain, run.image)


def test_view_and_scrub_come_from_the_cache(demo, run, monkeypatch):
    v = demo.view(run, 2, "best", 0.5)
    for image in (v.x0, v.depth, v.saliency):
        assert image.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3) and image.dtype == np.uint8
    assert "step 3 of 3" in v.caption
    # scrubbing and switching layers never call the model again
    def no_model(*args, **kwargs):
        raise AssertionError("the model was called")

    monkeypatch.setattr(demo.pipe.unet, "forward", no_model)
    monkeypatch.setattr(demo.pipe.vae, "decode", no_model)
    for layer in demo.layers:
        for k in range(3):
            demo.view(run, k, layer, 0.3)
    assert len(demo.filmstrip(run, demo.layers[0])) == 3


def test_emergence_scores_each_step_against_the_last():
    final_mask = np.zeros((4, 4))
    final_mask[:2] = 1  # top half
    half = np.zeros((4, 4))
    half[:1] = 1  # a quarter: Dice with the top half 2/3
    depth = np.arange(16.0).reshape(4, 4)
    maps = [(-depth, half), (depth, final_mask)]
    x0_labels = [(depth, np.zeros((4, 4))), (depth, final_mask)]
    e = emergence_scores(maps, x0_labels, (depth, final_mask))
    assert e.steps == [1, 2]
    assert e.probe_dice == pytest.approx([2 / 3, 1.0])
    assert e.probe_pearson == pytest.approx([-1.0, 1.0])
    assert e.labeler_dice == pytest.approx([0.0, 1.0])
    assert e.labeler_pearson == pytest.approx([1.0, 1.0])
    assert emergence_scores(maps, None, None).labeler_dice == []


def test_emergence_of_a_run_reads_its_cached_maps(demo, run):
    e = demo.emergence(run, "best")
    layer = demo.best_layer()
    fd, fs = demo.maps(run, 2, layer)
    for k in range(3):
        d, s = demo.maps(run, k, layer)
        assert e.probe_dice[k] == pytest.approx(dice(s > 0.5, fs > 0.5))
        assert e.probe_pearson[k] == pytest.approx(pearson(d, fd))
    assert len(e.labeler_dice) == 3
    from probe_core.serve.ui.example import emergence_frame

    curves = emergence_frame(e)  # what the page plots: four curves of three steps
    assert len(curves) == 12 and curves["curve"].nunique() == 4
    assert list(curves["score"][:3]) == pytest.approx(e.probe_dice)


def test_intervene_streams_and_scores(demo, run):
    updates = list(demo.intervene(run, SliderValues(move_x=8, first_step=1, last_step=1, strength=0.3)))
    assert [u.step for u in updates[:-1]] == [1, 2]  # resumed from step 1
    final = updates[-1]
    assert isinstance(final, EditView) and final.after.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)
    assert "Dice with target" in final.score
    assert run.edit.scores["asked_x"] == pytest.approx(8)
    assert not np.array_equal(run.edit.image, run.image)


def test_a_move_past_the_edge_says_the_target_is_cut(demo, run):
    mask = demo.scene(run).mask  # (H, W) bool
    w = mask.shape[1]
    cols = np.flatnonzero(mask.any(axis=0))  # the box: columns 6-13 of 32
    right = cols.mean() >= w / 2  # toward the nearer edge
    width = len(cols)
    move = (w - cols[0] - width // 2) if right else -(cols[0] + width // 2)  # half goes out
    *_, final = demo.intervene(run, SliderValues(move_x=move, first_step=2, last_step=2, strength=0.3))
    cut = run.edit.scores["target_cut"]
    kept = (mask[:, : w - move] if right else mask[:, -move:]).sum()  # what stays inside
    assert cut == pytest.approx(1 - kept / mask.sum()) and cut == pytest.approx(0.5)
    assert f"{100 * cut:.0f}% of the object past the image edge" in final.score
    *_, final = demo.intervene(run, SliderValues(move_x=1, first_step=2, last_step=2, strength=0.3))
    assert "past the image edge" not in final.score


def test_intervene_depth_push(demo, run):
    *_, final = demo.intervene(run, SliderValues(depth_push=1.0, method="activation", strength=0.05,
                               first_step=0, last_step=2))
    assert run.edit.task == "depth" and run.edit.scores["asked"] == pytest.approx(1.0)
    assert not np.array_equal(run.edit.image, run.image)
    s = run.edit.scores
    assert np.isfinite(s["depth_change"])
    assert s["depth_change"] == pytest.approx(s["depth_after"] - s["depth_before"])
    assert f"{s['depth_before']:+.2f}" in final.score and f"{s['depth_after']:+.2f}" in final.score


def test_a_move_and_a_push_are_one_edit_with_both_parts_scored(demo, run):
    *_, final = demo.intervene(run, SliderValues(move_x=6, depth_push=1.0, first_step=0, last_step=1,
                               strength=0.3))
    assert [p.task for p in run.edit.parts] == ["saliency", "depth"]
    scene = demo.scene(run)
    mask, depth = scene.mask, scene.depth
    moved = run.edit.parts[0].target
    assert moved.sum() == mask.sum() and not np.array_equal(moved, mask)
    # the push is asked where the move puts the object
    pushed = run.edit.parts[1].target
    assert np.allclose(pushed[moved], depth[moved] + 1.0)
    assert np.allclose(pushed[~moved], depth[~moved])
    assert "Object mask: move object by (6, 0) px" in final.score
    assert "Depth map: depth nearer by 1" in final.score
    assert final.score.count("pass: ") + final.score.count("fail: ") == 3  # centre, depth, outside


@pytest.mark.parametrize("drawn, words", [("flip", "Dice with the flip object left-right"),
                                          ("swap", "depth map's r with the target")])
def test_drawn_targets(demo, run, drawn, words):
    *_, final = demo.intervene(run, SliderValues(drawn=drawn, first_step=0, last_step=1, strength=0.3))
    scene = demo.scene(run)
    mask, depth = scene.mask, scene.depth
    part = run.edit.parts[0]
    if drawn == "flip":
        assert np.array_equal(part.target, mask[:, ::-1])
        assert ": centre moved" not in final.score  # a flip is checked by its Dice alone
    else:
        assert np.allclose(part.target, 2 * depth.mean() - depth, atol=1e-5)
    assert words in final.score


def test_painted_target_from_a_brush_layer_at_display_size(demo, run):
    layer = np.zeros((256, 256, 4), np.uint8)  # the brush layer as the editor sends it
    layer[32:96, 160:224, 3] = 255  # a square, top right
    *_, final = demo.intervene(run, SliderValues(drawn="paint", painted=layer, shift_x=4, first_step=0,
                               last_step=1, strength=0.3))
    want = np.zeros((32, 32), bool)
    want[4:12, 20:28] = True
    assert np.array_equal(run.edit.parts[0].target, want)
    assert [p.task for p in run.edit.parts] == ["saliency", "depth"]
    assert "painted mask" in final.score and "shift depth by (4, 0) px" in final.score
    assert run.edit.record()["drawn"] == "paint"
    assert run.edit.record()["carry_step"] is None  # a drawn target carries nothing


@pytest.mark.parametrize("kwargs, message", [
    (dict(move_x=float("nan")), "move x must be between"),
    (dict(move_x=500), "move x must be between"),
    (dict(scale=0), "scale must be between"),
    (dict(), "set a move, a scale, a depth push or a drawn target"),
    (dict(drawn="paint"), "paint the target mask"),
    (dict(drawn="paint", painted=np.zeros((64, 64, 4))), "painted mask is empty"),
    (dict(drawn="paint", painted=np.full((8, 8), np.nan)), "not numbers"),
    (dict(drawn="paint", painted="a mask"), "paint the target mask"),
    (dict(drawn="paint", painted=np.ones((5000, 2))), "at most 4096"),
    (dict(drawn="rotate"), "drawn target must be one of"),
    (dict(shift_x=float("inf")), "depth shift x must be between"),
    (dict(move_x=4, method="nudge"), "method must be one of"),
    (dict(move_x=4, first_step=2, last_step=1), "last edited step"),
    (dict(move_x=4, first_step=0, last_step=3), "last edited step must be between 0 and 2"),
])
def test_bad_intervention_input(demo, run, kwargs, message):
    with pytest.raises(ValueError, match=message):
        list(demo.intervene(run, SliderValues(**{"last_step": 2, **kwargs})))
    assert isinstance(list(demo.intervene(run, SliderValues(move_x=4, last_step=2)))[-1], EditView)


def test_an_edited_run_is_edited_again_and_scored(demo, run):
    """An edited run keeps no labels of its own: steering it labels its image first."""
    list(demo.intervene(run, SliderValues(move_x=4, last_step=2)))
    edited = run.edit.run
    assert edited.labels is None
    *_, final = demo.intervene(edited, SliderValues(move_x=-4, last_step=2))
    assert edited.edit.scores["asked_x"] == pytest.approx(-4)
    assert "not scored" not in final.score and "Dice with target" in final.score


def test_intervene_needs_a_run(demo):
    with pytest.raises(ValueError, match="generate an image first"):
        list(demo.intervene(None, SliderValues(move_x=4)))


def test_export_writes_a_reproducible_record(demo, run, tmp_path):
    list(demo.intervene(run, SliderValues(move_x=4, last_step=2)))
    paths = demo.export(run, tmp_path)
    names = {p.name for p in paths}
    assert {"steps.gif", "final.png", "depth.png", "saliency.png", "edited.png",
            "run.json"} <= names
    from PIL import Image, ImageSequence

    gif = Image.open(tmp_path / "steps.gif")
    frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
    assert len(frames) == 3 and frames[0].shape == (20 + 192, 3 * 192, 3)
    band = frames[0][:20].astype(int)
    assert band.max() > 200 and np.median(band) < 40  # each frame says which step it is
    assert not np.array_equal(frames[0][:20], frames[1][:20])  # "step 1 of 3", "step 2 of 3"
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["seed"] == 4 and record["prompt"] == PROMPT
    assert record["intervention"]["settings"]["move_x"] == 4
    again = generate(demo.pipe, record["prompt"], record["seed"], record["num_inference_steps"],
                     record["guidance_scale"])
    np.testing.assert_array_equal(again, run.image)


def test_vocabulary_examples_and_layers(demo):
    vocab = demo.vocabulary()
    assert "sphere" in vocab and not any(w.startswith("<") for w in vocab)
    for prompt in demo.example_prompts(4):
        assert set(prompt.split()) <= set(vocab)
    choices = demo.layer_choices()
    assert choices[0][1] == "best" and len(choices) == len(demo.layers) + 1
    assert "Dice" not in choices[1][0]  # no shipped evaluation: names only
    n = len(demo.layers)
    demo.evaluation = {"probes": {"layers": demo.layers, "dice": [[0.0] * n, [0.1 * k for k in range(n)]],
                                  "pearson": [[0.0] * n, [0.05 * k for k in range(n)]]}}
    layer = demo.layers[2]
    label = dict((v, k) for k, v in demo.layer_choices())[layer]
    assert label.endswith("Dice 0.20, depth r 0.10")  # that layer's own last-step scores
    with pytest.raises(ValueError, match="no self-attention layer"):
        demo.resolve_layer("nope")


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt="a red dragon"), "unknown words \\['dragon'\\]"),
    (dict(prompt=" ".join(["red"] * 40)), "at most 24"),
    (dict(seed=float("nan")), "seed must be between"),
    (dict(seed=-1), "seed must be between"),
    (dict(seed="abc"), "seed must be a number"),
    (dict(num_inference_steps=0), "steps must be between"),
    (dict(guidance_scale=float("inf")), "guidance must be between"),
    (dict(prompt=None), "prompt must be text"),
    (dict(prompt=""), "type a prompt first"),
    (dict(prompt="  \n "), "type a prompt first"),
    (dict(prompt="red " * 300), "at most 1000 are read"),
    (dict(seed=1.5), "seed must be a whole number"),
    (dict(num_inference_steps="2.5"), "steps must be a whole number"),
])
def test_bad_input_gets_a_clear_error(demo, kwargs, message):
    args = dict(prompt="a red sphere on a gray plain floor", seed=0, num_inference_steps=2,
                guidance_scale=4.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        list(demo.stream(**args))
    # and the demo keeps working afterwards
    assert list(demo.stream(PROMPT, seed=1, num_inference_steps=1))[-1].done


def test_missing_probe_files_leave_a_working_demo(tiny_pipe, tmp_path):
    demo = ProbeDemo.with_assets(tiny_pipe, "t", "t", tmp_path / "none", tmp_path / "none", None)
    assert "No probe maps" in demo.notice and "No labeler" in demo.notice
    *_, run = demo.stream(PROMPT, 1, 2, 4.0)
    v = demo.view(run, 1, "best")
    assert v.depth is None and v.x0.shape == (DISPLAY_SIZE, DISPLAY_SIZE, 3)
    with pytest.raises(ValueError, match="no probe set"):
        list(demo.intervene(run, SliderValues(move_x=4, last_step=1)))


def test_mismatched_probe_set_is_refused_with_a_message(tiny_pipe, tmp_path):
    probes = random_probes(tiny_pipe)
    probes.settings.model_fingerprint = "0123456789abcdef"
    probes.save(tmp_path / "probes")
    demo = ProbeDemo.with_assets(tiny_pipe, "t", "tiny", tmp_path / "probes", tmp_path, None)
    assert "No probe maps" in demo.notice and demo.probes is None


@pytest.mark.parametrize("method", ["guided", "activation"])
def test_edits_on_a_longer_run_use_the_probes_nearest_in_time(demo, method):
    """The probe set has 3 steps; a 5-step run edited at its last two steps uses the probes of
    the probed steps nearest in time, changes the image, and says which it used."""
    *_, run = demo.stream(PROMPT, seed=4, num_inference_steps=5, guidance_scale=4.0)
    *_, final = demo.intervene(run, SliderValues(move_x=8, first_step=3, last_step=4, strength=0.3,
                               method=method))
    timesteps = [s.timestep for s in run.steps]
    probed = demo.probe_steps.timesteps()
    expected = {k: int(np.argmin(np.abs(probed - timesteps[k]))) for k in (3, 4)}
    assert run.edit.probe_steps == expected and set(expected.values()) <= {0, 1, 2}
    assert not np.array_equal(run.edit.image, run.image)
    assert "run step -> probe step: 4 -> " in final.score


def test_a_run_on_the_probe_sets_schedule_says_nothing_about_probe_steps(demo, run):
    *_, final = demo.intervene(run, SliderValues(move_x=8, first_step=1, last_step=2, strength=0.3))
    assert run.edit.probe_steps == {1: 1, 2: 2} and "probe step" not in final.score


def _outcome(task, scores, scale=1.0):
    from probe_core.edits.edit_settings import EditSettings
    from probe_core.edits.outcome import EditOutcome, PartOutcome
    from probe_core.edits.plan import plan
    from probe_core.edits.request import EditRequest
    from probe_core.edits.scene import SceneLabels

    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    scene = SceneLabels(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32), mask, "")
    request = EditRequest(16, 0, scale, 2.0 if task == "depth" else 0.0)
    edit_plan = plan(request, EditSettings("guided", 0.2, range(0, 4)), scene)
    part = PartOutcome(task, np.zeros((4, 4)), None, scores, "an edit")
    return EditOutcome(np.zeros((4, 4, 3), np.uint8), [part], edit_plan, seconds=0.5)


@pytest.mark.parametrize("task, scores, scale, worked", [
    # a push asked for +2 z-units that moved +0.26 with 0.198 change outside: not as asked
    ("depth", dict(depth_before=0.0, depth_after=0.26, depth_change=0.26, asked=2.0,
                   outside_change=0.198), 1.0, False),
    ("depth", dict(depth_before=0.0, depth_after=1.2, depth_change=1.2, asked=2.0,
                   outside_change=0.05), 1.0, True),
    ("depth", dict(depth_before=0.0, depth_after=1.2, depth_change=1.2, asked=2.0,
                   outside_change=0.2), 1.0, False),  # moved, but changed too much elsewhere
    ("depth", dict(depth_before=0.0, depth_after=-1.5, depth_change=-1.5, asked=-2.0,
                   outside_change=0.05), 1.0, True),  # farther, as asked
    ("saliency", dict(dice_before=0.3, dice_after=0.8, shift_x=9.0, shift_y=0.5, asked_x=16.0,
                      asked_y=0.0, area_before=100, area_after=110, outside_change=0.1), 1.0,
     True),
    ("saliency", dict(dice_before=0.3, dice_after=0.5, shift_x=5.0, shift_y=0.0, asked_x=16.0,
                      asked_y=0.0, area_before=100, area_after=100, outside_change=0.1), 1.0,
     False),  # a third of the way
    ("saliency", dict(dice_before=0.3, dice_after=0.8, shift_x=0.0, shift_y=0.0, asked_x=0.0,
                      asked_y=0.0, area_before=100, area_after=300, outside_change=0.1), 2.0,
     True),  # area x3 for the asked x4: past half on a log scale
])
def test_the_verdict_applies_the_rule_it_states(task, scores, scale, worked):
    from probe_core.edits.verdict import verdict
    from probe_core.serve.score_card import score_card

    edit = _outcome(task, scores, scale)
    ok, checks = verdict(edit)
    assert ok is worked and all(c.startswith(("pass: ", "fail: ")) for c in checks)
    card = score_card(edit)
    assert ("**The edit worked.**" in card) is worked
    assert "Rule: the object does at least half of what was asked" in card


def test_the_run_budget_releases_the_oldest_runs_first(demo):
    from probe_core.serve.runs import RunBudget

    runs = [list(demo.stream(PROMPT, seed=k, num_inference_steps=2, guidance_scale=4.0))[-1]
            for k in range(3)]
    size = runs[0].nbytes()
    assert size > 0
    budget = RunBudget(max_bytes=int(2.5 * size))
    for r in runs:
        budget.use(r)
    assert runs[0].released and not runs[1].released and not runs[2].released
    assert budget.held_bytes() == 2 * size
    budget.use(runs[1])  # used again: now the newest
    assert not runs[1].released
    # a released run keeps its small probe outputs: it still shows every map, made again
    assert runs[0].steps[0].resume_next is None and runs[0].maps == {}
    v = demo.view(runs[0], 1)
    assert v.depth is not None and (1, demo.best_layer()) in runs[0].maps
    sliders = SliderValues(move_x=4, first_step=1, last_step=1, strength=0.3)
    *progress, final = demo.intervene(runs[0], sliders)
    assert isinstance(final, EditView)  # re-run from step 0 instead of the cache
    assert [u.step for u in progress] == [0, 1]
    # the same edit of the same run while it is still cached resumes at step 1: same image
    cached = list(demo.stream(PROMPT, seed=0, num_inference_steps=2, guidance_scale=4.0))[-1]
    *progress, _ = demo.intervene(cached, sliders)
    assert [u.step for u in progress] == [1]
    np.testing.assert_array_equal(runs[0].edit.image, cached.edit.image)


def test_exports_share_one_folder_that_cleans_itself(tmp_path):
    import os

    from probe_core.serve.exports import ExportFolder

    exports = ExportFolder(tmp_path, ttl_s=100, max_bytes=2500)
    old = exports.new()
    (old / "a.bin").write_bytes(b"0" * 1000)
    os.utime(old, (0, 0))  # long ago
    mid = exports.new()
    (mid / "b.bin").write_bytes(b"0" * 2000)
    new = exports.new()  # cleans: the old one by age
    assert not old.exists() and mid.exists() and new.parent == tmp_path
    (new / "c.bin").write_bytes(b"0" * 2000)
    exports.new()  # 4000 bytes > 2500: the oldest of the young ones goes
    assert not mid.exists() and new.exists()


def test_a_closed_session_releases_only_its_own_runs(demo):
    from probe_core.serve.runs import RunBudget

    budget = RunBudget(max_bytes=2**40)
    mine = list(demo.stream(PROMPT, 1, 2, 4.0, session="a"))[-1]
    theirs = list(demo.stream(PROMPT, 2, 2, 4.0, session="b"))[-1]
    budget.use(mine)
    budget.use(theirs)
    assert budget.drop_session("a") == 1
    assert mine.released and not theirs.released
    assert mine.steps[0].resume_next is None and theirs.steps[0].resume_next is not None


def test_the_pixel_inspector_reads_the_maps_at_that_pixel(demo, run, monkeypatch):
    from probe_core.serve import figures

    seen = {}
    monkeypatch.setattr(figures, "pixel_plot", lambda depth, prob, labels, chosen, labeler, where:
                        seen.update(depth=depth, prob=prob, chosen=chosen, labeler=labeler,
                                    where=where) or np.zeros((4, 4, 3), np.uint8))
    layer = demo.layers[1]
    demo.inspect_pixel(run, 5, 20, layer)
    assert seen["where"] == (5, 20) and seen["depth"].shape == (3, len(demo.layers))
    for k in range(3):
        depth, prob = demo.maps(run, k, layer)
        assert seen["depth"][k, seen["chosen"]] == pytest.approx(depth[20, 5], abs=1e-5)
        assert seen["prob"][k, seen["chosen"]] == pytest.approx(prob[20, 5], abs=1e-5)
    assert len(seen["labeler"][0]) == 3  # the labeler on each step's x0 at that pixel
    with pytest.raises(ValueError, match="x must be"):
        demo.inspect_pixel(run, 10_000, 0, layer)
    with pytest.raises(ValueError, match="generate an image first"):
        demo.inspect_pixel(None, 0, 0, layer)


def test_the_depth_view_ignores_the_opacity_and_carries_its_values(demo, run):
    faint, strong = demo.view(run, 2, "best", 0.0), demo.view(run, 2, "best", 1.0)
    assert np.array_equal(faint.depth, strong.depth) and not np.array_equal(faint.depth, faint.x0)
    depth, _ = demo.maps(run, 2, demo.best_layer())
    values = strong.readout.split('data-depth="')[1].split('"')[0].split(",")
    assert f'data-n="{depth.shape[0]}"' in strong.readout
    assert np.allclose(np.array(values, float).reshape(depth.shape), depth, atol=0.006)


def app_plan(mask, depth=None, n=3, **sliders):
    """The plan the app makes of these slider values for an object `mask` (32, 32) bool, on a
    model with no layer set of its own, runs of `n` steps, moves up to 16 px."""
    from probe_core.edits.plan import plan
    from probe_core.edits.scene import SceneLabels
    from probe_core.serve.steering import SteerLimits, steer_request

    request, settings = steer_request(SliderValues(**sliders), SteerLimits(16, n, 32))
    depth = np.zeros((32, 32), np.float32) if depth is None else depth
    scene = SceneLabels(np.zeros((32, 32, 3), np.uint8), depth, mask, "")
    return plan(request, settings.for_layers([]), scene)


def test_guided_edits_from_the_app_move_only_the_edited_region(monkeypatch):
    from dataclasses import replace

    from probe_core.edits import edit_settings

    monkeypatch.setitem(edit_settings.METHOD_DEFAULTS, "guided", replace(
        edit_settings.METHOD_DEFAULTS["guided"], saliency_shrink=1, carry_moves=True))
    mask = np.zeros((32, 32), bool)
    mask[10:16, 4:10] = True
    move = app_plan(mask, move_x=8, first_step=0, last_step=2, method="guided")
    edit, parts = move.edit, move.parts
    moved = np.zeros_like(mask)
    moved[10:16, 12:18] = True
    assert np.array_equal(edit.region, mask | moved) and edit.region_margin == 0
    inner = np.zeros_like(mask)
    inner[11:15, 13:17] = True  # guided steers toward the moved mask less its outline
    assert np.array_equal(edit.target, inner) and np.array_equal(parts[0].target.map, moved)
    # the move carries the object's latent pixels entering the first edited step
    assert np.array_equal(edit.moved_from, mask) and edit.carry_step == 0
    assert edit.shift == (8, 0)
    later = app_plan(mask, n=5, move_x=8, first_step=2, last_step=4, method="guided").edit
    assert later.carry_step == 2
    grown = app_plan(mask, scale=1.5, first_step=0, last_step=2, method="guided").edit
    assert grown.moved_from is None and grown.carry_step is None  # no move: nothing carried
    # a scaled move: the latent steps may reshape the object where the carry puts it
    small = app_plan(mask, move_x=8, scale=0.5, first_step=0, last_step=2, method="guided").edit
    assert small.carry_step == 0 and small.region[moved].all()
    flipped = app_plan(mask, move_x=8, drawn="flip", first_step=0, last_step=2, method="guided")
    assert flipped.edit.carry_step is None  # a drawn target is not the object found
    paper = app_plan(mask, move_x=8, first_step=0, last_step=2, method="activation").edit
    assert paper.region is None  # the paper's edit writes activations, not the latent
    assert np.array_equal(paper.target, moved)  # and takes its target as it is
    assert paper.carry_step is None


def test_a_push_from_the_app_takes_the_methods_perspective_room(monkeypatch):
    from dataclasses import replace

    from probe_core.edits import edit_settings

    mask = np.zeros((32, 32), bool)
    mask[10:16, 4:10] = True
    push = dict(depth_push=-1.0, first_step=0, last_step=2, method="guided")
    default = edit_settings.METHOD_DEFAULTS["guided"].push_room

    def pushed(room):
        monkeypatch.setitem(edit_settings.METHOD_DEFAULTS, "guided",
                            replace(edit_settings.METHOD_DEFAULTS["guided"], push_room=room))
        return app_plan(mask, **push)

    shipped = app_plan(mask, **push).parts[0].target.region  # the method's own room
    grown = mask.copy()
    grown[max(10 - default, 0):16, 4:10] = True
    assert np.array_equal(shipped, grown)
    plain = pushed(0).parts[0].target.region
    assert np.array_equal(plain, mask)
    roomy = pushed(4)
    above = np.zeros_like(mask)
    above[6:16, 4:10] = True  # farther: up to 4 px toward the horizon
    assert np.array_equal(roomy.parts[0].target.region, above)
    assert roomy.edit.region[6:10, 4:10].all()


def test_a_farther_push_from_the_app_keeps_the_objects_outlines(monkeypatch):
    """With a method that keeps outlines on farther pushes, a farther push alone is one edit of
    two parts: the depth push, then the objects' mask where it is (steered, not moved); a nearer
    push, a push with a move and the paper's method steer depth alone."""
    from dataclasses import replace

    from probe_core.edits import edit_settings
    from probe_core.serve.steering import plan_text

    monkeypatch.setitem(edit_settings.METHOD_DEFAULTS, "guided", replace(
        edit_settings.METHOD_DEFAULTS["guided"], push_outline=("farther",)))
    mask = np.zeros((32, 32), bool)
    mask[10:16, 4:10] = True

    def plan_of(move_x, push, method="guided"):
        return app_plan(mask, move_x=move_x, depth_push=push, first_step=0, last_step=2,
                        method=method)

    farther = plan_of(0, -1.0)
    assert [p.task for p in farther.parts] == ["depth", "saliency"]
    kept = farther.parts[1].target
    assert np.array_equal(kept.map, mask) and not kept.region.any()
    edit = farther.edit
    assert edit.task == "depth" and edit.also[0][0] == "saliency"
    assert np.array_equal(edit.region, mask)  # the outline part widens no region
    assert [p.task for p in plan_of(0, 1.0).parts] == ["depth"]
    assert [p.task for p in plan_of(8, -1.0).parts] == ["saliency", "depth"]
    assert [p.task for p in plan_of(0, -1.0, "activation").parts] == ["depth"]
    assert "keep the objects' outlines" in plan_text(0, 0, 1.0, -1.0, method="guided")
    assert "outlines" not in plan_text(0, 0, 1.0, 1.0, method="guided")
    assert "outlines" not in plan_text(0, 0, 1.0, -1.0, method="activation")


def test_the_score_heat_map_shows_depth_beyond_the_layout_when_it_can():
    import json

    from probe_core import settings
    from probe_core.serve.figures import depth_metric, heatmap

    shipped = json.loads(settings.EMBEDDED_EVALUATION.read_text())
    assert depth_metric(shipped["probes"]) == ("partial", "depth beyond layout")
    old = {k: v for k, v in shipped["probes"].items() if k not in ("partial", "beats")}
    assert depth_metric(old) == ("pearson", "depth Pearson")
    assert heatmap(old, old["layers"]).shape == heatmap(shipped["probes"], old["layers"]).shape


def test_edit_steps_default_to_the_methods_within_the_run(demo, run):
    from probe_core.edits.edit_settings import METHOD_DEFAULTS

    top = run.num_inference_steps - 1
    # the model's own method, then guided: its steps (5-8) lie past this run's last step
    for method in (None, "guided"):
        d = METHOD_DEFAULTS[method or demo.default_method]
        first, last = min(min(d.steps), top), min(max(d.steps), top)
        *progress, _ = demo.intervene(run, SliderValues(move_x=4, method=method))
        assert run.edit.record()["steps"] == [first, last]
        # the re-run began at the first edited step (the steps before it came from the cache)
        assert [u.step for u in progress] == list(range(first, run.num_inference_steps))
    assert (first, last) == (top, top)  # guided's steps, moved inside the run
    # a last step alone: the first follows it
    *progress, _ = demo.intervene(run, SliderValues(move_x=4, last_step=0))
    assert run.edit.record()["steps"] == [0, 0]
    assert [u.step for u in progress] == list(range(run.num_inference_steps))


def test_an_export_records_a_carry_only_when_the_latent_moved(demo, run):
    """A move carries the object's latent by the shift rounded to latent pixels; one under half
    a latent pixel carries nothing, and its record says so."""
    from probe_core.edits.methods import latent_shift

    image = run.image.shape[1]
    latent = demo.pipe.unet.config.sample_size
    tiny = next(px for px in range(1, image) if latent_shift(px, latent / image) == 0
                and latent_shift(px + 1, latent / image) != 0)  # the largest move that rounds to 0
    *_, final = demo.intervene(run, SliderValues(move_x=tiny, first_step=0, last_step=1, method="guided"))
    assert run.edit.record()["carry_step"] is None
    assert run.edit.record()["carried_latent_px"] is None
    big = 4 * image // latent  # 4 latent pixels
    *_, final = demo.intervene(run, SliderValues(move_x=big, first_step=1, last_step=2, method="guided"))
    assert run.edit.record()["carry_step"] == 1
    assert run.edit.record()["carried_latent_px"] == [4, 0]
