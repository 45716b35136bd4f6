"""Comparing two models' evaluations: layers picked on validation, emergence by step, paired
differences with bootstrap intervals, refusals (other seeds, no per-image scores)."""

import json

import numpy as np
import pytest

from probe_core.cli import main
from probe_core.probing.compare import (compare_evaluations, emergence_step, load_evaluation,
                                        write_comparison)
from probe_core.probing.report import write_per_image

STEPS, N = 6, 40


def _evaluation(folder, curve_by_layer, seeds=range(N), noise=0.02, seed=0):
    """An evaluate-like folder: per-image scores = curve (steps,) per layer + noise."""
    rng = np.random.default_rng(seed)
    layers = [f"block.{k}" for k in range(len(curve_by_layer))]
    scores = {}
    for m in ("dice", "partial"):
        scores[m] = np.stack([np.asarray(c)[:, None] + noise * rng.standard_normal((STEPS, N))
                              for c in curve_by_layer], axis=1)  # (steps, layers, N)
    control = {m: 0.1 * v for m, v in scores.items()}
    write_per_image(folder, list(seeds), scores, control)
    probes = {"layers": layers, "steps": list(range(STEPS)),
              **{m: v.mean(-1).tolist() for m, v in scores.items()}}
    (folder / "metrics.json").write_text(json.dumps(
        {"meta": {"seeds": [min(seeds), max(seeds)]}, "probes": probes}))
    return folder


def _ramp(final, reach):  # rises linearly to `final` at step `reach`, then flat
    return np.minimum(np.arange(STEPS) / reach, 1.0) * final


def test_emergence_is_the_first_step_at_ninety_percent_of_the_last():
    assert emergence_step([0.1, 0.5, 0.85, 0.9, 0.95, 1.0]) == 3
    assert emergence_step([0.0, 0.0, -0.1]) is None


def test_two_models_compared_on_the_same_seeds(tmp_path):
    early = [_ramp(0.5, 5), _ramp(0.8, 2)]  # layer 1 best, emerges at step 2
    late = [_ramp(0.7, 5), _ramp(0.4, 1)]  # layer 0 best, emerges at step 5 (0.9 * 0.7 at 4.5)
    a = _evaluation(tmp_path / "a", early)
    # the validation run says layer 0 for the first model: the compared images must not pick
    a_val = _evaluation(tmp_path / "a-val", [_ramp(0.9, 2), _ramp(0.1, 2)], seeds=range(500, 540))
    b = _evaluation(tmp_path / "b", late, seed=1)
    result = compare_evaluations([load_evaluation("A", a, a_val), load_evaluation("B", b)])
    first, second = result["models"]
    assert first["dice"]["layer"] == "block.0" and first["picked_on"] == [500, 539]
    assert second["dice"]["layer"] == "block.0" and second["picked_on"] is None
    assert first["dice"]["emergence_step"] == 5 and second["partial"]["emergence_step"] == 5
    lo, hi = first["dice"]["last_step_interval"]
    assert lo < first["dice"]["mean"][-1] < hi and hi - lo < 0.05
    assert first["dice"]["control"]["mean"][-1] == pytest.approx(0.05, abs=0.01)
    diff = result["differences"]["A - B"]["dice"]
    assert diff["mean"] == pytest.approx(0.5 - 0.7, abs=0.02)
    assert diff["interval"][0] < diff["mean"] < diff["interval"][1] < 0
    out = write_comparison(result, tmp_path / "cmp")
    assert "| A | saliency Dice | `block.0` |" in (out / "comparison.md").read_text()
    assert (out / "emergence.png").stat().st_size > 5000


def test_other_seeds_or_missing_scores_are_refused(tmp_path, capfd):
    a = _evaluation(tmp_path / "a", [_ramp(0.5, 2)])
    b = _evaluation(tmp_path / "b", [_ramp(0.5, 2)], seeds=range(100, 100 + N))
    with pytest.raises(ValueError, match="different seeds"):
        compare_evaluations([load_evaluation("A", a), load_evaluation("B", b)])
    (b / "per_image.npz").unlink()
    assert main(["compare-evaluations", str(a), str(b), "--out", str(tmp_path / "c")]) == 2
    assert "no per-image" in capfd.readouterr().err
    c = _evaluation(tmp_path / "c", [_ramp(0.6, 3)], seed=2)
    assert main(["compare-evaluations", str(a), str(c), "--names", "UNet,DiT",
                 "--out", str(tmp_path / "out")]) == 0
    assert "UNet - DiT" in (tmp_path / "out" / "comparison.md").read_text()
