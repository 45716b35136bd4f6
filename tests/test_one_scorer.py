"""One edit pipeline: the app's steering and `intervene-eval` plan an edit the same way and score
it with the same scorer, so a visitor's verdict card shows the numbers the reports count."""

import math

import numpy as np
import pytest

from probe_core import settings
from probe_core.edits.evaluate import ImageEdits, ProbedModel
from probe_core.edits.verdict import verdict
from probe_core.serve.facade import ProbeDemo
from probe_core.serve.steering import SliderValues
from probe_core.world.scenes import scene_captions

SEED = settings.SEEDS.edit_validation[0]


@pytest.fixture(scope="module")
def embedded():
    demo = ProbeDemo.embedded()
    prompt = scene_captions([SEED])[0]
    *_, run = demo.stream(prompt, seed=SEED)
    return demo, run


def same(a, b) -> bool:
    """Equal figures: numbers equal (NaN equal to NaN), tuples and lists item by item."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("sliders", [SliderValues(move_x=12, move_y=-4),
                                     SliderValues(depth_push=-2.0)],
                         ids=["move", "farther push"])
def test_the_app_and_the_evaluation_give_an_edit_the_same_figures(embedded, sliders):
    demo, run = embedded
    *_, view = demo.intervene(run, sliders)
    app = run.edit
    model = ProbedModel(demo.pipe, demo.probes, demo.labeler, run.num_inference_steps,
                        run.guidance_scale)
    evaluated = ImageEdits(model, app.settings, run.prompt, run.seed)(app.request)
    np.testing.assert_array_equal(evaluated.image, app.image)
    assert [p.task for p in evaluated.parts] == [p.task for p in app.parts]
    for mine, theirs in zip(app.parts, evaluated.parts):
        assert mine.scores.keys() == theirs.scores.keys()
        unequal = [k for k in mine.scores if not same(mine.scores[k], theirs.scores[k])]
        assert not unequal, unequal
    assert verdict(app) == verdict(evaluated)
    ok, checks = verdict(app)
    assert checks and all(c.split(": ", 1)[1] in view.score for c in checks)  # the card shows them
