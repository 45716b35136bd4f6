"""On a CUDA device: graph replay gives the eager numbers, the readout does not wait for the host,
the paper's edit matches its autograd reference. Skipped where there is no CUDA (CI, this CPU)."""

import numpy as np
import pytest
import torch

from probe_core.edits.methods import Edit
from probe_core.edits.run import intervene
from probe_core.probing.generation import Generation
from probe_core.edits.probe_adam import graph_errors, optimise_toward_probe
from probe_core.probing.cuda_graph import forget_graphs, graph_report
from probe_core.probing.denoise import DenoiseHooks, DenoiseSettings, denoise
from probe_core.probing.hooks import self_attention_layers
from probe_core.serve.runs import StepTokens

from .helpers import PROMPT, build_tiny_pipe, build_tiny_sd_unet, scaled_random_probes
from .test_probe_adam import ReferenceActivationEdit, problem, reference_adam

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.fixture(scope="module", params=[torch.float32, torch.float16], ids=["fp32", "fp16"])
def cuda_pipe(request):
    """Without TF32: in float32, cuDNN may pick a TF32 convolution for one of the eager and
    captured calls and not the other; these tests ask for the same kernels."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    pipe = build_tiny_pipe()
    pipe.unet = build_tiny_sd_unet(sample_size=8)
    yield pipe.to("cuda", request.param)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def run(pipe, graph, layers=(), hooks=DenoiseHooks()):
    settings = DenoiseSettings(4, 4.0, capture_layers=layers, decode_x0=False, cuda_graph=graph)
    return list(denoise(pipe, PROMPT, settings, torch.Generator().manual_seed(1), hooks=hooks))


def test_graph_replay_equals_the_eager_run_and_captures_the_same(cuda_pipe):
    forget_graphs(cuda_pipe.unet)
    layers = self_attention_layers(cuda_pipe.unet)
    eager, graphed = run(cuda_pipe, False, layers), run(cuda_pipe, True, layers)
    assert graph_report(cuda_pipe.unet) == {"captured": 1, "errors": []}
    for a, b in zip(eager, graphed):
        diff = (a.latents.float() - b.latents.float()).abs().max()
        assert torch.equal(a.latents, b.latents), f"step {a.index}: max |diff| {float(diff):.3g}"
        for layer in layers:
            diff = (a.activations[layer] - b.activations[layer]).abs().max()
            assert torch.equal(a.activations[layer], b.activations[layer]), \
                f"step {a.index} {layer}: max |diff| {float(diff):.3g}"
    again = run(cuda_pipe, True, layers)  # replayed, not captured again
    assert torch.equal(again[-1].latents, eager[-1].latents)
    assert graph_report(cuda_pipe.unet)["captured"] == 1


def test_stock_pipeline_equals_the_graph_loop(cuda_pipe):
    stock = cuda_pipe(PROMPT, num_inference_steps=4, guidance_scale=4.0, output_type="latent",
                      generator=torch.Generator().manual_seed(1)).images
    assert torch.equal(stock, run(cuda_pipe, True)[-1].latents)


def test_an_edited_step_runs_eagerly_and_the_rest_replay(cuda_pipe):
    layers = self_attention_layers(cuda_pipe.unet)
    probes = scaled_random_probes(cuda_pipe, layers)
    target = np.zeros((32, 32), bool)
    target[8:20, 12:22] = True
    edit = Edit("saliency", target, "activation", 0.05, range(0, 2), iterations=32)
    mine = intervene(cuda_pipe, probes, edit, Generation(PROMPT, 1, 4, 4.0))
    ref = ReferenceActivationEdit(edit, probes, (8, 8))
    *_, last = denoise(cuda_pipe, PROMPT, DenoiseSettings(4, 4.0, decode_x0=False,
                                                          cuda_graph=False),
                       torch.Generator().manual_seed(1),
                       hooks=DenoiseHooks(activation_edit=ref, edit_layers=layers))
    # float16 rounds the written-back activations; differences stay ~1% of the edit's effect
    tol = 1e-4 if cuda_pipe.unet.dtype == torch.float32 else 0.1
    diff = (mine.steps[-1].latents.float() - last.latents.float()).abs().max()
    assert diff <= tol, f"max |diff| {float(diff):.3g}"
    effect = (mine.steps[-1].latents.float() - run(cuda_pipe, True)[-1].latents.float()).abs()
    assert effect.max() > 1.0


def test_the_token_readout_never_waits_for_the_host(cuda_pipe):
    layers = self_attention_layers(cuda_pipe.unet)
    probes = scaled_random_probes(cuda_pipe, layers)
    st = run(cuda_pipe, True, layers)[2]
    probes.token_outputs(2, st.activations)  # the set's weights go to the GPU once, here
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        kept = StepTokens(probes.token_outputs(2, st.activations))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for layer in layers:
        depth, _ = probes.maps_from_tokens(kept.get(layer), (8, 8), 32)
        expected = probes.depth_map(2, layer, st.activations[layer].cpu(), (8, 8), 32)
        np.testing.assert_allclose(depth, expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("task", ["depth", "saliency"])
@pytest.mark.parametrize("lr", [0.05, 3.0])
def test_graphed_adam_equals_eager_adam_and_the_reference(task, lr):
    """lr 3.0 stops early: the graph's chunks freeze the activation where the reference stops."""
    weight, acts, target = (x.cuda() for x in problem(task, seed=1, hw=256, c=64))
    eager = optimise_toward_probe(task, weight, acts, target, lr, 32, cuda_graph=False)
    for _ in range(2):  # captured, then replayed
        graphed = optimise_toward_probe(task, weight, acts, target, lr, 32)
        for x, y in zip(graphed, eager):
            assert torch.equal(x, y), f"max |diff| {float((x - y).abs().max()):.3g}"
    assert graph_errors() == []
    ref, first, final = reference_adam(task, weight, acts, target, lr, 32)
    assert torch.allclose(graphed[0], ref, rtol=1e-4, atol=1e-5)


def _cuda_tensors(value, seen=None) -> int:
    """How many CUDA tensors `value` holds, through dataclasses, dicts, lists and objects."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if torch.is_tensor(value):
        return int(value.is_cuda)
    if isinstance(value, dict):
        return sum(_cuda_tensors(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_cuda_tensors(v, seen) for v in value)
    if hasattr(value, "__dict__") and not isinstance(value, torch.nn.Module):
        return sum(_cuda_tensors(v, seen) for v in vars(value).values())
    return 0


def test_a_run_on_the_host_holds_no_cuda_tensor_and_resumes_on_the_gpu(cuda_pipe, monkeypatch):
    """ZeroGPU: between calls nothing of a run may stay on the GPU; an edit from its cached
    steps moves the resume point back and gives the same image as without the move."""
    from probe_core.serve.facade import ProbeDemo
    from probe_core.serve.steering import SliderValues

    from .helpers import BoxLabeler, random_probes

    demo = ProbeDemo(cuda_pipe, "tiny", random_probes(cuda_pipe), BoxLabeler())
    sliders = SliderValues(move_x=8, first_step=1, last_step=1, strength=0.3)
    *_, plain = demo.stream(PROMPT, 4, 3, 4.0)
    *_, plain_edit = demo.intervene(plain, sliders)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    *_, run = demo.stream(PROMPT, 4, 3, 4.0)
    assert _cuda_tensors(run) == 0
    *_, edit = demo.intervene(run, sliders)
    assert _cuda_tensors(run) == 0  # the edited run kept on the run, on the host too
    np.testing.assert_array_equal(edit.after, plain_edit.after)
