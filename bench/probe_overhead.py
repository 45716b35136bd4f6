"""How much probe readout (all layers, both tasks) adds to a denoising step.

    python bench/probe_overhead.py [--model weights/tiny-scenes] [--probes DIR] [--runs 15]
                                   [--out FILE]  # default bench/results/probe_overhead.json

Times the same 15-step loop (probe_core.probing.denoise, no x0 decoding) three ways: plain; capturing
every self-attention layer; capturing and reading as the app does while a run streams (both
probes of every layer on the token grid, kept; the full-resolution maps of the layer shown).
Each run times the three loops back to back (in a rotating order) and divides each
by that run's plain loop, so a machine that slows down between runs shifts all three alike; the
bench prints the median of these paired ratios with a bootstrap 90% interval, alongside the
medians of the raw times. It also prints the time spent reading itself, which noise on a
shared machine blurs less than a difference of loops.
With no probe set on disk it uses
probes of the right shapes filled with random numbers: the cost does not depend on the values.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from probe_core.probing.denoise import DenoiseSettings, denoise
from probe_core.probing.hooks import self_attention_layers
from probe_core.probing.probes import ProbeSet, ProbeSettings, random_probe_set
from probe_core.serve.runs import StepTokens
from probe_core.world.tiny_ldm import load_pipeline

ROOT = Path(__file__).resolve().parents[1]

PROMPT = "a large red sphere and a small blue box on a gray checkered floor"


def random_probes(pipe, steps: int) -> ProbeSet:
    layers = self_attention_layers(pipe.unet)
    return random_probe_set(pipe.unet, ProbeSettings(
        "bench", type(pipe.scheduler).__name__, steps, 64, 4.0, layers))


def run(pipe, steps, mode, probes, size, read_times=None):
    """Seconds per step of one 15-step loop; in readout mode, also appends the seconds per step
    spent reading to `read_times`. Reading is what the app does while a run streams: both
    probes of every layer on the token grid (kept), and the full-resolution maps of one layer
    (the one shown)."""
    layers = self_attention_layers(pipe.unet)
    reading = 0.0
    t = time.perf_counter()
    settings = DenoiseSettings(steps, 4.0, decode_x0=False,
                               capture_layers=() if mode == "plain" else layers)
    for st in denoise(pipe, PROMPT, settings, torch.Generator().manual_seed(0)):
        if mode == "readout":
            r = time.perf_counter()
            kept = StepTokens(probes.token_outputs(st.index, st.activations))
            probes.maps_from_tokens(kept.get(layers[-1]), tuple(st.latents.shape[-2:]), size)
            reading += time.perf_counter() - r
            assert len(kept.layers()) == len(layers)
    if read_times is not None and mode == "readout":
        read_times.append(reading / steps)
    return (time.perf_counter() - t) / steps


def shown(path: str) -> str:
    """A path inside the repository relative to its root (results files stay portable)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return path


def bootstrap_median_interval(values: list[float], level: float = 0.9,
                              resamples: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of `values` (fixed seed: reproducible)."""
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(values, k=len(values)))
                  for _ in range(resamples))
    tail = (1 - level) / 2
    return meds[int(tail * resamples)], meds[int((1 - tail) * resamples) - 1]


def write_results(out: str, results: dict) -> None:
    """The numbers as JSON at `out` ('' for nowhere), and a line saying where."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "weights" / "tiny-scenes"))
    p.add_argument("--probes", default=str(ROOT / "weights" / "probes" / "tiny-scenes"))
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "probe_overhead.json"),
                   help="where to write the numbers as JSON ('' for nowhere)")
    args = p.parse_args()
    torch.set_num_threads(2)
    pipe = load_pipeline(args.model)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    if (Path(args.probes) / "probes.json").exists():
        probes, source = ProbeSet.load(args.probes), args.probes
    else:
        probes, source = random_probes(pipe, args.steps), "random probes (no probe set on disk)"
    times = {"plain": [], "capture": [], "readout": []}
    read_times: list[float] = []
    for mode in times:  # warm-up
        run(pipe, args.steps, mode, probes, size)
    modes = list(times)
    for i in range(args.runs):
        for mode in modes[i % 3:] + modes[:i % 3]:  # rotate so no loop always runs first
            times[mode].append(run(pipe, args.steps, mode, probes, size, read_times))
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"model {args.model}; probes: {source}; {args.steps} steps, {args.runs} runs, "
          f"{torch.get_num_threads()} threads")
    print("| loop | ms per step (median) | ratio of medians | paired ratio: median [90% CI] |\n"
          "|---|---|---|---|")
    results = {"model": shown(args.model), "probes": shown(source),
               "probe_readout": probes.settings.readout,
               "steps": args.steps, "runs": args.runs, "threads": torch.get_num_threads()}
    for m in times:
        ratios = [t / p for t, p in zip(times[m], times["plain"])]
        lo, hi = bootstrap_median_interval(ratios)
        print(f"| {m} | {1000 * med[m]:.2f} | {med[m] / med['plain']:.3f}x | "
              f"{statistics.median(ratios):.3f}x [{lo:.3f}, {hi:.3f}] |")
        results[m] = {"ms_per_step": 1000 * med[m], "ratio_of_medians": med[m] / med["plain"],
                      "paired_ratio": statistics.median(ratios), "paired_ratio_ci90": [lo, hi]}
    read = statistics.median(read_times)
    results["read_ms_per_step"] = 1000 * read
    print(f"time reading (every layer's token outputs kept, one layer's maps): "
          f"{1000 * read:.2f} ms per step = "
          f"{100 * read / med['plain']:.1f}% of a plain step ({probes.settings.readout} readout)")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
