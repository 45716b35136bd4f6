"""The intervention evaluation: moves in every direction that keep the object in frame, fair depth
scoring, the colour segmenter as a second scorer, crowding."""

import numpy as np
import pytest

from probe_core import settings
from probe_core.edits import evaluate as E
from probe_core.edits.colour_segmenter import (components, parse_caption, segment_colour,
                                               segmentable)
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


def test_captions_parse_into_objects_and_floor():
    objects, floor = parse_caption(CAPTION)
    assert objects == [("large", "red", "box"), ("small", "blue", "sphere")] and floor == "gray"
    assert parse_caption("an empty gray plain floor") == ([], "gray")
    assert segmentable("red", objects, floor)
    assert not segmentable("white", [("large", "white", "box")], "gray")  # no hue
    assert not segmentable("red", objects + [("small", "red", "box")], floor)  # two red things
    assert not segmentable("green", [("large", "green", "box")], "green")  # floor of its colour


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
    assert E.room(mask, "right", 8) == 2 and E.room(mask, "left", 8) == 8
    assert E.room(mask, "left", 100) == 24
    d = E.room(mask, "up-right", 100)
    dx, dy = E.move_vector("up-right", d)
    moved = move_mask(mask, dx, dy).map
    assert moved.sum() == mask.sum()  # nothing cut off
    assert E.move_vector("down-left", 10) == (-7, 7)


def test_the_main_object_is_the_largest_piece():
    mask = np.zeros((16, 16), bool)
    mask[1:3, 1:3] = True
    mask[8:14, 8:14] = True
    obj, others = E.main_object(mask)
    assert obj.sum() == 36 and others.sum() == 4 and components(mask) == 2


def test_a_move_is_scored_by_both_scorers_along_its_direction():
    before, after = scene_image(4, blue_at=20), scene_image(12, blue_at=20)
    scene = E.Scene(BrightLabeler(), CAPTION, before)
    assert scene.n_objects == 2 and scene.colour == "red" and scene.pieces == 2
    target = move_mask(scene.object, 8, 0)
    right = E.move_scores(scene, after, target, "right", 8)
    assert right["labeler_along"] == pytest.approx(8) and right["colour_along"] == pytest.approx(8)
    assert right["kept"] and right["area_ratio"] == 1.0
    left = E.move_scores(scene, after, move_mask(scene.object, -8, 0), "left", 8)
    assert left["labeler_along"] == pytest.approx(-8)
    merged = scene_image(12, blue_at=14)  # the blue sphere now touches the box
    merged[18:24, 14:18] = (30, 60, 230)
    assert not E.move_scores(scene, merged, target, "right", 8)["kept"]


def test_a_move_that_ends_against_another_object_keeps_both_objects_by_the_tracker():
    def image(x0):
        im = scene_image(x0)
        im[17:21, 22:26] = (30, 60, 230)  # the blue sphere, just right of where the box goes
        return im

    scene = E.Scene(BrightLabeler(), CAPTION, image(4))
    assert scene.pieces == 2 and scene.same_object  # the red pixels are the labelled box
    target = move_mask(scene.object, 10, 0)
    row = E.move_scores(scene, image(14), target, "right", 10)
    assert not row["kept"] and row["objects_kept"]  # one blob by the count, two tracked
    assert row["labeler_along"] == pytest.approx(10) and row["colour_along"] == pytest.approx(10)
    copy = image(14)
    copy[10:18, 4:12] = (220, 30, 25)  # a second red box left where the first was
    assert not E.move_scores(scene, copy, target, "right", 10)["objects_kept"]


def test_a_push_that_only_moves_the_object_is_not_called_farther():
    before, after = scene_image(4), scene_image(12)
    scene = E.Scene(BrightLabeler(), CAPTION, before)
    push = E.push_scores(scene, after, -2.0)
    assert push["depth_change"] == pytest.approx(0.0, abs=1e-6) and not push["as_asked"]


def test_the_summary_reports_each_direction_with_its_opposite_and_crowding():
    def row(n, shifts):
        moves = {d: {"direction": d, "distance": 8, "kept": True, "outside_change": 0.01,
                     "objects_kept": n == 1, "faults": [] if n == 1 else ["edited split"],
                     "area_ratio": 1.0, "labeler_shift": s, "colour_shift": s,
                     "labeler_along": s[0] * E.unit(d)[0] + s[1] * E.unit(d)[1],
                     "colour_along": s[0] * E.unit(d)[0] + s[1] * E.unit(d)[1]}
                 for d, s in shifts.items()}
        return {"n_objects": n, "moves": moves, "random_move": {"labeler_shift": (0.0, 0.0)}}

    rows = [row(1, {"right": (8.0, 0.0), "left": (-2.0, 0.0)}),
            row(3, {"right": (4.0, 0.0), "left": (-6.0, 0.0)})]
    s = E.summarise(rows, 0, "guided", {"strength": 1, "steps": range(2), "iterations": 1}, 2.0,
                    ("right", "left"))
    assert s["move"]["right"]["share_of_asked"] == pytest.approx(0.75)
    assert s["move"]["left"]["share_of_asked"] == pytest.approx(0.5)
    assert s["move"]["right"]["opposite_share_along"] == pytest.approx(-0.5)  # left moves, read along right
    assert s["move"]["all"]["labeler_vs_colour_px"] == 0.0
    assert set(s["by_objects"]) == {"1", "3"}
    assert s["by_objects"]["1"]["move"]["right"]["share_of_asked"] == 1.0
    assert "right" in E.table(s) and "scenes with 3 object(s)" in E.table(s)
    assert s["move"]["all"]["objects_kept"] == 0.5 and s["move"]["all"]["faults"] == {
        "edited split": 2}
    assert "moves: edited split 2" in E.table(s)


