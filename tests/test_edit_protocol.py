"""The honest edit report: the controls as methods, the labeler-free depth verdict, the
shuffled-label probes, and the protocol that runs every control on one seed range."""

import json
from dataclasses import replace

import numpy as np
import pytest

from probe_core import settings
from probe_core.edits import protocol as P
from probe_core.edits.colour_depth import colour_depth
from probe_core.edits.colour_segmenter import parse_caption, segment_colour
from probe_core.edits.edit_settings import METHOD_DEFAULTS, EditSettings
from probe_core.edits.evaluate import ProbedModel, push_row
from probe_core.edits.headline import paired_difference, summarise_protocol, targets
from probe_core.edits.outcome import outcome
from probe_core.edits.plan import plan
from probe_core.edits.request import EditRequest
from probe_core.edits.suite import EditSuite
from probe_core.probing.shuffled import derangement
from probe_core.serve.steering import SliderValues, SteerLimits, steer_request
from probe_core.world.scenes import render_scene, sample_scene
from tests.test_edit_eval import CAPTION, BrightLabeler, label, record_edits, scene_image


def box(top: int, left: int, size: int) -> np.ndarray:
    m = np.zeros((32, 32), bool)
    m[top:top + size, left:left + size] = True
    return m


def test_the_colour_depth_verdict_reads_the_bottom_edge_and_the_area():
    before = box(8, 8, 6)
    assert colour_depth(before, box(10, 7, 8))["colour_depth_verdict"] == 1  # lower, larger
    assert colour_depth(before, box(7, 9, 4))["colour_depth_verdict"] == -1  # higher, smaller
    assert colour_depth(before, box(4, 6, 10))["colour_depth_verdict"] == 0  # larger, same bottom
    assert colour_depth(before, box(10, 8, 4))["colour_depth_verdict"] == 0  # lower, smaller
    reading = colour_depth(before, box(10, 7, 8))
    assert reading["colour_bottom_shift"] == 4 and reading["colour_area_ratio"] == 64 / 36
    assert colour_depth(None, before)["colour_depth_verdict"] is None
    assert colour_depth(before, np.zeros_like(before))["colour_depth_verdict"] is None


def test_the_colour_depth_verdict_on_an_object_moved_in_the_world():
    """A render pair whose largest object came nearer (then went farther) along the camera's
    axis: the colour scorer says so without the labeler."""
    checked = 0
    for seed in settings.SEEDS.segmenter_validation[:30]:
        spec = sample_scene(seed, n_objects=1)
        before = render_scene(spec)
        objects, floor = parse_caption(before.caption)
        if not objects or segment_colour(before.image, objects[0][1], objects, floor) is None:
            continue
        obj = spec.objects[0]
        for dz, sign in ((-0.75, 1), (0.75, -1)):
            after = render_scene(replace(spec, objects=[replace(obj, z=obj.z + dz)]))
            masks = [segment_colour(s.image, objects[0][1], objects, floor)
                     for s in (before, after)]
            assert colour_depth(*masks)["colour_depth_verdict"] == sign, seed
        checked += 1
        if checked == 5:
            break
    assert checked == 5


def test_a_push_row_carries_the_colour_verdict_and_the_app_verdict():
    before = scene_image(4)
    nearer = np.full_like(before, 90)
    nearer[9:21, 3:15] = (220, 30, 25)  # the red box lower and larger
    scene = label(before)
    edit_plan = plan(EditRequest(depth_push=2.0, objects="largest"), EditSettings(), scene)
    row = push_row(outcome(scene, nearer, edit_plan), 2.0)
    assert row["colour_verdict"] == 1 and row["colour_as_asked"] is True
    assert row["same_object"] is True and isinstance(row["verdict"], bool)
    farther_row = push_row(outcome(scene, nearer, plan(EditRequest(
        depth_push=-2.0, objects="largest"), EditSettings(), scene)), -2.0)
    assert farther_row["colour_as_asked"] is False


