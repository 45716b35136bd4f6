"""Every model family at real size with random weights, as ratios in one run (a GPU bench).

    python bench/gpu_families.py --out $OUT/gpu_families.json      # on the lent GPU, < 8 min
    python bench/gpu_families.py --small --device cpu --steps 2 --runs 1 --out /tmp/f.json

Per family (SD 2.x v-prediction, SDXL, PixArt, SD3, FLUX): the published denoiser and VAE
configurations with random weights built on the device (`family_configs.py`; no downloads), at
the family's native size, float16 on CUDA (bfloat16 for FLUX), 4 steps. Timed, medians of
--runs interleaved rounds after a warm-up:

  stock     the stock pipeline call, output_type="latent"
  loop      probe_core's denoise, nothing captured
  probed    denoise capturing up to 8 layers spread over the denoiser and reading both random
            probes of each on the device every step (what the app does)
  readout   one step's readout of those layers alone
  preview   the linear latent->RGB map and a random-weight TAESD of the family's latent channels
            on one step's x0, alone

Printed per family: stock and probed step times, readout and preview costs as shares of a
step, peak memory, and whether our loop's latents equal the stock call's. Targets: readout
<= 5% of a step; probed <= stock; a preview <= 10% of a step. Results go to --out (never into
the checkout unless asked), rewritten after each family; --budget stops before a family that
would not fit.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpu_check_parts import Bench  # noqa: E402

from probe_core.families import family_of  # noqa: E402
from probe_core.probing.denoise import DenoiseSettings, denoise  # noqa: E402
from probe_core.probing.hooks import self_attention_layers  # noqa: E402
from probe_core.probing.preview import LATENT_RGB, LinearPreview  # noqa: E402
from probe_core.probing.probes import ProbeSettings, random_probe_set  # noqa: E402
from probe_core.sd.random_pipes import FAMILY_NAMES, IMAGE_SIZE, random_pipeline  # noqa: E402
from probe_core.serve.runs import StepTokens  # noqa: E402

PROMPT = "a red sphere on a gray floor"
GUIDANCE = {"sd2-v": 7.5, "sdxl": 5.0, "pixart": 4.5, "sd3": 7.0, "flux": 0.0}
MAX_LAYERS = 8


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--families", default=",".join(FAMILY_NAMES))
    p.add_argument("--small", action="store_true", help="tiny random models (checks the script)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--budget", type=float, default=450.0, help="seconds for the whole run")
    p.add_argument("--size", type=int, help="pixels a side instead of the native size (a "
                                            "real-size model at a small size checks it on CPU)")
    default = os.path.join(os.environ["OUT"], "gpu_families.json") if "OUT" in os.environ else None
    p.add_argument("--out", default=default, required=default is None,
                   help="results JSON (default $OUT/gpu_families.json)")
    return p.parse_args()


def build(name: str, args):
    """(pipeline on the device, image side): real size, or tiny with --small."""
    cuda = str(args.device).startswith("cuda")
    dtype = (torch.bfloat16 if name == "flux" else torch.float16) if cuda else torch.float32
    if args.small:
        return random_pipeline(name).to(args.device, dtype), IMAGE_SIZE
    from family_configs import real_pipeline

    pipe, size = real_pipeline(name, args.device, dtype)
    return pipe, args.size or size


def spread(layers: list[str], n: int = MAX_LAYERS) -> list[str]:
    """Up to n layers evenly spaced over the forward order."""
    if len(layers) <= n:
        return layers
    return [layers[round(i * (len(layers) - 1) / (n - 1))] for i in range(n)]


class FamilyRun:
    """One family's pipeline, its probed layers and random probes, and the timed cases."""

    def __init__(self, name: str, pipe, size: int, steps: int):
        self.name, self.pipe, self.size, self.steps = name, pipe, size, steps
        self.family = family_of(pipe)
        denoiser = self.family.denoiser(pipe)
        self.layers = spread(self_attention_layers(denoiser))
        self.probes = random_probe_set(denoiser, ProbeSettings(
            name, type(pipe.scheduler).__name__, steps, size, GUIDANCE[name], self.layers))
        self.settings = DenoiseSettings(steps, GUIDANCE[name], height=size, width=size,
                                        decode_x0=False)
        self.probed_settings = replace(self.settings, capture_layers=self.layers)

    def generator(self):
        return torch.Generator().manual_seed(0)

    def stock(self):
        extra = {"use_resolution_binning": False} if self.name == "pixart" else {}
        return self.pipe(PROMPT, num_inference_steps=self.steps, height=self.size,
                         width=self.size, guidance_scale=GUIDANCE[self.name],
                         output_type="latent", generator=self.generator(), **extra).images

    def scheduler(self):
        """A scheduler no run has set up, as the app gives every run."""
        return type(self.pipe.scheduler).from_config(self.pipe.scheduler.config)

    def loop(self):
        *_, last = denoise(self.pipe, PROMPT, self.settings, self.generator(),
                           scheduler=self.scheduler())
        return self.family.from_grid(last.latents)

    def probed(self):
        kept = [StepTokens(self.probes.token_outputs(st.index, st.activations))
                for st in denoise(self.pipe, PROMPT, self.probed_settings, self.generator(),
                                  scheduler=self.scheduler())]
        return kept

    def one_step(self):
        return next(iter(denoise(self.pipe, PROMPT, self.probed_settings, self.generator())))

    def previews(self, x0: torch.Tensor) -> dict:
        """The linear map (the family's published one when its channels match) and a
        random-weight TAESD of the family's latent channels, each a callable on x0."""
        from diffusers import AutoencoderTiny

        channels = x0.shape[1]
        factors, bias = next(((f, b) for f, b in LATENT_RGB.values() if len(f) == channels),
                             ([[0.1] * 3] * channels, [0.0] * 3))
        linear = LinearPreview(factors, bias)
        torch.manual_seed(0)
        tiny = AutoencoderTiny(latent_channels=channels).to(x0.device, x0.dtype).eval()

        def taesd():
            with torch.no_grad():
                return tiny.decode(self.family.vae_input(self.pipe, x0), return_dict=False)[0]

        return {"preview_linear": lambda: linear.rgb(x0), "preview_taesd": taesd}


