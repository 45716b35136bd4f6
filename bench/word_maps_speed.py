"""How much per-word cross-attention maps add to a run as the app streams it (target: <= 10%).

    python bench/word_maps_speed.py [--runs 8] [--steps 15] [--out FILE]
                                    # default bench/results/word_maps_speed.json

Embedded model, this CPU. Each run is `stream_run` called as `ProbeDemo.stream` calls it (every
self-attention layer captured and read by the shipped probes, the step preview, the labeler on
the final image), with and without `word_attention=True`, back to back in alternating order,
for each of a few prompts: the bench prints the medians of both and the median of the paired
ratios (with a bootstrap 90% interval), so a machine that slows down between runs shifts both
alike. It also times turning a finished run into per-word maps at image size (`word_tokens` and
`word_maps` on the last step and on the mean over steps), which the display adds once.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from probe_overhead import bootstrap_median_interval, write_results  # noqa: E402

from probe_core.probing.cross_attention import word_maps, word_tokens  # noqa: E402
from probe_core.serve.facade import ProbeDemo  # noqa: E402
from probe_core.probing.generation import Generation  # noqa: E402
from probe_core.serve.runs import RunReaders, stream_run  # noqa: E402

PROMPTS = ["a large red sphere on a gray plain floor",
           "a large red sphere and a small blue box on a gray checkered floor",
           "a small yellow cylinder on a green striped floor"]


def full_run(demo: ProbeDemo, prompt: str, steps: int, word_attention: bool):
    """Seconds for one whole run streamed as the app streams it, and the finished Run."""
    t = time.perf_counter()
    readers = RunReaders(demo.layers if demo.probes else (), demo.site, demo.labeler,
                         demo.probes, demo.probe_steps, demo.preview, word_attention)
    for run in stream_run(demo.pipe, Generation(prompt, 0, steps, demo.default_guidance),
                          readers):
        pass
    return time.perf_counter() - t, run


def display_seconds(demo: ProbeDemo, run) -> float:
    """Seconds to make every word's map at image size, for the last step and over all steps."""
    t = time.perf_counter()
    words = word_tokens(demo.pipe.tokenizer, run.prompt)
    word_maps(run.word_attention[-1], words, demo.image_size)
    word_maps(torch.stack(run.word_attention), words, demo.image_size)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--runs", type=int, default=8, help="rounds; each runs every prompt both ways")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "word_maps_speed.json"),
                   help="where to write the numbers as JSON ('' for nowhere)")
    args = p.parse_args()
    torch.set_num_threads(2)
    demo = ProbeDemo.embedded()
    for prompt in PROMPTS:  # warm-up
        full_run(demo, prompt, args.steps, False)
        full_run(demo, prompt, args.steps, True)
    times: dict[bool, list[float]] = {False: [], True: []}
    ratios, display = [], []
    for i in range(args.runs):
        for j, prompt in enumerate(PROMPTS):
            pair = {}
            for mode in ((False, True) if (i + j) % 2 == 0 else (True, False)):
                pair[mode], run = full_run(demo, prompt, args.steps, mode)
                times[mode].append(pair[mode])
                if mode:
                    display.append(display_seconds(demo, run))
            ratios.append(pair[True] / pair[False])
    plain, mapped = statistics.median(times[False]), statistics.median(times[True])
    ratio = statistics.median(ratios)
    lo, hi = bootstrap_median_interval(ratios)
    shown = statistics.median(display)
    print(f"embedded model, {args.steps} steps, {len(PROMPTS)} prompts x {args.runs} rounds, "
          f"{torch.get_num_threads()} threads; probes: {demo.probes is not None}")
    print("| run | ms per run (median) | ms per step |\n|---|---|---|")
    for name, v in (("plain", plain), ("word attention", mapped)):
        print(f"| {name} | {1000 * v:.1f} | {1000 * v / args.steps:.2f} |")
    print(f"added by word attention: paired ratio {ratio:.3f}x [{lo:.3f}, {hi:.3f}] "
          f"(+{100 * (ratio - 1):.1f}%); ratio of medians {mapped / plain:.3f}x; "
          f"target <= 10%")
    print(f"per-word maps at {demo.image_size}px (last step + mean over steps), once per run: "
          f"{1000 * shown:.2f} ms")
    write_results(args.out, {
        "model": "weights/tiny-scenes", "steps": args.steps, "prompts": PROMPTS,
        "rounds": args.runs, "threads": torch.get_num_threads(),
        "probes": demo.probes is not None,
        "plain_ms_per_run": 1000 * plain, "word_attention_ms_per_run": 1000 * mapped,
        "ratio_of_medians": mapped / plain, "paired_ratio": ratio,
        "paired_ratio_ci90": [lo, hi], "added_percent": 100 * (ratio - 1),
        "word_maps_display_ms": 1000 * shown,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
