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


@pytest.fixture(scope="module")
def tiny_app_url():
    """The app on the tiny test model (random probes, a box labeler), launched locally once for
    a test module: its URL."""
    from tests.helpers import launched_app, tiny_test_demo

    with launched_app(tiny_test_demo(build_tiny_pipe())) as url:
        yield url


@pytest.fixture
def client(tiny_app_url):
    """A new visitor (its own session) on the module's launched app, through gradio_client."""
    from gradio_client import Client

    return Client(tiny_app_url, verbose=False)
