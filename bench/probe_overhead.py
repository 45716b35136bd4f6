"""How much probe readout (all layers, both tasks) adds to a denoising step.

    python bench/probe_overhead.py [--model weights/tiny-scenes] [--probes DIR] [--runs 7]

Times the same 15-step loop (probe_core.denoise, no x0 decoding) three ways, interleaved, and
prints medians and ratios: plain; capturing every self-attention layer; capturing and reading
depth and saliency maps from every layer at every step; and the time spent inside
ProbeSet.read itself, which noise on a shared machine blurs less than a difference of loops.
With no probe set on disk it uses
probes of the right shapes filled with random numbers: the cost does not depend on the values.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from probe_core.denoise import denoise  # noqa: E402
from probe_core.hooks import self_attention_layers  # noqa: E402
from probe_core.probes import ProbeSet, ProbeSettings, random_probe_set  # noqa: E402
from probe_core.tiny_ldm import load_pipeline  # noqa: E402

PROMPT = "a large red sphere and a small blue box on a gray checkered floor"


def random_probes(pipe, steps: int) -> ProbeSet:
    layers = self_attention_layers(pipe.unet)
    return random_probe_set(pipe.unet, ProbeSettings(
        "bench", type(pipe.scheduler).__name__, steps, 64, 4.0, layers))


def run(pipe, steps, mode, probes, size, read_times=None):
    """Seconds per step of one 15-step loop; in readout mode, also appends the seconds per step
    spent inside ProbeSet.read to `read_times`."""
    layers = self_attention_layers(pipe.unet)
    reading = 0.0
    t = time.perf_counter()
    for st in denoise(pipe, PROMPT, num_inference_steps=steps, guidance_scale=4.0,
                      generator=torch.Generator().manual_seed(0), decode_x0=False,
                      capture_layers=() if mode == "plain" else layers):
        if mode == "readout":
            r = time.perf_counter()
            maps = probes.read(st.index, st.activations, tuple(st.latents.shape[-2:]), size)
            reading += time.perf_counter() - r
            assert len(maps) == len(layers)
    if read_times is not None and mode == "readout":
        read_times.append(reading / steps)
    return (time.perf_counter() - t) / steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "weights" / "tiny-scenes"))
    p.add_argument("--probes", default=str(ROOT / "weights" / "probes" / "tiny-scenes"))
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--runs", type=int, default=7)
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
    for _ in range(args.runs):
        for mode in times:
            times[mode].append(run(pipe, args.steps, mode, probes, size, read_times))
    med = {m: statistics.median(v) for m, v in times.items()}
    print(f"model {args.model}; probes: {source}; {args.steps} steps, {args.runs} runs, "
          f"{torch.get_num_threads()} threads")
    print("| loop | ms per step (median) | vs plain |\n|---|---|---|")
    for m in times:
        print(f"| {m} | {1000 * med[m]:.2f} | {med[m] / med['plain']:.3f}x |")
    read = statistics.median(read_times)
    print(f"time inside ProbeSet.read: {1000 * read:.2f} ms per step = "
          f"{100 * read / med['plain']:.1f}% of a plain step ({probes.settings.readout} readout)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
