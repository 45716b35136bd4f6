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
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

from probe_core.edits.methods import METHOD_DEFAULTS, Edit, default_layers, intervene
from probe_core.models import PAPER, load_model, pick_device
from probe_core.probing.collect import settings_for
from probe_core.probing.cuda_graph import graph_report
from probe_core.probing.denoise import denoise
from probe_core.probing.hooks import self_attention_layers
from probe_core.probing.preview import (SD_V1_LATENT_RGB, DecodePreview, LinearPreview,
                                        choose_preview)
from probe_core.probing.probes import random_probe_set
from probe_core.serve.runs import StepTokens, stream_run

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a photo of a red sphere on a wooden table"


def sd_shaped_pipeline(small: bool, device, dtype):
    """SD v1.x's architecture from configs, random weights (small: tiny channels, 64x64)."""
    from diffusers import (AutoencoderKL, LMSDiscreteScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel

    from probe_core.world.tiny_ldm import build_tokenizer

    torch.manual_seed(0)
    ch, text, vae_ch, size = ((320, 640, 1280, 1280), 768, (128, 256, 512, 512), 512) if not small \
        else ((32, 32, 64, 64), 32, (8, 8, 16, 16), 64)
    unet = UNet2DConditionModel(
        sample_size=size // 8, block_out_channels=ch, cross_attention_dim=text,
        attention_head_dim=8 if not small else 2, layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        norm_num_groups=32 if not small else 8)
    vae = AutoencoderKL(block_out_channels=vae_ch, latent_channels=4, layers_per_block=2,
                        down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=size,
                        norm_num_groups=32 if not small else 8)
    tokenizer = build_tokenizer(PROMPT.split(), max_length=77)
    encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=text, intermediate_size=4 * text,
        num_hidden_layers=12 if not small else 1, num_attention_heads=12 if not small else 2,
        max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    scheduler = LMSDiscreteScheduler(beta_start=0.00085, beta_end=0.012,
                                     beta_schedule="scaled_linear", steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)


class Bench:
    def __init__(self, device):
        self.cuda = str(device).startswith("cuda")
        self.results: dict = {}

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def timed(self, fn):
        """(seconds, peak GiB or None, fn's result)"""
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.sync()
        t = time.perf_counter()
        out = fn()
        self.sync()
        seconds = time.perf_counter() - t
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None
        return seconds, peak, out

    def section(self, name, fn):
        """Run one part; a failure is printed and recorded, and the rest still runs."""
        t = time.perf_counter()
        try:
            self.results[name] = fn()
        except Exception as err:  # a bench reports every failure and goes on
            traceback.print_exc()
            self.results[name] = {"error": f"{type(err).__name__}: {str(err)[:500]}"}
        print(f"[{name}: {time.perf_counter() - t:.1f} s]", flush=True)


def square_labeler(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A labeler of the right shapes: (N, H, W, 3) -> depth, P(object), an object in the middle
    (random weights draw no object for a real labeler to find)."""
    n, h, w = images.shape[:3]
    prob = np.zeros((n, h, w), np.float32)
    prob[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 1
    depth = np.linspace(-1, 1, h, dtype=np.float32)[None, :, None].repeat(n, 0).repeat(w, 2)
    return depth + prob, prob


def count_syncs(bench, fn) -> int | None:
    """Host synchronisations torch reports while fn runs (CUDA only)."""
    if not bench.cuda:
        return None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
        bench.sync()
    return sum("synchroniz" in str(w.message) for w in seen)


def main() -> int:
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
    args = p.parse_args()

    device, dtype = pick_device(args.device)
    bench = Bench(device)
    t0 = time.perf_counter()
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
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    kw = dict(num_inference_steps=args.steps, guidance_scale=args.guidance)
    linear = LinearPreview(SD_V1_LATENT_RGB, np.zeros(3))  # its cost: any VAE alike
    try:
        taesd = choose_preview(pipe, "taesd")
    except ValueError as err:
        taesd, R["taesd"] = None, str(err)

    def loop(graph, capture=(), per_step=None, preview=None, **extra):
        def run():
            last = None
            for st in denoise(pipe, PROMPT, generator=gen(), capture_layers=capture,
                              decode_x0=preview is not None, preview=preview, cuda_graph=graph,
                              **kw, **extra):
                if per_step is not None:
                    per_step(st)
                last = st
            return last.latents
        return run

    def read_tokens(st):
        StepTokens(probes.token_outputs(st.index, st.activations))

    def read_full(st):
        maps = probes.read(st.index, st.activations, tuple(st.latents.shape[-2:]), size)
        assert len(maps) == len(layers)

    def stock():
        return pipe(PROMPT, height=size, width=size, generator=gen(), output_type="latent",
                    **kw).images

    def app_stream():
        *_, run = stream_run(pipe, PROMPT, 0, args.steps, args.guidance, layers, "attn1",
                             probes=probes, preview=taesd or linear)
        return run.steps[-1].latents

    mask = np.zeros((size, size), bool)
    mask[size // 4: size // 2, size // 2: 3 * size // 4] = True

    def edit_case(method):
        d = METHOD_DEFAULTS[method]
        steps = [s for s in d.steps if s < args.steps] or [args.steps - 1]
        edit = Edit("saliency", mask, method, d.strength, steps, iterations=d.iterations,
                    layers=default_layers(method, layers), shift=(size // 8, 0))
        return lambda: intervene(pipe, probes, PROMPT, 0, edit, **kw).steps[-1].latents

    cases = {
        "stock": stock,
        "loop": loop(False),
        "loop_graph": loop(True),
        "capture": loop(False, layers),
        "capture_graph": loop(True, layers),
        "probing": loop(True, layers, read_tokens),
        "probing_old": loop(False, layers, read_full),
        "preview_decode": loop(True, preview=DecodePreview(pipe)),
        "preview_linear": loop(True, preview=linear),
        "app_stream": app_stream,
        "edit_activation": edit_case("activation"),
        "edit_guided": edit_case("guided"),
        "edit_shift": edit_case("latent_shift"),
    }
    if taesd is not None:
        cases["preview_taesd"] = loop(True, preview=taesd)

    def timings():
        times = {k: [] for k in cases}
        peak, failed = {}, {}
        for round_ in range(args.runs + 1):  # round 0 warms up (kernels, graphs, allocator)
            for name, fn in cases.items():
                if name in failed:
                    continue
                try:
                    seconds, gib, _ = bench.timed(fn)
                except Exception as err:  # report the case, go on with the others
                    traceback.print_exc()
                    failed[name] = f"{type(err).__name__}: {str(err)[:300]}"
                    continue
                if round_:
                    times[name].append(seconds)
                    peak[name] = gib
        med = {k: statistics.median(v) for k, v in times.items() if v}
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
        per_step = lambda a, b: (med[a] - med[b]) / args.steps  # noqa: E731
        step_eager, step_graph = eager / args.steps, graph / args.steps
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
        out["derived"] = {k: round(v, 4) for k, v in derived.items()}
        for k, v in out["derived"].items():
            print(f"  {k:36s} {v:8.4f}")
        out["graphs"] = graph_report(pipe.unet)
        print("  graphs:", out["graphs"])
        return out

    def equality():
        ref = stock().float()
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

    def syncs():
        out = {name: count_syncs(bench, cases[name]) for name in
               ("loop_graph", "probing", "app_stream", "edit_activation")}
        *_, st = denoise(pipe, PROMPT, generator=gen(), capture_layers=layers, decode_x0=False,
                         num_inference_steps=1, guidance_scale=args.guidance)
        out["token_readout_one_step"] = count_syncs(
            bench, lambda: StepTokens(probes.token_outputs(0, st.activations)))
        print("  host synchronisations per run:", out)
        return out

    def readout():
        """One step's readout of all layers, alone: host time to issue it, and time to finish."""
        *_, st = denoise(pipe, PROMPT, generator=gen(), capture_layers=layers, decode_x0=False,
                         num_inference_steps=1, guidance_scale=args.guidance)
        read = lambda: StepTokens(probes.token_outputs(0, st.activations))  # noqa: E731
        for _ in range(5):
            read()
        n = 50
        bench.sync()
        t = time.perf_counter()
        for _ in range(n):
            read()
        issued = (time.perf_counter() - t) / n
        bench.sync()
        done = (time.perf_counter() - t) / n
        out = {"issue_ms": round(1e3 * issued, 4), "finish_ms": round(1e3 * done, 4),
               "layers": len(st.activations)}
        step = R.get("timings", {}).get("derived", {}).get("step_ms_graph")
        if step:
            out["share_of_graph_step"] = round(1e3 * done / step, 4)
        print("  readout of one step, all layers:", out, flush=True)
        return out

    def facade():
        from probe_core.serve.facade import ProbeDemo

        demo = ProbeDemo(pipe, what, probes=probes, labeler=square_labeler)
        demo.max_steps = max(demo.max_steps, args.steps)
        other = layers[2] if demo.best_layer() != layers[2] else layers[3]
        out = {"preview": demo.preview.name}

        def generate():
            *_, run = demo.stream(PROMPT, 0, args.steps, args.guidance)
            return run

        def step(name, fn):
            seconds, gib, value = bench.timed(fn)
            out[name] = round(seconds, 4)
            print(f"  facade {name:14s} {seconds:7.3f} s", flush=True)
            return value

        step("generate_warm", generate)
        run = step("generate", generate)
        step("scrub", lambda: demo.view(run, args.steps // 2, "best"))
        step("switch_layer", lambda: demo.view(run, args.steps // 2, other))
        step("filmstrip", lambda: demo.filmstrip(run, other))
        step("intervene", lambda: list(demo.intervene(run, move_x=size // 8, last_step=2)))
        with tempfile.TemporaryDirectory() as tmp:
            step("export", lambda: demo.export(run, tmp, other))
        out["run_cache_mb"] = round(run.nbytes() / 2**20, 2)
        return out

    def embedded():
        from probe_core import settings as S
        from probe_core.serve.facade import ProbeDemo
        from probe_core.world.tiny_ldm import load_pipeline

        cpu = ProbeDemo.embedded()
        gpu = ProbeDemo.with_assets(load_pipeline(S.EMBEDDED_MODEL).to(device), "tiny", S.EMBEDDED_NAME,
                                    S.EMBEDDED_PROBES, S.EMBEDDED_LABELER, S.EMBEDDED_EVALUATION,
                                    scene_model=True)
        out = {"probes_loaded": gpu.probes is not None, "notice": gpu.notice,
               "dtype": str(gpu.pipe.unet.dtype)}
        prompts = gpu.example_prompts(4)
        diffs, t_gpu, t_cpu = [], [], []
        for k, prompt in enumerate(prompts):
            for demo, times in ((gpu, t_gpu), (cpu, t_cpu)):
                list(demo.stream(prompt, k))  # warm
            s_gpu, _, a = bench.timed(lambda: list(gpu.stream(prompt, k))[-1])
            s_cpu, _, b = bench.timed(lambda: list(cpu.stream(prompt, k))[-1])
            t_gpu.append(s_gpu)
            t_cpu.append(s_cpu)
            diffs.append(float(np.abs(a.image.astype(float) - b.image.astype(float)).mean()))
        out.update(mean_abs_diff_of_255=[round(d, 3) for d in diffs],
                   seconds_gpu=round(statistics.median(t_gpu), 4),
                   seconds_cpu=round(statistics.median(t_cpu), 4))
        print("  embedded:", out, flush=True)
        return out

    bench.section("equality", equality)
    bench.section("timings", timings)
    bench.section("readout", readout)
    bench.section("syncs", syncs)
    bench.section("facade", facade)
    if args.embedded:
        bench.section("embedded", embedded)
    R["total_s"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(R, indent=2, default=str) + "\n")
    print(f"wrote {args.out} ({R['total_s']} s)")
    failed = [k for k, v in R.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
