import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from probe_core.tiny_ldm import TinyLDMConfig  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture
def tiny_cfg():
    """A model config small enough to build, train a step and sample in well under a second."""
    return TinyLDMConfig(image_size=32, vae_channels=(16, 16, 16), unet_channels=(32, 32, 32),
                         unet_heads=2, text_hidden=32, text_layers=1, text_heads=2)


@pytest.fixture
def tiny_pipe(tiny_cfg):
    """An untrained tiny pipeline (32x32 images), built in memory."""
    from probe_core.tiny_ldm import build_pipeline

    torch.manual_seed(0)
    pipe = build_pipeline(tiny_cfg)
    pipe.set_progress_bar_config(disable=True)
    return pipe
