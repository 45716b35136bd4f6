"""Plain helpers shared by the test files: prompts, tiny models with stand-in probes and a
stand-in labeler, the launched app. Pytest fixtures stay in conftest.py."""

from contextlib import contextmanager

import numpy as np
import torch

from probe_core.probing.hooks import self_attention_layers
from probe_core.probing.probes import ProbeSet, ProbeSettings, random_probe_set
from probe_core.world.tiny_ldm import TinyLDMConfig, build_pipeline

PROMPT = "a large red sphere on a gray plain floor"
APP_PROMPT = "a red sphere on a gray plain floor"  # the app tests' prompt
SCENE_PROMPT = "a large red sphere and a small blue box on a gray checkered floor"

SD_V1_LAYERS = (
    [f"down_blocks.{b}.attentions.{i}.transformer_blocks.0.attn1" for b in range(3) for i in range(2)]
    + ["mid_block.attentions.0.transformer_blocks.0.attn1"]
    + [f"up_blocks.{b}.attentions.{i}.transformer_blocks.0.attn1" for b in (1, 2, 3) for i in range(3)]
)


def tiny_config() -> TinyLDMConfig:
    """A model config small enough to build, train a step and sample in well under a second."""
    return TinyLDMConfig(image_size=32, vae_channels=(16, 16, 16), unet_channels=(32, 32, 32),
                         unet_heads=2, text_hidden=32, text_layers=1, text_heads=2)


def build_tiny_pipe():
    """An untrained tiny pipeline (32x32 images), built in memory, same weights every call."""
    torch.manual_seed(0)
    pipe = build_pipeline(tiny_config())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def scaled_random_probes(pipe, layers, steps: int = 4, image_size: int = 32):
    """Probes for every (step, layer), random with weights scaled by 1/sqrt(C) (so readouts and
    losses have sizes like fitted ones); the same numbers every call."""
    probes = ProbeSet(ProbeSettings("tiny", "DDIMScheduler", steps, image_size, 4.0, layers))
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        for layer in layers:
            c = pipe.unet.get_submodule(layer).to_out[0].out_features
            probes.add("depth", step, layer, torch.randn(1, c, generator=g) / c ** 0.5)
            probes.add("saliency", step, layer, torch.randn(2, c, generator=g) / c ** 0.5)
    return probes


def random_probes(pipe, steps=3):
    """The probe set random_probe_set makes for every self-attention layer of the tiny model."""
    layers = self_attention_layers(pipe.unet)
    return random_probe_set(pipe.unet, ProbeSettings("tiny", "DDIMScheduler", steps, 32, 4.0,
                                                     layers))


class BoxLabeler:
    """Stands in for the scene labeler: brightness as depth, a fixed box as the object."""

    def __call__(self, images):
        depth = images.astype(np.float32).mean(-1)
        depth = (depth - depth.mean()) / (depth.std() + 1e-6)
        sal = np.zeros(images.shape[:3], np.float32)
        sal[:, 10:20, 6:14] = 1
        return depth, sal


def tiny_test_demo(pipe, demo_class=None):
    """The app's model on the tiny pipeline: random probes, a box labeler ("tiny test model");
    `demo_class` a ProbeDemo subclass where a test needs one."""
    from probe_core.serve.facade import ProbeDemo

    return (demo_class or ProbeDemo)(pipe, "tiny test model", random_probes(pipe), BoxLabeler())


def build_tiny_sd_unet(sample_size: int = 16):
    """Same block structure as SD v1.x's UNet (4 levels, 2 layers per block, cross-attention in
    the first three down and last three up blocks), with tiny channels."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=32, attention_head_dim=2, norm_num_groups=32,
    )


def save_tiny_sd_pipeline(folder) -> str:
    """An untrained pipeline whose UNet has SD v1.x's block structure and layer names (tiny
    channels, 32x32 images), saved as a diffusers folder."""
    pipe = build_tiny_pipe()
    pipe.unet = build_tiny_sd_unet(sample_size=8)
    pipe.save_pretrained(folder)
    return str(folder)


def save_tiny_hf_labeler(folder) -> str:
    """Untrained tiny DPT (depth) and CLIPSeg (saliency) models with their processors, built
    from configs and saved; returns the 'DEPTH,SALIENCY' labeler spec."""
    from pathlib import Path

    from transformers import (CLIPSegConfig, CLIPSegForImageSegmentation, DPTConfig,
                              DPTForDepthEstimation, DPTImageProcessor, ViTImageProcessor)

    from probe_core.world.tiny_ldm import build_tokenizer

    folder = Path(folder)
    torch.manual_seed(0)
    depth = DPTForDepthEstimation(DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
        reassemble_factors=[4, 2, 1, 0.5]))
    depth.save_pretrained(folder / "dpt")
    DPTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder / "dpt")
    tok = build_tokenizer(["the", "main", "object"], max_length=8)
    sal = CLIPSegForImageSegmentation(CLIPSegConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=16, max_position_embeddings=8,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                           intermediate_size=16, image_size=32, patch_size=8),
        projection_dim=16, reduce_dim=8, extract_layers=[0, 1, 2],
        decoder_num_attention_heads=2, decoder_intermediate_size=16))
    sal.save_pretrained(folder / "clipseg")
    tok.save_pretrained(folder / "clipseg")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder / "clipseg")
    return f"{folder / 'dpt'},{folder / 'clipseg'}"


def open_image(value):
    """An image output of gradio_client (a file path, or a dict holding one) as a PIL image."""
    from PIL import Image

    path = value["path"] if isinstance(value, dict) else value
    return Image.open(path)


@contextmanager
def launched_app(models):
    """build_app(models), queued and launched locally: yields its URL, closes it after."""
    from app import LAUNCH, build_app

    app = build_app(models)
    app.queue()
    _, url, _ = app.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                           **LAUNCH)
    try:
        yield url
    finally:
        app.close()