def test_shuffled_labels_never_stay_with_their_image():
    for n in (2, 3, 10, 400):
        order = derangement(n)
        assert sorted(order) == list(range(n)) and not np.any(order == np.arange(n))
    with pytest.raises(ValueError, match="at least 2"):
        derangement(1)


def test_the_guided_methods_halves_are_methods_of_their_own():
    guided = METHOD_DEFAULTS["guided"]
    alone = METHOD_DEFAULTS["guidance_only"]
    carry = METHOD_DEFAULTS["carry_only"]
    assert guided.move_carry_step == 5 and alone.move_carry_step is None
    assert alone.method == carry.method == "guided" and alone.strength == guided.strength
    assert carry.strength == 0 and carry.move_carry_step == 5
    assert (alone.label, carry.label, guided.label) == ("guidance_only", "carry_only", "guided")
    limits = SteerLimits(max_move=16, num_inference_steps=15, image_size=64)
    for name in METHOD_DEFAULTS:
        request, chosen = steer_request(SliderValues(move_x=8, method=name), limits)
        assert chosen.label == name
    with pytest.raises(ValueError, match="carry_only"):
        steer_request(SliderValues(move_x=8, method="carry"), limits)


def test_the_app_offers_the_probes_gradient_without_the_carry():
    from probe_core.serve.ui.layout_tabs import METHOD_CHOICES

    offered = [value for _, value in METHOD_CHOICES]
    assert "guidance_only" in offered and "carry_only" in offered
    assert all(v in METHOD_DEFAULTS for v in offered)


def test_the_app_run_of_the_protocol_is_what_the_sliders_send():
    """The protocol's `app` run edits every object at the sliders' default steps, a push too:
    the settings steer_request gives for the default method."""
    app = next(r for r in P.protocol_runs() if r.name == "app")
    limits = SteerLimits(max_move=16, num_inference_steps=15, image_size=64)
    _, from_sliders = steer_request(SliderValues(depth_push=2.0), limits)
    assert app.settings(15) == from_sliders and app.suite().objects == "all"
    assert list(from_sliders.edit_steps("depth")) == [5, 6, 7, 8]


def test_the_default_method_pushes_at_the_steps_a_visitor_pushes_at():
    """The report's default push and its guidance-only control edit the steps the sliders
    edit (the moves' steps), so the sealed figures describe the push a visitor gets."""
    limits = SteerLimits(max_move=16, num_inference_steps=15, image_size=64)
    _, from_sliders = steer_request(SliderValues(depth_push=-2.0), limits)
    for name in ("guided", "guidance_only", "carry_only"):
        assert METHOD_DEFAULTS[name].edit_steps("depth") == from_sliders.edit_steps("depth")


def probe_set(layers: list[str]):
    """An empty probe set made for `layers` (the protocol reads only its layer names here)."""
    from probe_core.probing.probes import ProbeSet, ProbeSettings

    return ProbeSet(ProbeSettings("m", "DDIMScheduler", 15, 32, 1.0, layers=layers))


def run_fake_protocol(monkeypatch, tmp_path, seen):
    unet_layers = list(METHOD_DEFAULTS["guided"].layers)
    trained, shuffled = probe_set(unet_layers), probe_set(unet_layers)
    used = []
    from probe_core.edits import evaluate as E

    fake = E.intervene

    def recording(pipe, probes, edit, generation, original=None):
        used.append(probes)
        return fake(pipe, probes, edit, generation, original)

    monkeypatch.setattr(E, "intervene", recording)
    model = ProbedModel(None, trained, BrightLabeler(), 15, 1.0)
    written = P.run_protocol(model, {"trained": trained, "shuffled": shuffled}, [CAPTION],
                             [0], tmp_path)
    return written, used, trained, shuffled


