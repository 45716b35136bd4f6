"""GPU check: every cost of the probing app at Stable Diffusion size, as ratios in one run.

    python bench/gpu_check.py                    # SD v1.x's architecture, random weights, 512x512
    python bench/gpu_check.py --model CompVis/stable-diffusion-v1-4   # the real one, if cached
    python bench/gpu_check.py --small --device cpu --steps 3 --runs 1  # checks the script on CPU

Without --model it builds SD v1.x's UNet, VAE and text encoder from their configs with random
weights (no download: a step's cost does not depend on the weights) and runs the paper's setting
(LMS, 15 steps, 512x512, guidance 7.5) on CUDA in float16 when present. Probes of the right shapes
hold random numbers. Timed cases (medians of --runs rounds, interleaved, after a warm-up round):

  stock            StableDiffusionPipeline.__call__, output_type="latent" (no decode)
  loop             probe_core's denoise, eager, nothing captured
  loop_graph       the same, unedited UNet calls replayed from a CUDA graph (the default on CUDA)
  capture          eager, all 16 self-attention layers captured
  capture_graph    graph, all 16 captured inside the graph
  probing          capture_graph + both probes of all 16 layers read on the device every step,
                   token outputs copied to the host without waiting (what the app keeps)
  probing_old      eager capture + full-resolution maps of all 16 layers every step (before)
  preview_decode   loop_graph + the VAE decode of x0 every step
  preview_linear   loop_graph + the linear latent->RGB preview every step
  preview_taesd    loop_graph + TAESD every step (only when TAESD is in the local cache)
  app_stream       what the app runs: probing + preview + resume points kept
  edit_activation  the paper's edit at its defaults (Adam, 32 iterations, steps 0-2, 16 layers)
  edit_guided      guided edit (steps 0-3, its default layers)
  edit_shift       latent shift (the positive control)

It also prints the final latents' difference from stock (eager and graph), host synchronisations
per run (torch.cuda sync debug mode), the facade path (generate -> scrub -> switch layer ->
intervene -> export, timed), peak GPU memory per case, and with --embedded the embedded model on
the device against the CPU. Everything goes to bench/results/gpu_check.json (--out).
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from gpu_check_parts import (PROMPT, Bench, Check, embedded, facade, readout,  # noqa: E402
                             sd_shaped_pipeline, syncs)

from probe_core.edits.edit_settings import METHOD_DEFAULTS  # noqa: E402
from probe_core.edits.plan import plan  # noqa: E402
from probe_core.edits.request import EditRequest  # noqa: E402
from probe_core.edits.run import intervene  # noqa: E402
from probe_core.edits.scene import SceneLabels  # noqa: E402
from probe_core.models import PAPER, load_model, pick_device  # noqa: E402
from probe_core.probing.collect import settings_for  # noqa: E402
from probe_core.probing.cuda_graph import graph_report  # noqa: E402
from probe_core.probing.denoise import DenoiseHooks, DenoiseSettings, denoise  # noqa: E402
from probe_core.probing.generation import Generation  # noqa: E402
from probe_core.probing.hooks import self_attention_layers  # noqa: E402
from probe_core.probing.preview import (SD_V1_LATENT_RGB, DecodePreview,  # noqa: E402
                                        LinearPreview, choose_preview)
from probe_core.probing.probes import random_probe_set  # noqa: E402
from probe_core.serve.runs import RunReaders, StepTokens, stream_run  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="hub id or folder (default: SD v1.x shape, random weights)")
    p.add_argument("--small", action="store_true", help="tiny SD-shaped model (script check)")
    p.add_argument("--device")
    p.add_argument("--steps", type=int, default=PAPER["num_inference_steps"])
    p.add_argument("--guidance", type=float, default=PAPER["guidance_scale"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--embedded", action="store_true",
                   help="also run the embedded model on the device against the CPU")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "gpu_check.json")
    return p.parse_args()


def set_up(args: argparse.Namespace, bench: Bench, device: str, dtype: torch.dtype,
           t0: float) -> Check:
    """Build the model and its random probes; record and print the setup."""
    pipe = load_model(args.model, device=device, torch_dtype=dtype)[0] if args.model else \
        sd_shaped_pipeline(args.small, device, dtype)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    what = args.model or ("SD v1.x shape, random weights" if not args.small else "tiny SD shape")
    R = bench.results
    R["setup"] = {
        "date": datetime.date.today().isoformat(), "model": what, "size": size,
        "steps": args.steps, "guidance": args.guidance,
        "scheduler": type(pipe.scheduler).__name__, "device": str(device),
        "device_name": torch.cuda.get_device_name() if bench.cuda else platform.processor(),
        "dtype": str(dtype).replace("torch.", ""), "runs": args.runs,
        "torch": torch.__version__, "build_s": round(time.perf_counter() - t0, 1)}
    print(f"{what}: {size}x{size}, {args.steps} steps, guidance {args.guidance}, "
          f"{type(pipe.scheduler).__name__}, {device} {R['setup']['dtype']}, "
          f"median of {args.runs}", flush=True)

    layers = self_attention_layers(pipe.unet)
    settings = settings_for(pipe, "bench", args.steps, args.guidance)
    probes = random_probe_set(pipe.unet, settings)
    kw = dict(num_inference_steps=args.steps, guidance_scale=args.guidance)
    return Check(args, bench, pipe, device, what, size, layers, probes, kw)


def loop_case(check: Check, graph, capture=(), per_step=None, preview=None):
    """A case: probe_core's denoise from the same seed, per_step(st) after each step."""
    def run():
        last = None
        settings = DenoiseSettings(**check.kw, capture_layers=capture,
                                   decode_x0=preview is not None, cuda_graph=graph)
        for st in denoise(check.pipe, PROMPT, settings, check.gen(),
                          hooks=DenoiseHooks(preview=preview)):
            if per_step is not None:
                per_step(st)
            last = st
        return last.latents
    return run


