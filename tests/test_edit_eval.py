"""The intervention evaluation: moves in every direction that keep the object in frame, fair depth
scoring, the colour segmenter as a second scorer, crowding."""

import numpy as np
import pytest

from probe_core import settings
from probe_core.edits import evaluate as E
from probe_core.edits.colour_segmenter import (components, parse_caption, segment_colour,
                                               segmentable)
from probe_core.edits.edit_settings import EditSettings
from probe_core.edits.evaluate import ProbedModel, move_row, push_row
from probe_core.edits.outcome import outcome
from probe_core.edits.plan import plan
from probe_core.edits.report import summarise, table, write_edit_report
from probe_core.edits.request import EditRequest
from probe_core.edits.scene import SceneLabels, main_object
from probe_core.edits.suite import EditSuite, move_vector, room, unit
from probe_core.edits.targets import move_mask
from probe_core.metrics import dice
from probe_core.world.scenes import render_scene, sample_scene

CAPTION = "a large red box and a small blue sphere on a gray plain floor"


class BrightLabeler:
    """The object is every bright or saturated pixel; depth = brightness."""

    def __call__(self, images):
        v = images.astype(np.float32) / 255
        return v.mean(-1), (v.max(-1) > 0.4).astype(np.float32)


def scene_image(x0, y0=10, blue_at=None):
    im = np.full((32, 32, 3), 90, np.uint8)  # gray floor
    im[y0:y0 + 8, x0:x0 + 8] = (220, 30, 25)  # red box
    if blue_at is not None:
        im[24:28, blue_at:blue_at + 4] = (30, 60, 230)  # small blue sphere
    return im


def label(image) -> SceneLabels:
    return SceneLabels.label(BrightLabeler(), CAPTION, image)


def move_scores(scene, after, dx, direction, distance) -> dict:
    """The evaluation's row of a move of the scene's largest object by (dx, 0) px."""
    edit_plan = plan(EditRequest(dx, 0, objects="largest"), EditSettings(), scene)
    return move_row(outcome(scene, after, edit_plan), direction, distance)


def evaluate(settings: EditSettings, suite: EditSuite = EditSuite(), steps: int = 4,
             guidance: float = 1.0):
    """evaluate_edits of CAPTION at seed 0 with the bright labeler (no pipeline: stand-ins)."""
    return E.evaluate_edits(ProbedModel(None, None, BrightLabeler(), steps, guidance), suite,
                            settings, [CAPTION], [0], progress=False)


def test_captions_parse_into_objects_and_floor():
    objects, floor = parse_caption(CAPTION)
    assert objects == [("large", "red", "box"), ("small", "blue", "sphere")] and floor == "gray"
    assert parse_caption("an empty gray plain floor") == ([], "gray")
    assert segmentable("red", objects, floor)
    assert not segmentable("white", [("large", "white", "box")], "gray")  # no hue
    assert not segmentable("red", objects + [("small", "red", "box")], floor)  # two red things
    assert not segmentable("green", [("large", "green", "box")], "green")  # floor of its colour
    # another object's colour the renderer does not know: nothing to tell the red one from
    odd = parse_caption("a large red sphere and a small large box on a gray plain floor")[0]
    assert not segmentable("red", odd, "gray")
    assert segment_colour(scene_image(4), "red", odd, "gray") is None


def test_the_colour_segmenter_finds_rendered_objects():
    """On renders with exact masks (validation seeds; the test seeds give the same: Dice 0.97)."""
    scores = []
    for seed in settings.SEEDS.segmenter_validation[:40]:
        sc = render_scene(sample_scene(seed), 64)
        objects, floor = parse_caption(sc.caption)
        mask = segment_colour(sc.image, objects[0][1], objects, floor) if objects else None
        if mask is not None:
            scores.append(dice(mask, sc.object_ids == int(np.argmax(sc.areas))))
    assert len(scores) >= 15 and np.mean(scores) > 0.9


def test_room_keeps_the_object_in_frame():
    mask = np.zeros((32, 32), bool)
    mask[10:18, 24:30] = True  # 2 px from the right edge, 24 from the left
    assert room(mask, "right", 8) == 2 and room(mask, "left", 8) == 8
    assert room(mask, "left", 100) == 24
    d = room(mask, "up-right", 100)
    dx, dy = move_vector("up-right", d)
    moved = move_mask(mask, dx, dy).map
    assert moved.sum() == mask.sum()  # nothing cut off
    assert move_vector("down-left", 10) == (-7, 7)


