"""bench/gpu_check.py runs (on a tiny SD-shaped model on CPU, so it cannot rot unseen)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _printed_against_stock(stdout: str, cases) -> None:
    """Each case ran: its timing line names it and its cost as a multiple of the stock call
    (a case that failed prints FAILED instead, and the script still exits 0)."""
    lines = stdout.splitlines()
    for case in cases:
        assert any(line.split()[:1] == [case] and "x stock" in line for line in lines), stdout


@pytest.mark.slow
def test_gpu_check_script_runs_and_prints_every_case(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--small", "--device", "cpu",
         "--runs", "1", "--steps", "3", "--out", str(tmp_path / "gpu_check.json")],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "LMSDiscreteScheduler" in lines[0] and "3 steps" in lines[0]
    _printed_against_stock(done.stdout, ("stock", "loop", "loop_graph", "probing",
                                         "preview_linear", "app_stream", "edit_activation",
                                         "edit_guided", "edit_shift"))
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    assert results["equality"]["loop"]["bit_equal"]  # our loop equals the stock call
    assert {"generate", "scrub", "switch_layer", "intervene", "export"} <= set(results["facade"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_check_at_full_size_in_float16(tmp_path):
    """SD v1.x's architecture at 512x512 in float16 on the GPU: probing and the paper's edit
    run, and their costs are printed against the stock call."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--runs", "1",
                           "--out", str(tmp_path / "gpu_check.json")],
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "512x512" in done.stdout and "float16" in done.stdout
    setup = done.stdout.splitlines()[0]  # what ran: the model's size, the device and dtype
    assert "512x512" in setup and "cuda float16" in setup, setup
    _printed_against_stock(done.stdout, ("stock", "probing", "edit_activation"))
    timings = json.loads((tmp_path / "gpu_check.json").read_text())["timings"]
    for case in ("probing", "edit_activation"):
        assert timings[case]["seconds"] > 0 and timings[case]["x_stock"] > 0, timings[case]
