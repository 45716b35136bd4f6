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
