import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from probe_core.world.tiny_ldm import (build_scheduler, build_text_encoder, build_tokenizer, build_unet,
                                 build_vae, load_pipeline)
from probe_core.world.images import to_tensor
from probe_core.world.tiny_train import train, vae_loss
from probe_core.world.train_setup import TrainConfig
from probe_core.world.unet_train import diffusion_loss, unet_predictor
from probe_core.world.scenes import render_scene, sample_scene


def _fixed_loss(fn, steps, params, lr):
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(steps):
        loss = fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], fn().item()


def test_unet_training_step_lowers_the_loss_on_a_fixed_batch(tiny_cfg):
    torch.manual_seed(0)
    tok = build_tokenizer(tiny_cfg.vocabulary, tiny_cfg.max_length)
    unet, text = build_unet(tiny_cfg), build_text_encoder(tiny_cfg, len(tok.get_vocab()))
    sched = build_scheduler()
    z = torch.randn(8, 4, 8, 8)
    ids = tok(["a red sphere on a gray plain floor"] * 8, padding="max_length",
              max_length=tiny_cfg.max_length, return_tensors="pt").input_ids

    def loss():  # same noise and timesteps every call: a fixed batch
        return diffusion_loss(unet_predictor(unet, text, ids), sched, z, 5.0,
                              torch.Generator().manual_seed(1))

    first, last = _fixed_loss(loss, 5, list(unet.parameters()) + list(text.parameters()), 1e-3)
    assert last < first * 0.9


def test_vae_training_step_lowers_the_loss(tiny_cfg):
    torch.manual_seed(0)
    vae = build_vae(tiny_cfg)
    x = to_tensor(np.stack([render_scene(sample_scene(s), size=32).image for s in range(4)]))

    def loss():
        torch.manual_seed(2)  # the posterior sample is drawn with the global generator
        return vae_loss(vae, x, 1e-6)[0]

    first, last = _fixed_loss(loss, 5, vae.parameters(), 1e-3)
    assert last < first * 0.9


@pytest.mark.slow
def test_train_exports_a_pipeline_and_resumes(tiny_cfg, tmp_path):
    cfg = TrainConfig(workdir=str(tmp_path / "work"), out=str(tmp_path / "out"), n_scenes=40,
                      vae_steps=3, vae_batch=4, unet_steps=2, unet_batch=4, ckpt_every=1,
                      export_every=100, log_every=1, threads=1, model=tiny_cfg)
    first = train(cfg)
    assert first["vae_steps"] == 3 and first["unet_steps"] == 2
    cfg.unet_steps = 4
    second = train(cfg)
    assert second["unet_steps"] == 4
    rows = [json.loads(r) for r in (tmp_path / "work" / "train_log.jsonl").read_text().splitlines()]
    unet_steps = [r["step"] for r in rows if r["phase"] == "unet"]
    assert unet_steps == [1, 2, 3, 4]  # resumed at step 3, not from scratch
    assert [r["step"] for r in rows if r["phase"] == "vae"] == [1, 2, 3]  # VAE not retrained
    pipe = load_pipeline(tmp_path / "out")
    info = json.loads((tmp_path / "out" / "tiny_ldm.json").read_text())
    assert info["training"]["unet_steps"] == 4
    assert pipe.vae.config.scaling_factor != 1.0  # set from the encoded latents' spread


@pytest.mark.slow
def test_warm_start_keeps_the_shipped_vae_and_resumes(tiny_cfg, tmp_path):
    base = dict(n_scenes=24, vae_batch=4, unet_batch=4, ckpt_every=1, export_every=100,
                log_every=1, threads=1, model=tiny_cfg)
    train(TrainConfig(workdir=str(tmp_path / "a"), out=str(tmp_path / "shipped"), vae_steps=2,
                      unet_steps=1, **base))
    shipped_vae = load_pipeline(tmp_path / "shipped").vae.state_dict()
    cfg = TrainConfig(workdir=str(tmp_path / "b"), out=str(tmp_path / "next"),
                      init_from=str(tmp_path / "shipped"), vae_steps=2, unet_steps=1, **base)
    train(cfg)
    cfg.unet_steps, cfg.init_from = 2, None
    resumed = train(cfg)
    assert resumed["unet_steps"] == 2  # resumed; the warm VAE is reused, not retrained
    assert resumed["warm_start"] == str(tmp_path / "shipped")  # remembered by the checkpoint
    cfg.unet_steps = 3
    cfg.model = replace(tiny_cfg, snr_shift=16.0)
    with pytest.raises(ValueError, match="snr_shift 1"):
        train(cfg)  # a resume may not change the noise schedule under the checkpoint
    cfg.model, cfg.unet_steps = tiny_cfg, 2
    rows = [json.loads(r) for r in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert not [r for r in rows if r["phase"] == "vae"]
    after = load_pipeline(tmp_path / "next").vae.state_dict()
    for k, v in shipped_vae.items():
        assert torch.equal(v, after[k]), k
    # a run that trains no step exports nothing
    (tmp_path / "next" / "model_index.json").unlink()
    assert train(cfg)["unet_steps"] == 2
    assert not (tmp_path / "next" / "model_index.json").exists()
    # a warm start onto a shifted schedule trains, resumes and exports that schedule
    shifted = TrainConfig(workdir=str(tmp_path / "c"), out=str(tmp_path / "shifted"),
                          init_from=str(tmp_path / "shipped"), vae_steps=2, unet_steps=1,
                          **{**base, "model": replace(tiny_cfg, snr_shift=16.0)})
    train(shifted)
    shifted.unet_steps = 2
    assert train(shifted)["unet_steps"] == 2
    a = load_pipeline(tmp_path / "shifted").scheduler.alphas_cumprod.double()
    b = build_scheduler().alphas_cumprod.double()
    snr_ratio = (b / (1 - b)) / (a / (1 - a))
    torch.testing.assert_close(snr_ratio, torch.full_like(snr_ratio, 16.0), rtol=1e-3, atol=0)
