"""The GPU check's parts (bench/gpu_check.py): an SD-shaped model, a timer, a stand-in labeler,
what the parts share (Check), and the sections that follow the timed cases: one step's readout,
host synchronisations, the facade path and the embedded model.

    >>> check = Check(args, Bench(device), pipe, device, what="tiny SD shape", size=64, ...)
    >>> bench.section("facade", lambda: facade(check))
"""

from __future__ import annotations

import probe_core.offline  # noqa: F401  (hub offline unless HF_HUB_OFFLINE says otherwise)

import argparse
import statistics
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from probe_core.probing.denoise import DenoiseSettings, denoise
from probe_core.probing.probes import ProbeSet
from probe_core.serve.runs import StepTokens
from probe_core.serve.steering import SliderValues

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


@dataclass
class Check:
    """What every case and section of the check shares."""
    args: argparse.Namespace  # gpu_check.py's options
    bench: Bench
    pipe: object  # the StableDiffusionPipeline under test
    device: str  # e.g. "cuda" or "cpu"
    what: str  # the model, in words
    size: int  # image pixels a side
    layers: list[str]  # every self-attention layer
    probes: ProbeSet  # random probes of the right shapes
    kw: dict  # num_inference_steps and guidance_scale of every run

    def gen(self) -> torch.Generator:
        """The same CPU generator for every run."""
        return torch.Generator().manual_seed(0)

    def one_step(self):
        """A one-step run capturing every layer: its last StepState."""
        settings = DenoiseSettings(1, self.args.guidance, capture_layers=self.layers,
                                   decode_x0=False)
        *_, st = denoise(self.pipe, PROMPT, settings, self.gen())
        return st


def syncs(check: Check, cases: dict) -> dict:
    out = {name: count_syncs(check.bench, cases[name]) for name in
           ("loop_graph", "probing", "app_stream", "edit_activation")}
    st = check.one_step()
    out["token_readout_one_step"] = count_syncs(
        check.bench, lambda: StepTokens(check.probes.token_outputs(0, st.activations)))
    print("  host synchronisations per run:", out)
    return out


def readout(check: Check) -> dict:
    """One step's readout of all layers, alone: host time to issue it, and time to finish."""
    bench, probes = check.bench, check.probes
    st = check.one_step()
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
    step = bench.results.get("timings", {}).get("derived", {}).get("step_ms_graph")
    if step:
        out["share_of_graph_step"] = round(1e3 * done / step, 4)
    print("  readout of one step, all layers:", out, flush=True)
    return out


def facade(check: Check) -> dict:
    """The app's path through the facade, each part timed: generate (twice: the first warms
    up), scrub, switch layer, filmstrip, intervene, export."""
    from probe_core.serve.facade import ProbeDemo

    args, layers = check.args, check.layers
    demo = ProbeDemo(check.pipe, check.what, probes=check.probes, labeler=square_labeler)
    demo.max_steps = max(demo.max_steps, args.steps)
    other = layers[2] if demo.best_layer() != layers[2] else layers[3]
    out = {"preview": demo.preview.name}

    def generate():
        *_, run = demo.stream(PROMPT, 0, args.steps, args.guidance)
        return run

    def step(name, fn):
        seconds, gib, value = check.bench.timed(fn)
        out[name] = round(seconds, 4)
        print(f"  facade {name:14s} {seconds:7.3f} s", flush=True)
        return value

    step("generate_warm", generate)
    run = step("generate", generate)
    step("scrub", lambda: demo.view(run, args.steps // 2, "best"))
    step("switch_layer", lambda: demo.view(run, args.steps // 2, other))
    step("filmstrip", lambda: demo.filmstrip(run, other))
    step("intervene", lambda: list(demo.intervene(run, SliderValues(move_x=check.size // 8,
                                                                    last_step=2))))
    with tempfile.TemporaryDirectory() as tmp:
        step("export", lambda: demo.export(run, tmp, other))
    out["run_cache_mb"] = round(run.nbytes() / 2**20, 2)
    return out


def embedded(check: Check) -> dict:
    """The embedded model on the device against the CPU: time and image difference."""
    from probe_core import settings as S
    from probe_core.serve.facade import ProbeDemo
    from probe_core.world.tiny_ldm import load_pipeline

    bench = check.bench
    cpu = ProbeDemo.embedded()
    gpu = ProbeDemo.with_assets(load_pipeline(S.EMBEDDED_MODEL).to(check.device), "tiny",
                                S.EMBEDDED_NAME, S.EMBEDDED_PROBES, S.EMBEDDED_LABELER,
                                S.EMBEDDED_EVALUATION, scene_model=True)
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
