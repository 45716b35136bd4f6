import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers import build_tiny_pipe, build_tiny_sd_unet, tiny_config  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def tiny_cfg():
    """A model config small enough to build, train a step and sample in well under a second."""
    return tiny_config()


@pytest.fixture
def tiny_pipe():
    return build_tiny_pipe()


@pytest.fixture
def tiny_sd_unet():
    return build_tiny_sd_unet()


@pytest.fixture
def client(tiny_pipe):
    """The app on the tiny test model (random probes, a box labeler), launched locally, and a
    gradio_client on it."""
    from gradio_client import Client

    from probe_core.serve.facade import ProbeDemo
    from tests.helpers import BoxLabeler, launched_app, random_probes

    with launched_app(ProbeDemo(tiny_pipe, "tiny test model", random_probes(tiny_pipe),
                                BoxLabeler())) as url:
        yield Client(url, verbose=False)