def test_an_unknown_direction_is_refused_before_any_generation():
    with pytest.raises(ValueError, match="unknown move direction"):
        E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], "guided", 1.0, range(2),
                         1, 2, 4.0, directions=("left", "sideways"))


def record_edits(monkeypatch, image: np.ndarray) -> list:
    """Stand-ins for the generation and the edit: every run shows `image`; returns the list
    that collects each Edit asked for."""
    seen = []

    class Run:
        pass

    Run.image = image

    def fake_intervene(pipe, probes, prompt, seed, edit, original=None, **kw):
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
    E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], "guided", 0.2, range(2), 1,
                     4, 1.0, directions=("right",), progress=False, saliency_shrink=1)
    move = seen[0]
    scene = E.Scene(BrightLabeler(), CAPTION, before)
    moved = move_mask(scene.object, 8, 0).map
    inner = np.zeros_like(moved)
    inner[11:17, 13:19] = True  # the moved box less its outline
    assert move.task == "saliency" and np.array_equal(move.target, inner | scene.others)


def test_a_carried_move_carries_the_object_and_pushes_can_be_left_out(monkeypatch):
    """With a carry step, every move (the random control's too) carries the edited object's
    latent pixels by its shift entering that step; pushes never carry; `pushes=False` runs the
    moves alone."""
    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    scene = E.Scene(BrightLabeler(), CAPTION, before)
    summary, _ = E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], "guided", 0.2,
                                  range(1, 3), 1, 4, 1.0, directions=("right",), progress=False,
                                  carry_step=1)
    moves = [e for e in seen if e.task == "saliency"]
    pushes = [e for e in seen if e.task == "depth"]
    assert len(moves) == 2 and len(pushes) == 4  # right + random; 2 pushes and 2 controls
    assert all(e.carry_step == 1 and np.array_equal(e.moved_from, scene.object) for e in moves)
    assert moves[0].shift == (8, 0)
    assert all(e.carry_step is None and e.moved_from is None for e in pushes)
    assert summary["settings"]["carry_step"] == 1
    seen.clear()
    summary, _ = E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], "guided", 0.2,
                                  range(2), 1, 4, 1.0, directions=("right",), progress=False,
                                  pushes=False)
    assert [e.task for e in seen] == ["saliency", "saliency"] and not summary["depth"]
    assert all(e.carry_step is None for e in seen)


@pytest.mark.parametrize("method, steps, carry", [("guided", range(2, 4), 1),
                                                  ("activation", range(1, 3), 1)])
def test_a_carry_step_the_edit_cannot_take_is_refused_before_any_generation(method, steps,
                                                                              carry):
    with pytest.raises(ValueError, match="carry step"):
        E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], method, 0.2, steps, 1, 4,
                         1.0, carry_step=carry)


def test_pushes_alone_and_a_farther_push_that_keeps_the_outlines(monkeypatch):
    """`moves=False` runs the pushes alone; a push named in `push_outline` (and its random-field
    control) also steers the saliency probes toward the objects where they are, the other push
    steers depth alone."""
    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    scene = E.Scene(BrightLabeler(), CAPTION, before)
    summary, examples = E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], "guided",
                                         0.2, range(2), 1, 4, 1.0, progress=False,
                                         moves=False, push_outline=("farther",))
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
    summary = E.summarise([], 0, "guided", {"strength": 0.2, "steps": range(2), "iterations": 1},
                          2.0)
    E.write_edit_report(tmp_path, summary, [])
    assert (tmp_path / "metrics.json").is_file() and not stale.exists()
    assert not stale.with_suffix(".txt").exists()


def test_another_sampler_gives_every_run_its_own_scheduler(monkeypatch):
    """With `scheduler`, the unedited run and every edit get a fresh scheduler of that kind
    (a resumed edit must not share a scheduler's state with another run); the report names it,
    and an unknown sampler is refused before any generation."""
    before = scene_image(4, blue_at=20)
    seen = record_edits(monkeypatch, before)
    made, generated, edited = [], [], []
    monkeypatch.setattr(E, "make_scheduler",
                        lambda pipe, name: made.append(name) or object())
    monkeypatch.setattr(E, "run_generation", lambda *a, **k: generated.append(k["scheduler"])
                        or [type("S", (), {"latents": 0})()])
    fake = E.intervene

    def recording(*a, **k):
        edited.append(k["scheduler"])
        return fake(*a, **k)

    monkeypatch.setattr(E, "intervene", recording)
    summary, _ = E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], "guided", 0.2,
                                  range(2), 1, 4, 1.0, directions=("right",), progress=False,
                                  scheduler="LMS")
    runs = generated + edited
    assert len(edited) == len(seen) == 6 and set(made) == {"LMS"}
    assert len({id(s) for s in runs}) == len(runs) == len(made)  # one each, never shared
    assert summary["settings"]["scheduler"] == "LMS"
    with pytest.raises(ValueError, match="unknown scheduler"):
        E.evaluate_edits(None, None, BrightLabeler(), [CAPTION], [0], "guided", 0.2, range(2),
                         1, 4, 1.0, scheduler="Heun")