def median_seconds(bench: Bench, cases: dict, runs: int) -> dict:
    """Interleaved rounds after one warm-up round: case -> median seconds."""
    seen: dict = {name: [] for name in cases}
    for round_ in range(runs + 1):
        for name, fn in cases.items():
            seconds, _, _ = bench.timed(fn)
            if round_:
                seen[name].append(seconds)
    return {name: statistics.median(values) for name, values in seen.items()}


def measure(bench: Bench, run: FamilyRun, runs: int) -> dict:
    if bench.cuda:
        torch.cuda.reset_peak_memory_stats()
    ours = run.loop()  # first, on a scheduler of its own: the stock call cannot set it up
    equal = bool(torch.equal(run.stock(), ours))
    med = median_seconds(bench, {"stock": run.stock, "loop": run.loop, "probed": run.probed},
                         runs)
    step = run.one_step()
    alone = {"readout": lambda: StepTokens(run.probes.token_outputs(0, step.activations)),
             **run.previews(step.x0_latents)}
    med.update(median_seconds(bench, alone, max(runs, 5)))
    peak = torch.cuda.max_memory_allocated() / 2**30 if bench.cuda else None
    step_s = {k: med[k] / run.steps for k in ("stock", "loop", "probed")}
    return {
        "size": run.size, "steps": run.steps, "layers_probed": len(run.layers),
        "bit_equal_to_stock": equal,
        "step_ms": {k: round(1e3 * v, 3) for k, v in step_s.items()},
        "probed_over_stock": round(step_s["probed"] / step_s["stock"], 4),
        "readout_ms": round(1e3 * med["readout"], 4),
        "readout_share_of_step": round(med["readout"] / step_s["stock"], 4),
        "preview_share_of_step": {k: round(med[k] / step_s["stock"], 4)
                                  for k in ("preview_linear", "preview_taesd")},
        "peak_gib": round(peak, 2) if peak is not None else None,
    }


def report(name: str, r: dict) -> None:
    ok = lambda flag: "met" if flag else "MISSED"  # noqa: E731
    print(f"{name:7s} {r['size']} px: stock {r['step_ms']['stock']:.1f} ms/step, probed "
          f"{r['step_ms']['probed']:.1f} ({r['probed_over_stock']:.3f}x stock: "
          f"{ok(r['probed_over_stock'] <= 1.0)}), readout {100 * r['readout_share_of_step']:.2f}% "
          f"of a step ({ok(r['readout_share_of_step'] <= 0.05)}), previews "
          + ", ".join(f"{k[8:]} {100 * v:.2f}% ({ok(v <= 0.10)})"
                      for k, v in r["preview_share_of_step"].items()) + ", peak "
          f"{r['peak_gib']} GiB, bit-equal to stock: {r['bit_equal_to_stock']}", flush=True)


def main() -> int:
    args = parse_args()
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # no dtype-cast notices for random weights
    bench, started = Bench(args.device), time.perf_counter()
    device_name = torch.cuda.get_device_name() if bench.cuda else "cpu"
    results = {"date": datetime.date.today().isoformat(), "device": device_name,
               "small": args.small, "families": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.families.split(","):
        left = args.budget - (time.perf_counter() - started)
        if left < 45:
            results["families"][name] = {"skipped": f"{left:.0f} s of the budget left"}
            continue

        def one(name=name):
            pipe, size = build(name, args)
            try:
                return measure(bench, FamilyRun(name, pipe, size, args.steps), args.runs)
            finally:
                del pipe
                if bench.cuda:
                    torch.cuda.empty_cache()

        bench.section(name, one)
        results["families"][name] = bench.results[name]
        if "error" not in bench.results[name]:
            report(name, bench.results[name])
        out.write_text(json.dumps(results, indent=2))
    results["seconds"] = round(time.perf_counter() - started, 1)
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out} ({results['seconds']} s)")
    return 0 if all("error" not in r for r in results["families"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