def test_the_protocol_steers_the_layers_the_probed_model_has(monkeypatch, tmp_path):
    """The default's layer set is the UNet's; on a DiT (other layer names) the protocol runs
    every probed layer, as the app does, instead of asking for layers the model lacks."""
    unet_layers = list(METHOD_DEFAULTS["guided"].layers)
    for name, layers, expect in (
            ("unet", unet_layers + ["mid_block.attentions.0.transformer_blocks.0.attn1"],
             unet_layers), ("dit", [f"transformer_blocks.{i}.attn1" for i in range(3)], None)):
        seen = record_edits(monkeypatch, scene_image(4, blue_at=20))
        trained = probe_set(layers)
        P.run_protocol(ProbedModel(None, trained, BrightLabeler(), 15, 1.0),
                       {"trained": trained, "shuffled": trained},
                       [CAPTION], [0], tmp_path / name, only=("guided", "app"))
        assert seen and all(e.layers == expect for e in seen)


def test_the_protocol_runs_every_control_resumes_and_reports(monkeypatch, tmp_path):
    seen = record_edits(monkeypatch, scene_image(4, blue_at=20))
    written, used, trained, shuffled = run_fake_protocol(monkeypatch, tmp_path, seen)
    names = [r.name for r in P.protocol_runs()]
    assert [p.name for p in written] == names
    for name in names:
        meta = json.loads((tmp_path / name / "metrics.json").read_text())["protocol"]
        assert meta["seeds"] == [0, 0, 1] and meta["commit"]
    assert shuffled in used and trained in used and None in used  # carry alone: no probes
    app_pushes = [e for e in seen[-6:] if e.task == "depth"]
    assert app_pushes and all(list(e.steps) == [5, 6, 7, 8] for e in app_pushes)
    seen.clear()
    assert P.run_protocol(ProbedModel(None, trained, BrightLabeler(), 15, 1.0),
                          {"trained": trained, "shuffled": shuffled}, [CAPTION], [0],
                          tmp_path) == [] and not seen  # every run done: nothing reruns
    report = summarise_protocol(tmp_path)
    assert {t["key"] for t in report["targets"]} >= {"probes_add_colour", "nearer_shuffled"}
    assert all(isinstance(t["met"], bool) for t in report["targets"])
    page = (tmp_path / "report.md").read_text()
    assert "seeds 0-0 (not a sealed range" in page and "Targets of the default method" in page
    assert all(f"`{name}`" in page for name in names)


def test_a_paired_difference_of_a_run_with_itself_is_zero_and_targets_say_missed():
    row = {"prompt": "p", "seed": 1, "moves": {"right": {"labeler_along": 6.0, "distance": 8,
                                                        "colour_along": 7.0}}}
    run = {"rows": [row, dict(row, seed=2)]}
    same = paired_difference(run, run, lambda m: m["labeler_along"] / m["distance"])
    assert same["mean"] == 0 and same["ci"] == [0.0, 0.0] and same["n_moves"] == 2
    missing = targets({})
    assert missing and not any(t["met"] for t in missing)


def test_an_evaluation_of_every_object_moves_them_as_one(monkeypatch):
    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    from probe_core.edits import evaluate as E

    E.evaluate_edits(ProbedModel(None, None, BrightLabeler(), 4, 1.0),
                     EditSuite(("right",), objects="all"),
                     EditSettings("guided", 0.2, range(2), 1), [CAPTION], [0], progress=False)
    scene = label(before)
    assert np.array_equal(seen[0].target, np.roll(scene.mask, 8, axis=1) & scene.mask.any())


def test_the_score_card_gives_the_colour_scorers_second_opinion_on_a_push():
    from probe_core.serve.score_card import score_card

    before = scene_image(4)
    nearer = np.full_like(before, 90)
    nearer[9:21, 3:15] = (220, 30, 25)  # the red box lower and larger
    scene = label(before)
    card = score_card(outcome(scene, nearer, plan(EditRequest(depth_push=2.0), EditSettings(),
                                                   scene)))
    assert "Second opinion, no labeler" in card and ": nearer." in card
    unread = label(before)
    unread.colour_mask = None  # a colour the segmenter cannot tell apart
    unread.segment = lambda image: None
    card = score_card(outcome(unread, nearer, plan(EditRequest(depth_push=2.0), EditSettings(),
                                                   unread)))
    assert "Second opinion" not in card
