"""bench/gpu_families.py runs (tiny random models on CPU, so it cannot rot unseen), and its
real-size configurations are the published models' (counted on the meta device, no memory)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_family_bench_prints_every_family_and_writes_only_where_told(tmp_path):
    out = tmp_path / "families.json"
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_families.py"), "--small", "--device", "cpu",
         "--steps", "2", "--runs", "1", "--families", "sd2-v,sdxl,pixart,sd3,flux",
         "--out", str(out)],
        env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
        cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads(out.read_text())
    for name in ("sd2-v", "sdxl", "pixart", "sd3", "flux"):
        r = results["families"][name]
        assert r["bit_equal_to_stock"], name
        assert r["step_ms"]["stock"] > 0 and r["readout_share_of_step"] > 0
        assert any(line.startswith(name) and "readout" in line and "x stock" in line
                   for line in done.stdout.splitlines()), done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["families.json"]
    without = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_families.py"), "--small"],
                             env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert without.returncode != 0 and "--out" in without.stderr  # no default path but $OUT


@pytest.mark.parametrize("config, billions", [
    ("SD2_UNET", 0.866), ("SDXL_UNET", 2.567), ("PIXART", 0.611), ("SD3", 2.028),
    ("FLUX", 11.891)])
def test_real_size_configurations_have_the_published_sizes(config, billions):
    import diffusers
    from accelerate import init_empty_weights

    sys.path.insert(0, str(ROOT / "bench"))
    import family_configs

    cls = {"SD2_UNET": diffusers.UNet2DConditionModel, "SDXL_UNET": diffusers.UNet2DConditionModel,
           "PIXART": diffusers.PixArtTransformer2DModel, "SD3": diffusers.SD3Transformer2DModel,
           "FLUX": diffusers.FluxTransformer2DModel}[config]
    with init_empty_weights():
        model = cls(**getattr(family_configs, config))
    count = sum(p.numel() for p in model.parameters()) / 1e9
    assert abs(count - billions) < 0.01 * billions, count
