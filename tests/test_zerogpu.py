"""The ZeroGPU decoration: applied only where a ZeroGPU Space says so."""

import sys
import types

from probe_core.serve.zerogpu import on_gpu


def handler(x):
    return x + 1


def test_off_zero_gpu_the_function_is_returned_as_is(monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert on_gpu(handler) is handler


def test_on_zero_gpu_spaces_gpu_wraps_it(monkeypatch):
    calls = []
    fake = types.ModuleType("spaces")

    def gpu(fn, duration=60):
        calls.append(duration)
        return lambda *a: fn(*a) * 10

    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    wrapped = on_gpu(handler, duration=120)
    assert calls == [120] and wrapped(1) == 20


# ---------------------------------------------------------------- the duration each call asks

def test_the_estimate_grows_with_steps_model_and_image_and_stays_bounded():
    from probe_core.serve.zerogpu import MAX_SECONDS, MIN_SECONDS, ModelCost, gpu_seconds

    sd = ModelCost(0.86, 512, guided=True)
    sdxl = ModelCost(2.57, 1024, guided=True)
    flux = ModelCost(11.9, 1024, guided=False)
    assert gpu_seconds(sd, 15) == MIN_SECONDS  # a small model's run: the least ZeroGPU takes
    assert gpu_seconds(sdxl, 60) > gpu_seconds(sdxl, 30) > MIN_SECONDS
    assert gpu_seconds(flux, 28) > gpu_seconds(sdxl, 28)
    assert gpu_seconds(sdxl, 30, work=4.0) > gpu_seconds(sdxl, 30)  # an edit costs more
    assert gpu_seconds(flux, 10_000) == MAX_SECONDS


def test_the_app_on_zero_gpu_asks_each_call_for_its_own_duration(monkeypatch, tiny_pipe):
    """With the `spaces` shim, every model action is wrapped with a callable duration; called
    with the action's own arguments it estimates from the model and the steps, and arguments
    it cannot read get the largest bound."""
    from probe_core.serve.model_choice import ModelChoice
    from probe_core.serve.ui.build import build_app
    from probe_core.serve.ui.forms import GenerateForm
    from probe_core.serve.zerogpu import MAX_SECONDS, GpuDuration

    from .helpers import tiny_test_demo

    durations = []
    fake = types.ModuleType("spaces")

    def gpu(fn, duration=60):
        durations.append(duration)
        return fn

    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    demo = tiny_test_demo(tiny_pipe)
    build_app(ModelChoice(embedded=demo))
    assert len(durations) == 3 and all(isinstance(d, GpuDuration) for d in durations)
    generate = durations[0]
    args = [GenerateForm("a red sphere", 1, steps, 4.0, "best", 0.5, 1, 2)
            for steps in (5, 5000)]
    few, many = (generate(*[getattr(a, f) for f in a.__dataclass_fields__]) for a in args)
    assert 0 < few <= many <= MAX_SECONDS
    assert generate("only a prompt") == MAX_SECONDS  # unreadable: the bound, never an error


def test_a_run_moved_to_the_host_resumes_an_edit_as_before(monkeypatch, tiny_pipe):
    """On ZeroGPU a finished run is moved to the host (`Run.to_host`); an edit that resumes
    from its cached steps gives the same image as without the move."""
    import numpy as np

    from probe_core.serve.runs import Run
    from probe_core.serve.steering import SliderValues

    from .helpers import tiny_test_demo

    moved = []
    original = Run.to_host
    monkeypatch.setattr(Run, "to_host", lambda self: (moved.append(self), original(self)))
    demo = tiny_test_demo(tiny_pipe)
    sliders = SliderValues(move_x=8, first_step=1, last_step=1, strength=0.3)
    *_, plain = demo.stream("a small blue box on a beige plain floor", 4, 3, 4.0)
    *_, plain_edit = demo.intervene(plain, sliders)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    *_, run = demo.stream("a small blue box on a beige plain floor", 4, 3, 4.0)
    assert moved and moved[0] is run
    assert all(st.latents.device.type == "cpu" for st in run.steps)
    *_, edit = demo.intervene(run, sliders)
    np.testing.assert_array_equal(edit.after, plain_edit.after)
    assert len(moved) == 2  # the edited run too
