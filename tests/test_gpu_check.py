"""bench/gpu_check.py runs (on a tiny SD-shaped model on CPU, so it cannot rot unseen)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_script_runs_and_prints_every_case():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--small", "--device", "cpu",
         "--runs", "1", "--steps", "3"],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "LMSDiscreteScheduler" in lines[0] and "3 steps" in lines[0]
    for case in ("stock", "loop", "probing", "edit"):
        assert any(line.startswith(case) and "x stock" in line for line in lines), done.stdout
