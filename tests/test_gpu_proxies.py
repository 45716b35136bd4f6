"""What makes the probing loop fast on a GPU, checked on the CPU: how often code reads a tensor on
the host (each such read waits for a GPU) and how many full-resolution maps a run makes."""

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from probe_core.edits.probe_adam import optimise_toward_probe
from probe_core.probing.denoise import DenoiseSettings, denoise
from probe_core.probing.hooks import self_attention_layers
from probe_core.probing.probes import ProbeSet, random_probe_set
from probe_core.probing.collect import settings_for
from probe_core.serve.facade import ProbeDemo
from probe_core.serve.runs import StepTokens

from .helpers import PROMPT
from .test_probe_adam import problem

HOST_READS = {"item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__"}


class HostReads(TorchFunctionMode):
    """Counts tensor operations that bring a value to the host (on a GPU: a synchronisation)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_the_readout_of_every_layer_reads_nothing_on_the_host(tiny_pipe):
    layers = self_attention_layers(tiny_pipe.unet)
    probes = random_probe_set(tiny_pipe.unet, settings_for(tiny_pipe, "t", 2, 4.0))
    *_, st = denoise(tiny_pipe, PROMPT, DenoiseSettings(2, 4.0, capture_layers=layers,
                                                        decode_x0=False),
                     torch.Generator().manual_seed(0))
    probes.token_outputs(1, st.activations)  # the weights' one transfer happens here
    with HostReads() as reads:
        kept = StepTokens(probes.token_outputs(1, st.activations))
    assert reads.count == 0 and set(kept.layers()) == set(layers)


def test_host_reads_of_a_probing_step_do_not_grow_with_the_layers(tiny_pipe):
    layers = self_attention_layers(tiny_pipe.unet)
    probes = random_probe_set(tiny_pipe.unet, settings_for(tiny_pipe, "t", 3, 4.0))
    probes.token_outputs(0, {})  # nothing to read

    def reads_with(capture):
        with HostReads() as reads:
            for st in denoise(tiny_pipe, PROMPT, DenoiseSettings(3, 4.0, capture_layers=capture,
                                                                 decode_x0=False),
                              torch.Generator().manual_seed(0)):
                StepTokens(probes.token_outputs(st.index, st.activations))
        return reads.count

    assert reads_with(layers[:1]) == reads_with(layers) == reads_with(())


def test_the_activation_edit_reads_the_host_once_per_chunk_of_iterations():
    weight, acts, target = problem("saliency", seed=1)
    with HostReads() as reads:
        optimise_toward_probe("saliency", weight, acts, target, 0.05, 32, check_every=8)
    assert reads.count <= 3  # checks after iterations 8, 16 and 24; none per iteration


def test_a_run_makes_full_resolution_maps_only_for_what_is_shown(tiny_pipe, monkeypatch):
    layers = self_attention_layers(tiny_pipe.unet)
    probes = random_probe_set(tiny_pipe.unet, settings_for(tiny_pipe, "t", 4, 4.0))
    made = []
    original = ProbeSet.maps_from_tokens
    monkeypatch.setattr(ProbeSet, "maps_from_tokens",
                        lambda self, *a: made.append(a) or original(self, *a))
    demo = ProbeDemo(tiny_pipe, "tiny", probes)
    for run in demo.stream(PROMPT, 0, 4, 4.0):
        if len(run.steps) == 1:  # while streaming, the page says how x0 is shown
            assert "x0 shown by full VAE decode" in demo.view(run, 0, layers[0]).caption
            made.clear()
    assert made == [] and len(run.tokens) == 4  # every layer read, nothing upsampled
    assert all(set(t.layers()) == set(layers) for t in run.tokens)
    demo.view(run, 2, layers[0])
    demo.view(run, 2, layers[0])  # cached
    assert len(made) == 1
    demo.view(run, 1, layers[1])  # scrub and switch layer: one more each time
    assert len(made) == 2
    depth, _ = demo.maps(run, 1, layers[1])
    assert depth.shape == (demo.image_size, demo.image_size) and np.isfinite(depth).all()
