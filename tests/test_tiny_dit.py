"""The scene DiT's builder: a stock PixArtAlphaPipeline sharing the embedded model's VAE, text
encoder, tokenizer and schedule, run by our loop bit-equal to the stock call (untrained)."""

import numpy as np
import pytest
import torch

from probe_core import settings
from probe_core.families import family_of
from probe_core.probing.denoise import DenoiseSettings, denoise
from probe_core.probing.hooks import self_attention_layers
from probe_core.world.tiny_dit import TinyDiTConfig, build_dit_pipeline
from probe_core.world.tiny_ldm import load_pipeline

PROMPT = "a large red sphere on a gray plain floor"
SMALL = TinyDiTConfig(num_layers=2)


@pytest.fixture(scope="module")
def dit_pipe():
    torch.manual_seed(0)
    return build_dit_pipeline(load_pipeline(settings.EMBEDDED_MODEL), SMALL)


def test_it_shares_the_embedded_models_parts(dit_pipe):
    unet_pipe = load_pipeline(settings.EMBEDDED_MODEL)
    pipe = build_dit_pipeline(unet_pipe, SMALL)
    assert pipe.vae is unet_pipe.vae and pipe.text_encoder is unet_pipe.text_encoder
    assert pipe.tokenizer is unet_pipe.tokenizer and pipe.scheduler is unet_pipe.scheduler
    assert family_of(pipe).name == "pixart" and family_of(pipe).max_sequence_length(pipe) == 24


def test_our_loop_equals_the_stock_call_and_reads_an_8x8_token_grid(dit_pipe):
    kw = dict(num_inference_steps=3, guidance_scale=4.0)
    steps = list(denoise(dit_pipe, PROMPT, DenoiseSettings(capture_layers=None, **kw),
                         generator=torch.Generator().manual_seed(2),
                         scheduler=type(dit_pipe.scheduler).from_config(
                             dit_pipe.scheduler.config)))
    stock = dit_pipe(PROMPT, output_type="latent", max_sequence_length=24,
                     use_resolution_binning=False, generator=torch.Generator().manual_seed(2),
                     **kw).images
    assert torch.equal(steps[-1].latents, stock)
    layers = self_attention_layers(dit_pipe.transformer)
    assert layers == ["transformer_blocks.0.attn1", "transformer_blocks.1.attn1"]
    assert steps[-1].activations[layers[0]].shape == (64, 128)  # 8x8 tokens, width 128
    assert steps[-1].x0_image.shape == (64, 64, 3)


def test_it_saves_and_loads_as_a_stock_diffusers_folder(dit_pipe, tmp_path):
    from probe_core.models import load_model

    dit_pipe.save_pretrained(tmp_path / "tiny-scenes-dit")
    pipe, preset = load_model(str(tmp_path / "tiny-scenes-dit"))
    assert type(pipe).__name__ == "PixArtAlphaPipeline" and preset.family == "pixart"
    for a, b in zip(pipe.transformer.parameters(), dit_pipe.transformer.parameters()):
        assert torch.equal(a, b)
    image = pipe(PROMPT, num_inference_steps=2, max_sequence_length=24,
                 use_resolution_binning=False, output_type="np").images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()
