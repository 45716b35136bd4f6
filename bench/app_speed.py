"""Server-side timings of the app's requests and of interventions, embedded model, this CPU.

    python bench/app_speed.py            # prints a Markdown table; writes bench/results/app_speed.json

Measured through the same facade the app calls (probe_core.serve.facade.ProbeDemo), median of several
runs: the first streamed step (with its probe overlays), a full 15-step run with overlays,
scrubbing a step, switching the layer, the pixel inspector, a playback frame, probing a held-out
render, an intervention re-run from its first edited step (slider release to final edited image,
scored), and a full generation with the default edit vs. without.
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from probe_core.serve.facade import ProbeDemo
from probe_core.edits.edit_settings import DEFAULT_METHOD, METHOD_DEFAULTS
from probe_core.edits.plan import plan
from probe_core.edits.request import EditRequest
from probe_core.edits.run import intervene
from probe_core.probing.generation import Generation
from probe_core.serve.steering import SliderValues
from probe_core.serve.ui.example import emergence_frame
from probe_core.world.scenes import render_scene, sample_scene

ROOT = Path(__file__).resolve().parents[1]

PROMPT = "a large red sphere and a small blue box on a gray checkered floor"
RUNS = 5


def median_time(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def edit_costs(demo: ProbeDemo, run) -> dict:
    """A full generation with the default edit vs without, same settings, no display work; the
    default edit from the cached run; the same edit at steps 4-7, in full and from the cache."""
    pipe, n, g = demo.pipe, demo.probes.settings.num_inference_steps, demo.probes.settings.guidance_scale
    generation = Generation(PROMPT, 1, n, g)
    scene, move = demo.scene(run), EditRequest(move_x=16)
    d = METHOD_DEFAULTS[DEFAULT_METHOD].for_layers(demo.layers)
    edit = plan(move, d, scene).edit
    unedited = plan(move, replace(d, strength=0.0, carry_moves=False), scene).edit
    plain = median_time(lambda: intervene(pipe, demo.probes, unedited, generation))
    edited = median_time(lambda: intervene(pipe, demo.probes, edit, generation))
    cached = median_time(lambda: intervene(pipe, demo.probes, edit, generation, run.steps))
    # the same edit applied at steps 4-7: a re-run from the cache skips steps 0-3
    late = plan(move, replace(d, steps=range(4, 8), carry_moves=False), scene).edit
    late_full = median_time(lambda: intervene(pipe, demo.probes, late, generation))
    late_cached = median_time(lambda: intervene(pipe, demo.probes, late, generation, run.steps))
    return dict(generation_plain_s=plain, generation_default_edit_s=edited,
                default_edit_from_cache_s=cached, late_edit_full_s=late_full,
                late_edit_from_cache_s=late_cached, edit_cost_ratio=edited / plain)


def print_table(r: dict, n: int) -> None:
    """The results as the speed table in docs/speed.md (n: the run's steps)."""
    print("| measure | value | target |\n|---|---|---|")
    print(f"| first streamed step with overlays | {r['first_step_s']:.3f} s | <= 1 s |")
    print(f"| full {n}-step run with overlays, filmstrip, emergence curves | "
          f"{r['full_run_s']:.3f} s | <= 2 s |")
    print(f"| scrub a step (cached) | {r['scrub_step_ms']:.1f} ms | <= 100 ms |")
    print(f"| switch layer (maps from the kept probe outputs) | {r['switch_layer_ms']:.1f} ms "
          "| <= 100 ms |")
    print(f"| pixel inspector: a click to its figure | {r['pixel_inspector_ms']:.0f} ms "
          "| <= 100 ms |")
    print(f"| a playback frame (a step's view) | {r['play_frame_ms']:.1f} ms | <= 100 ms |")
    print(f"| probe a 64x64 held-out render through {n} steps | "
          f"{r['probe_render_s']:.3f} s | <= 2 s |")
    print(f"| probe an uploaded 64x64 image (no prompt) through {n} steps | "
          f"{r['probe_upload_s']:.3f} s | <= 2 s |")
    print(f"| a word's attention map and compare view: one step / all steps | "
          f"{r['word_view_ms']:.0f} ms / {r['word_view_all_steps_ms']:.0f} ms | "
          "<= 100 ms |")
    print(f"| compare view (two runs at one step) | {r['compare_ms']:.0f} ms | "
          "<= 100 ms |")
    print(f"| intervention: slider release to scored edited image | "
          f"{r['intervene_release_s']:.3f} s | <= 3 s |")
    print(f"| generation with the default edit (`{DEFAULT_METHOD}`) / without | "
          f"{r['generation_default_edit_s']:.3f} s / {r['generation_plain_s']:.3f} s = "
          f"{r['edit_cost_ratio']:.2f}x | <= 3x |")
    first = min(METHOD_DEFAULTS[DEFAULT_METHOD].steps)
    print(f"| the same edit re-run from the cache (steps before {first}, 0-based) | "
          f"{r['default_edit_from_cache_s']:.3f} s | faster than the full edited run |")
    print(f"| an edit at steps 4-7 (0-based): full re-run / from the cache | "
          f"{r['late_edit_full_s']:.3f} s / {r['late_edit_from_cache_s']:.3f} s | "
          "faster from cache |")


def main() -> int:
    torch.set_num_threads(2)
    demo = ProbeDemo.embedded()
    if demo.probes is None:
        raise SystemExit(f"needs the shipped probes: {demo.notice}")

    # as the page runs it: word attention kept
    def first_step():
        for run in demo.stream(PROMPT, seed=1, word_attention=True):
            demo.view(run, 0, "best")
            return

    def full_run():
        for run in demo.stream(PROMPT, seed=1, word_attention=True):
            demo.view(run, len(run.steps) - 1, "best")
        demo.filmstrip(run, "best")
        emergence_frame(demo.emergence(run, "best"))  # the page's emergence curves
        return run

    full_run()  # warm-up
    results = {"first_step_s": median_time(first_step), "full_run_s": median_time(full_run)}
    run = full_run()
    results["scrub_step_ms"] = 1000 * median_time(lambda: demo.view(run, 3, "best"), 20)

    def switch_layer():
        run.maps.clear()  # a layer not seen yet: maps made from the kept probe outputs
        for layer in demo.layers[:1]:
            demo.view(run, 7, layer)

    results["switch_layer_ms"] = 1000 * median_time(switch_layer, 20)
    results["pixel_inspector_ms"] = 1000 * median_time(
        lambda: demo.inspect_pixel(run, 30, 40, "best"), 10)
    results["play_frame_ms"] = 1000 * median_time(lambda: demo.view(run, 5, "best"), 20)
    results["probe_render_s"] = median_time(lambda: demo.probe_image(render_seed=7_100_003))
    upload = render_scene(sample_scene(7_100_011), demo.image_size).image  # as an upload
    results["probe_upload_s"] = median_time(lambda: demo.probe_image(upload, ""))
    results["word_view_ms"] = 1000 * median_time(lambda: demo.word_view(run, "sphere", 5), 10)
    results["word_view_all_steps_ms"] = 1000 * median_time(
        lambda: demo.word_view(run, "sphere", None), 10)
    results["compare_ms"] = 1000 * median_time(lambda: demo.compare(run, run, 5), 10)
    results["intervene_release_s"] = median_time(
        lambda: list(demo.intervene(run, SliderValues(move_x=16, method=DEFAULT_METHOD))))

    results.update(edit_costs(demo, run), default_method=DEFAULT_METHOD,
                   threads=torch.get_num_threads(), runs=RUNS)
    n = demo.probes.settings.num_inference_steps

    out = ROOT / "bench" / "results" / "app_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results, n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