def test_the_main_object_is_the_largest_piece():
    mask = np.zeros((16, 16), bool)
    mask[1:3, 1:3] = True
    mask[8:14, 8:14] = True
    obj, others = main_object(mask)
    assert obj.sum() == 36 and others.sum() == 4 and components(mask) == 2


def test_a_move_is_scored_by_both_scorers_along_its_direction():
    before, after = scene_image(4, blue_at=20), scene_image(12, blue_at=20)
    scene = label(before)
    assert scene.n_objects == 2 and scene.colour == "red" and scene.pieces == 2
    right = move_scores(scene, after, 8, "right", 8)
    assert right["labeler_along"] == pytest.approx(8) and right["colour_along"] == pytest.approx(8)
    assert right["kept"] and right["area_ratio"] == 1.0
    left = move_scores(scene, after, -8, "left", 8)
    assert left["labeler_along"] == pytest.approx(-8)
    merged = scene_image(12, blue_at=14)  # the blue sphere now touches the box
    merged[18:24, 14:18] = (30, 60, 230)
    assert not move_scores(scene, merged, 8, "right", 8)["kept"]


def test_a_move_that_ends_against_another_object_keeps_both_objects_by_the_tracker():
    def image(x0):
        im = scene_image(x0)
        im[17:21, 22:26] = (30, 60, 230)  # the blue sphere, just right of where the box goes
        return im

    scene = label(image(4))
    row = move_scores(scene, image(14), 10, "right", 10)
    assert scene.pieces == 2 and row["same_object"]  # the red pixels are the labelled box
    assert not row["kept"] and row["objects_kept"]  # one blob by the count, two tracked
    assert row["labeler_along"] == pytest.approx(10) and row["colour_along"] == pytest.approx(10)
    copy = image(14)
    copy[10:18, 4:12] = (220, 30, 25)  # a second red box left where the first was
    assert not move_scores(scene, copy, 10, "right", 10)["objects_kept"]


def test_a_push_that_only_moves_the_object_is_not_called_farther():
    before, after = scene_image(4), scene_image(12)
    scene = label(before)
    edit_plan = plan(EditRequest(depth_push=-2.0, objects="largest"), EditSettings(), scene)
    push = push_row(outcome(scene, after, edit_plan), -2.0)
    assert push["depth_change"] == pytest.approx(0.0, abs=1e-6) and not push["as_asked"]


def test_the_summary_reports_each_direction_with_its_opposite_and_crowding():
    def row(n, shifts):
        moves = {d: {"direction": d, "distance": 8, "kept": True, "outside_change": 0.01,
                     "objects_kept": n == 1, "faults": [] if n == 1 else ["edited split"],
                     "area_ratio": 1.0, "labeler_shift": s, "colour_shift": s,
                     "labeler_along": s[0] * unit(d)[0] + s[1] * unit(d)[1],
                     "colour_along": s[0] * unit(d)[0] + s[1] * unit(d)[1],
                     "objects_kept_strict": n == 1, "split": n != 1,
                     "outside_change_no_margin": 0.02}
                 for d, s in shifts.items()}
        return {"n_objects": n, "moves": moves, "random_move": {"labeler_shift": (0.0, 0.0)}}

    rows = [row(1, {"right": (8.0, 0.0), "left": (-2.0, 0.0)}),
            row(3, {"right": (4.0, 0.0), "left": (-6.0, 0.0)})]
    s = summarise(rows, 0, EditSettings("guided", 1, range(2), 1),
                  EditSuite(("right", "left"), depth_delta=2.0))
    assert s["move"]["right"]["share_of_asked"] == pytest.approx(0.75)
    assert s["move"]["left"]["share_of_asked"] == pytest.approx(0.5)
    assert s["move"]["right"]["opposite_share_along"] == pytest.approx(-0.5)  # left moves, read along right
    assert s["move"]["all"]["labeler_vs_colour_px"] == 0.0
    assert set(s["by_objects"]) == {"1", "3"}
    assert s["by_objects"]["1"]["move"]["right"]["share_of_asked"] == 1.0
    assert "right" in table(s) and "scenes with 3 object(s)" in table(s)
    assert s["move"]["all"]["objects_kept"] == 0.5 and s["move"]["all"]["faults"] == {
        "edited split": 2}
    assert "moves: edited split 2" in table(s)
    every = s["move"]["all"]
    assert every["objects_kept_strict"] == 0.5 and every["split_rate"] == 0.5
    assert every["outside_change_no_margin"] == pytest.approx(0.02)
    # images, not moves, are resampled: each image's shares average 0.625 (1 and 0.25; 0.5 and
    # 0.75), so every resample does; moving right, one image moved 100%, the other 50%
    assert every["share_of_asked_ci"] == pytest.approx([0.625, 0.625])
    assert s["move"]["right"]["share_of_asked_ci"] == pytest.approx([0.5, 1.0])
    assert "Stricter figures, with 95% bootstrap intervals" in table(s)