def edit_case(check: Check, method: str):
    """A case: an edited run of `method` at its defaults (a square moved right by an eighth of
    the image), its steps inside the run."""
    args, probes, pipe, size = check.args, check.probes, check.pipe, check.size
    mask = np.zeros((size, size), bool)
    mask[size // 4: size // 2, size // 2: 3 * size // 4] = True
    scene = SceneLabels(np.zeros((size, size, 3), np.uint8), np.zeros((size, size), np.float32),
                        mask, PROMPT)
    d = METHOD_DEFAULTS[method]
    first, last = d.steps_within(args.steps)
    settings = replace(d, steps=range(first, last + 1)).for_layers(check.layers)
    edit = plan(EditRequest(move_x=size // 8), settings, scene).edit
    generation = Generation(PROMPT, 0, args.steps, args.guidance)
    return lambda: intervene(pipe, probes, edit, generation).steps[-1].latents


def timed_cases(check: Check, linear, taesd) -> dict:
    """Every timed case: name -> a function returning the run's final latents."""
    pipe, probes, layers, size = check.pipe, check.probes, check.layers, check.size

    def read_tokens(st):
        StepTokens(probes.token_outputs(st.index, st.activations))

    def read_full(st):
        maps = probes.read(st.index, st.activations, tuple(st.latents.shape[-2:]), size)
        assert len(maps) == len(layers)

    def stock():
        return pipe(PROMPT, height=size, width=size, generator=check.gen(), output_type="latent",
                    **check.kw).images

    def app_stream():
        *_, run = stream_run(pipe, Generation(PROMPT, 0, check.args.steps, check.args.guidance),
                             RunReaders(layers, "attn1", probes=probes, preview=taesd or linear))
        return run.steps[-1].latents

    cases = {
        "stock": stock,
        "loop": loop_case(check, False),
        "loop_graph": loop_case(check, True),
        "capture": loop_case(check, False, layers),
        "capture_graph": loop_case(check, True, layers),
        "probing": loop_case(check, True, layers, read_tokens),
        "probing_old": loop_case(check, False, layers, read_full),
        "preview_decode": loop_case(check, True, preview=DecodePreview(pipe)),
        "preview_linear": loop_case(check, True, preview=linear),
        "app_stream": app_stream,
        "edit_activation": edit_case(check, "activation"),
        "edit_guided": edit_case(check, "guided"),
        "edit_shift": edit_case(check, "latent_shift"),
    }
    if taesd is not None:
        cases["preview_taesd"] = loop_case(check, True, preview=taesd)
    return cases


def timed_rounds(check: Check, cases: dict) -> tuple[dict, dict, dict]:
    """Each case's median seconds and peak GiB over --runs rounds after a warm-up round, and
    the cases that failed (name -> why)."""
    times = {k: [] for k in cases}
    peak, failed = {}, {}
    for round_ in range(check.args.runs + 1):  # round 0 warms up (kernels, graphs, allocator)
        for name, fn in cases.items():
            if name in failed:
                continue
            try:
                seconds, gib, _ = check.bench.timed(fn)
            except Exception as err:  # report the case, go on with the others
                traceback.print_exc()
                failed[name] = f"{type(err).__name__}: {str(err)[:300]}"
                continue
            if round_:
                times[name].append(seconds)
                peak[name] = gib
    return {k: statistics.median(v) for k, v in times.items() if v}, peak, failed


def derived_shares(med: dict, steps: int) -> dict:
    """Per-step costs and each addition's share of a step, from the cases' medians."""
    eager, graph = med.get("loop"), med.get("loop_graph")
    per_step = lambda a, b: (med[a] - med[b]) / steps  # noqa: E731
    step_eager, step_graph = eager / steps, graph / steps
    derived = {
        "step_ms_eager": 1e3 * step_eager, "step_ms_graph": 1e3 * step_graph,
        "readout_share_of_graph_step": per_step("probing", "capture_graph") / step_graph,
        "readout_share_of_eager_step": per_step("probing", "capture_graph") / step_eager,
        "capture_share_of_graph_step": per_step("capture_graph", "loop_graph") / step_graph,
        "old_readout_share_of_eager_step": per_step("probing_old", "capture") / step_eager,
        "decode_share_of_graph_step": per_step("preview_decode", "loop_graph") / step_graph,
        "linear_share_of_graph_step": per_step("preview_linear", "loop_graph") / step_graph,
        "stock_over_probing": med["stock"] / med["probing"],
        "stock_over_app_stream": med["stock"] / med["app_stream"]}
    if "preview_taesd" in med:
        derived["taesd_share_of_graph_step"] = (per_step("preview_taesd", "loop_graph")
                                                / step_graph)
    return derived


def timings(check: Check, cases: dict) -> dict:
    """Time every case; print each against stock, loop and loop_graph, then the shares."""
    med, peak, failed = timed_rounds(check, cases)
    base, eager, graph = med.get("stock"), med.get("loop"), med.get("loop_graph")
    out = {}
    for name, s in med.items():
        out[name] = {"seconds": round(s, 4), "x_stock": round(s / base, 3) if base else None,
                     "x_loop": round(s / eager, 3) if eager else None,
                     "x_loop_graph": round(s / graph, 3) if graph else None,
                     "peak_gib": round(peak[name], 2) if peak.get(name) is not None else None}
        mem = f"  peak {peak[name]:.2f} GiB" if peak.get(name) is not None else ""
        print(f"{name:16s} {s:8.3f} s  {s / base:5.2f}x stock  {s / eager:5.2f}x loop"
              f"  {s / graph:5.2f}x loop_graph{mem}", flush=True)
    for name, why in failed.items():
        out[name] = {"error": why}
        print(f"{name:16s} FAILED {why}")
    out["derived"] = {k: round(v, 4) for k, v in derived_shares(med, check.args.steps).items()}
    for k, v in out["derived"].items():
        print(f"  {k:36s} {v:8.4f}")
    out["graphs"] = graph_report(check.pipe.unet)
    print("  graphs:", out["graphs"])
    return out


def equality(cases: dict) -> dict:
    """Final latents of our loop (eager, graph, probing) against the stock call."""
    ref = cases["stock"]().float()
    out = {}
    for name in ("loop", "loop_graph", "probing"):
        lat = cases[name]().float()
        diff = (lat - ref).abs()
        out[name] = {"bit_equal": bool(torch.equal(lat, ref)),
                     "max_abs_diff": float(diff.max()), "ref_abs_mean": float(ref.abs().mean())}
        print(f"  {name} vs stock final latents: bit-equal {out[name]['bit_equal']}, "
              f"max |diff| {out[name]['max_abs_diff']:.3g} (|latent| mean "
              f"{out[name]['ref_abs_mean']:.3g})")
    return out


def main() -> int:
    args = parse_args()
    device, dtype = pick_device(args.device)
    bench = Bench(device)
    t0 = time.perf_counter()
    check = set_up(args, bench, device, dtype, t0)
    R = bench.results
    linear = LinearPreview(SD_V1_LATENT_RGB, np.zeros(3))  # its cost: any VAE alike
    try:
        taesd = choose_preview(check.pipe, "taesd")
    except ValueError as err:
        taesd, R["taesd"] = None, str(err)
    cases = timed_cases(check, linear, taesd)

    bench.section("equality", lambda: equality(cases))
    bench.section("timings", lambda: timings(check, cases))
    bench.section("readout", lambda: readout(check))
    bench.section("syncs", lambda: syncs(check, cases))
    bench.section("facade", lambda: facade(check))
    if args.embedded:
        bench.section("embedded", lambda: embedded(check))
    R["total_s"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(R, indent=2, default=str) + "\n")
    print(f"wrote {args.out} ({R['total_s']} s)")
    failed = [k for k, v in R.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
