"""The command line end to end on a tiny untrained pipeline: labeler, probes, evaluation."""

import argparse
import json

import numpy as np
import pytest
from diffusers.utils import logging as diffusers_logging

from probe_core.cli import main
from probe_core.cli.common import parse_range
from probe_core.cli.edits import parse_directions, parse_pushes
from probe_core.world.tiny_ldm import save_pipeline

# diffusers' log handler keeps the stderr it finds when first configured: configure it now, at
# collection, not inside a test whose captured stderr is closed when that test ends (a later
# warning would then print a logging error's traceback)
diffusers_logging.get_logger("diffusers")


def test_parse_range():
    assert parse_range("3-5") == range(3, 6) and parse_range("7") == range(7, 8)
    with pytest.raises(argparse.ArgumentTypeError, match="seed range"):
        parse_range("a-b")


def test_move_directions_are_checked_before_anything_runs(capfd):
    assert parse_directions("left, up-right") == ("left", "up-right")
    for bad in ("sideways", "left,sideways", " , "):
        with pytest.raises(argparse.ArgumentTypeError, match="directions are right"):
            parse_directions(bad)
    with pytest.raises(SystemExit):
        main(["intervene-eval", "--seeds", "0-1", "--directions", "left,sideways"])
    err = capfd.readouterr().err
    assert "unknown move direction(s) sideways" in err and "Traceback" not in err


def test_push_names_and_a_run_with_nothing_to_do_are_refused_before_anything_runs(capfd):
    assert parse_pushes("farther") == ("farther",) and parse_pushes("none") == ()
    assert parse_pushes("nearer, farther") == ("nearer", "farther")
    with pytest.raises(argparse.ArgumentTypeError, match="nearer, farther or none"):
        parse_pushes("further")
    with pytest.raises(SystemExit):
        main(["intervene-eval", "--seeds", "0-1", "--moves-only", "--pushes-only"])
    err = capfd.readouterr().err
    assert "not allowed with argument --moves-only" in err and "Traceback" not in err
    # latent_shift only moves: pushes alone would generate every image for an empty report
    assert main(["intervene-eval", "--seeds", "0-1", "--method", "latent_shift",
                 "--pushes-only"]) == 2
    err = capfd.readouterr().err
    assert "leave nothing to run" in err and "Traceback" not in err


@pytest.mark.slow
def test_labeler_probes_and_evaluation_end_to_end(tiny_pipe, tmp_path, capsys):
    model = tmp_path / "tiny-model"
    save_pipeline(tiny_pipe, model)
    lab, probes, report = tmp_path / "lab", tmp_path / "probes", tmp_path / "report"
    assert main(["train-labeler", "--model", str(model), "--out", str(lab), "--n-images", "16",
                 "--steps", "2", "--n-eval", "4"]) == 0
    assert json.loads((lab / "labeler.json").read_text())["held_out"]["renders"]["n"] == 4
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a large red sphere on a gray plain floor\n\na small blue box on a "
                       "green striped floor\n")
    assert main(["train-probes", "--model", str(model), "--labeler", str(lab), "--seeds", "0-5",
                 "--prompts", str(prompts), "--steps", "2", "--out", str(probes)]) == 0
    assert (probes / "probes.safetensors").exists()
    assert (probes / "control" / "probes.safetensors").exists()
    # the edit control: the same set's settings, fitted to shuffled labels
    assert main(["shuffled-probes", "--model", str(model), "--labeler", str(lab), "--probes",
                 str(probes), "--seeds", "0-5", "--prompts", str(prompts)]) == 0
    from probe_core.probing.probes import ProbeSet

    trained, shuffled = ProbeSet.load(probes), ProbeSet.load(probes / "shuffled")
    assert shuffled.settings == trained.settings and "shuffled" in shuffled.extra["control"]
    assert set(shuffled.weights) == set(trained.weights)
    assert any(not (shuffled.weights[k] == trained.weights[k]).all() for k in trained.weights)
    assert main(["evaluate", "--model", str(model), "--labeler", str(lab), "--probes",
                 str(probes), "--seeds", "6-8", "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["meta"]["n_test"] == 3
    per_image = np.load(report / "per_image.npz")  # every image's scores, for intervals
    assert list(per_image["seeds"]) == [6, 7, 8]
    assert per_image["probes_dice"].shape == per_image["control_dice"].shape == (
        2, len(metrics["probes"]["layers"]), 3)
    np.testing.assert_allclose(per_image["probes_dice"].mean(-1), metrics["probes"]["dice"],
                               atol=1e-6)
    assert len(metrics["probes"]["dice"]) == 2 and metrics["control"] is not None
    assert len(metrics["labeler_on_x0"]["dice"]) == 2
    assert (report / "probe_scores.png").stat().st_size > 1000
    assert "| step |" in (report / "table.md").read_text()
    # probes made for 2 steps refuse a model saved under another name
    other = tmp_path / "other-model"
    save_pipeline(tiny_pipe, other)
    capsys.readouterr()
    assert main(["evaluate", "--model", str(other), "--labeler", str(lab), "--probes",
                 str(probes), "--seeds", "6-7", "--out", str(report)]) == 2
    ours = [line for line in capsys.readouterr().err.splitlines()
            if line.startswith("scene-probe ")]
    assert len(ours) == 1 and "made for other settings" in ours[0] and "model" in ours[0]


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--probes", "no/such/probes", "--seeds", "0-1", "--out", "x"],
     "no probe set at"),
    (["intervene-eval", "--probes", "no/such/probes", "--seeds", "0-1"], "no probe set at"),
    (["train-probes", "--model", "nobody/no-such-model", "--seeds", "0-1"], "hf download"),
    (["evaluate", "--model", "/no/such/folder", "--seeds", "0-1"], "no folder"),
    (["import-paper-probes", "no-such.zip"], "does not exist"),
])
def test_expected_failures_print_one_line_and_exit_non_zero(argv, message, capfd):
    assert main(argv) == 2
    err = capfd.readouterr().err
    ours = [line for line in err.splitlines() if line.startswith("scene-probe ")]
    assert len(ours) == 1 and message in ours[0] and "Traceback" not in err


def test_incomplete_paper_probes_print_one_line(tmp_path, capfd):
    (tmp_path / "src" / "at_step_0").mkdir(parents=True)
    assert main(["import-paper-probes", str(tmp_path / "src"), "--out", str(tmp_path / "o")]) == 2
    err = capfd.readouterr().err
    assert "probe files missing" in err and err.count("\n") == 1


def test_the_command_line_entry_point_prints_no_traceback(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "probe_core", "evaluate", "--probes",
                           str(tmp_path / "none"), "--seeds", "0-1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "no probe set at" in done.stderr