def test_an_unknown_direction_is_refused_before_any_generation():
    with pytest.raises(ValueError, match="unknown move direction"):
        evaluate(EditSettings("guided", 1.0, range(2), 1), EditSuite(("left", "sideways")), 2,
                 4.0)


def record_edits(monkeypatch, image: np.ndarray) -> list:
    """Stand-ins for the generation and the edit: every run shows `image`; returns the list
    that collects each Edit asked for."""
    seen = []

    class Run:
        pass

    Run.image = image

    def fake_intervene(pipe, probes, edit, generation, original=None):
        seen.append(edit)
        return Run()

    monkeypatch.setattr(E, "run_generation", lambda *a, **k: [type("S", (), {"latents": 0})()])
    monkeypatch.setattr(E, "decode_latents", lambda pipe, latents: image)
    monkeypatch.setattr(E, "intervene", fake_intervene)
    return seen


def test_a_move_steers_toward_the_object_moved_and_the_others_kept(monkeypatch):
    """The evaluation's move target is the asked scene: the object at its new place, less its
    outline (saliency_shrink), and the other objects where they were."""
    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    evaluate(EditSettings("guided", 0.2, range(2), 1, saliency_shrink=1), EditSuite(("right",)))
    move = seen[0]
    scene = label(before)
    moved = move_mask(scene.largest, 8, 0).map
    inner = np.zeros_like(moved)
    inner[11:17, 13:19] = True  # the moved box less its outline
    assert move.task == "saliency" and np.array_equal(move.target, inner | scene.rest)


def test_a_carried_move_carries_the_object_and_pushes_can_be_left_out(monkeypatch):
    """With a carry step, every move (the random control's too) carries the edited object's
    latent pixels by its shift entering that step; pushes never carry; `pushes=False` runs the
    moves alone."""
    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    scene = label(before)
    summary, _ = evaluate(EditSettings("guided", 0.2, range(1, 3), 1, carry_moves=True,
                                       carry_step=1), EditSuite(("right",)))
    moves = [e for e in seen if e.task == "saliency"]
    pushes = [e for e in seen if e.task == "depth"]
    assert len(moves) == 2 and len(pushes) == 4  # right + random; 2 pushes and 2 controls
    assert all(e.carry_step == 1 and np.array_equal(e.moved_from, scene.largest) for e in moves)
    assert moves[0].shift == (8, 0)
    assert all(e.carry_step is None and e.moved_from is None for e in pushes)
    assert summary["settings"]["carry_step"] == 1
    seen.clear()
    summary, _ = evaluate(EditSettings("guided", 0.2, range(2), 1),
                          EditSuite(("right",), pushes=False))
    assert [e.task for e in seen] == ["saliency", "saliency"] and not summary["depth"]
    assert all(e.carry_step is None for e in seen)


@pytest.mark.parametrize("method, steps, carry", [("guided", range(2, 4), 1),
                                                  ("activation", range(1, 3), 1)])
def test_a_carry_step_the_edit_cannot_take_is_refused_before_any_generation(method, steps,
                                                                              carry):
    with pytest.raises(ValueError, match="carry step"):
        evaluate(EditSettings(method, 0.2, steps, 1, carry_moves=True, carry_step=carry))


def test_pushes_alone_and_a_farther_push_that_keeps_the_outlines(monkeypatch):
    """`moves=False` runs the pushes alone; a push named in `push_outline` (and its random-field
    control) also steers the saliency probes toward the objects where they are, the other push
    steers depth alone."""
    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    scene = label(before)
    summary, examples = evaluate(EditSettings("guided", 0.2, range(2), 1,
                                              push_outline=("farther",)), EditSuite(moves=False))
    assert [e.task for e in seen] == ["depth"] * 4 and not summary["move"] and not examples
    nearer, nearer_control, farther, farther_control = seen
    assert nearer.also == () and nearer_control.also == ()
    for edit in (farther, farther_control):
        (task, outline), = edit.also
        assert task == "saliency" and np.array_equal(outline, scene.mask)
    assert summary["settings"]["push_outline"] == ["farther"]
    assert set(summary["depth"]) == {"nearer", "farther"}



def test_a_report_without_moves_has_no_example_grid(tmp_path):
    """Pushes alone write no examples.png, and remove one an earlier run left there."""
    stale = tmp_path / "examples.png"
    stale.write_bytes(b"old")
    stale.with_suffix(".txt").write_text("old")
    summary = summarise([], 0, EditSettings("guided", 0.2, range(2), 1), EditSuite())
    write_edit_report(tmp_path, summary, [])
    assert (tmp_path / "metrics.json").is_file() and not stale.exists()
    assert not stale.with_suffix(".txt").exists()


def test_another_sampler_gives_every_run_its_own_scheduler(monkeypatch):
    """With `settings.scheduler`, the unedited run and every edit sample with that kind, each
    with a fresh scheduler (a resumed edit must not share a scheduler's state with another run);
    the report names it, and an unknown sampler is refused before any generation."""
    from probe_core.probing import generation as G

    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    generated, edited = [], []
    monkeypatch.setattr(E, "run_generation", lambda pipe, generation, **k: generated.append(
        generation) or [type("S", (), {"latents": 0})()])
    fake = E.intervene

    def recording(pipe, probes, edit, generation, original=None):
        edited.append(generation)
        return fake(pipe, probes, edit, generation, original)

    monkeypatch.setattr(E, "intervene", recording)
    summary, _ = evaluate(EditSettings("guided", 0.2, range(2), 1, scheduler="LMS"),
                          EditSuite(("right",)))
    assert len(generated) == 1 and len(edited) == len(seen) == 6
    assert {g.scheduler for g in generated + edited} == {"LMS"}
    assert summary["settings"]["scheduler"] == "LMS"
    made = []
    monkeypatch.setattr(G, "make_scheduler", lambda pipe, name: made.append(name) or object())
    schedulers = [generated[0].sampler(None) for _ in range(3)]
    assert made == ["LMS"] * 3 and len({id(s) for s in schedulers}) == 3  # one each, never shared
    with pytest.raises(ValueError, match="unknown scheduler"):
        evaluate(EditSettings("guided", 0.2, range(2), 1, scheduler="Heun"))


def test_a_prompt_the_colour_segmenter_cannot_read_is_planned_and_scored_by_the_labeler():
    """A prompt whose words are not all the renderer's colours (any prompt a visitor types):
    the colour scorer steps aside, the labeler still scores the edit."""
    odd = "a large red box and a small large sphere on a gray plain floor"
    scene = SceneLabels.label(BrightLabeler(), odd, scene_image(4))
    assert scene.colour_mask is None
    result = outcome(scene, scene_image(12), plan(EditRequest(8, 0), EditSettings(), scene))
    assert result.scores["colour_shift"] is None
    assert result.scores["shift_x"] == pytest.approx(8)


def test_stricter_figures_see_a_shrunk_or_split_object_and_change_at_its_edge():
    """Kept strictly: every object one piece within ±30% of its area (a move that halves the
    object keeps it by the tracker, not strictly); a split is counted; the outside change with
    no margin counts the pixels next to the object that the lenient figure leaves out."""
    before = scene_image(4, blue_at=20)
    scene = label(before)
    moved = scene_image(12, blue_at=20)
    halved = moved.copy()
    halved[14:18, 12:20] = 90  # the lower half of the moved box is floor again
    split = moved.copy()
    split[10:18, 15:17] = 90  # a floor-coloured cut through the moved box
    rim = moved.copy()
    rim[9, 12:20] = 100  # a line of changed floor right above the moved box
    rows = {name: move_scores(scene, image, 8, "right", 8)
            for name, image in (("moved", moved), ("halved", halved), ("split", split),
                                ("rim", rim))}
    assert rows["moved"]["objects_kept_strict"] and not rows["moved"]["split"]
    assert rows["halved"]["objects_kept"] and not rows["halved"]["objects_kept_strict"]
    assert rows["split"]["split"] and not rows["split"]["objects_kept_strict"]
    assert rows["rim"]["outside_change"] == rows["moved"]["outside_change"] == 0.0
    assert rows["rim"]["outside_change_no_margin"] > 0.0


def test_a_push_reports_how_far_it_went_as_a_share_of_the_ask():
    before = scene_image(4)
    darker = before.copy()
    darker[10:18, 4:12] = (110, 15, 12)  # the box, half as bright: farther for this labeler
    scene = label(before)
    edit_plan = plan(EditRequest(depth_push=-2.0, objects="largest"), EditSettings(), scene)
    row = push_row(outcome(scene, darker, edit_plan), -2.0)
    assert row["as_asked"] and row["magnitude"] == pytest.approx(row["depth_change"] / -2.0)
    assert row["magnitude"] > 0
