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


def _small_dit_config(tmp_path, **overrides):
    from probe_core.world.train_setup import TrainConfig

    return TrainConfig(**{**dict(
        backbone="dit", workdir=str(tmp_path / "work"), out=str(tmp_path / "dit"), n_scenes=24,
        dit_batch=4, dit_steps=2, ckpt_every=1, export_every=100, log_every=1, threads=1,
        dit=TinyDiTConfig(num_layers=1)), **overrides})


def test_a_dit_training_step_lowers_the_loss_on_a_fixed_batch(dit_pipe):
    from probe_core.world.dit_train import dit_predictor
    from probe_core.world.unet_train import diffusion_loss

    torch.manual_seed(0)
    transformer = build_dit_pipeline(load_pipeline(settings.EMBEDDED_MODEL), SMALL).transformer
    with torch.no_grad():
        embeds, mask, _, _ = dit_pipe.encode_prompt([PROMPT] * 4, max_sequence_length=24,
                                                    do_classifier_free_guidance=False)
    z = torch.randn(4, 4, 16, 16)
    opt = torch.optim.Adam(transformer.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = diffusion_loss(dit_predictor(transformer, embeds, mask), dit_pipe.scheduler, z,
                              5.0, torch.Generator().manual_seed(1))  # same noise every call
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.9


def test_training_conditions_on_the_text_a_generation_gets(tmp_path):
    """The captions are encoded as our loop (and the stock pipeline) encode a prompt: the same
    states and mask, and the same empty prompt for the unconditional half."""
    from probe_core.families import family_of
    from probe_core.world.dit_train import dit_run, dit_training_set
    from probe_core.world.unet_train import TrainingSet

    cfg = _small_dit_config(tmp_path)
    run = dit_run(cfg, load_pipeline(settings.EMBEDDED_MODEL), tmp_path)
    latents = {"mean": torch.zeros(2, 1, 4, 16, 16), "std": torch.zeros(2, 1, 4, 16, 16),
               "scale": 1.0}
    data = dit_training_set(run, TrainingSet(latents, None, None), [PROMPT])
    cond = family_of(run.pipe).encode(run.pipe, PROMPT, 4.0, None, (64, 64))
    mask = cond.extra["encoder_attention_mask"]
    assert torch.equal(data.mask[0], mask[1]) and torch.equal(data.empty_mask[0], mask[0])
    torch.testing.assert_close(data.embeds[0].float(), cond.prompt_embeds[1].half().float())
    torch.testing.assert_close(data.empty_embeds[0].float(), cond.prompt_embeds[0].half().float())


def test_the_learning_rate_holds_or_decays_from_the_step_its_schedule_began(tmp_path):
    from probe_core.world.dit_train import dit_run, scheduled_lr

    cfg = _small_dit_config(tmp_path, dit_lr=1e-3)
    run = dit_run(cfg, load_pipeline(settings.EMBEDDED_MODEL), tmp_path)
    assert run.lr_history == [{"from_step": 0, "dit_lr": 1e-3}]
    run.step = 50
    assert scheduled_lr(run) == 1e-3
    run.lr_history.append({"from_step": 100, "dit_lr": 1e-3, "to_lr": 1e-4, "to_step": 300})
    lrs = []
    for run.step in (100, 200, 300, 400):
        lrs.append(scheduled_lr(run))
    assert lrs[0] == pytest.approx(1e-3) and lrs[1] == pytest.approx(5.5e-4)  # half way: mean
    assert lrs[2] == lrs[3] == pytest.approx(1e-4)  # held at to_lr past to_step
    cfg.dit_lr_final, cfg.dit_steps = 1e-5, 500
    decaying = dit_run(cfg, load_pipeline(settings.EMBEDDED_MODEL), tmp_path)
    assert decaying.lr_history == [{"from_step": 0, "dit_lr": 1e-3, "to_lr": 1e-5, "to_step": 500}]


@pytest.mark.slow
def test_train_model_trains_a_dit_beside_the_unet_model_and_resumes(tmp_path):
    import json

    from probe_core.models import load_model
    from probe_core.world.tiny_train import train

    cfg = _small_dit_config(tmp_path)
    assert train(cfg)["dit_steps"] == 2
    cfg.dit_steps, first_lr, cfg.dit_lr = 3, cfg.dit_lr, cfg.dit_lr / 3
    assert train(cfg)["dit_steps"] == 3
    rows = [json.loads(r) for r in (tmp_path / "work" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["phase"] == "dit"] == [1, 2, 3]  # resumed at 3
    pipe, preset = load_model(str(tmp_path / "dit"))
    assert type(pipe).__name__ == "PixArtAlphaPipeline" and preset.family == "pixart"
    assert preset.num_inference_steps == settings.DEFAULT_STEPS  # a scene model's preset
    shared = load_pipeline(settings.EMBEDDED_MODEL)
    for part in ("vae", "text_encoder"):  # shipped unchanged beside the DiT
        mine, theirs = getattr(pipe, part).state_dict(), getattr(shared, part).state_dict()
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), part
    assert pipe.vae.config.scaling_factor == shared.vae.config.scaling_factor
    assert pipe.tokenizer.get_vocab() == shared.tokenizer.get_vocab()
    info = json.loads((tmp_path / "dit" / "tiny_ldm.json").read_text())
    assert info["backbone"] == "dit" and info["training"]["dit_steps"] == 3
    assert info["training"]["learning_rate_history"] == [  # kept across invocations
        {"from_step": 0, "dit_lr": first_lr}, {"from_step": 2, "dit_lr": cfg.dit_lr}]
    image = pipe(PROMPT, num_inference_steps=2, output_type="np",
                 **family_of(pipe).stock_arguments(pipe)).images[0]
    assert image.shape == (64, 64, 3) and np.isfinite(image).all()
    cfg.dit, cfg.dit_steps = TinyDiTConfig(num_layers=2), 4
    with pytest.raises(ValueError, match="resume it with that size"):
        train(cfg)  # a resume may not change the transformer under the checkpoint
    # a new machine warm-starts from the exported folder (its EMA weights, a fresh optimiser)
    warm = _small_dit_config(tmp_path, workdir=str(tmp_path / "work2"), out=str(tmp_path / "dit2"),
                             init_from=str(tmp_path / "dit"), dit_steps=1)
    assert train(warm)["warm_start"] == {"from": "dit", "dit_steps": 3,
                                         "dit_seconds": info["training"]["dit_seconds"]}
    warm.dit_steps = 2
    assert train(warm)["warm_start"]["from"] == "dit"  # remembered by the checkpoint
    warm.workdir, warm.dit = str(tmp_path / "work3"), TinyDiTConfig(num_layers=2)
    with pytest.raises(ValueError, match="1 layers"):
        train(warm)


def test_the_scene_dit_is_offered_by_name_only_where_weights_has_it(dit_pipe, tmp_path,
                                                                     monkeypatch):
    from probe_core import models
    from probe_core.world.tiny_ldm import save_pipeline

    monkeypatch.setitem(models.SHIPPED, settings.EMBEDDED_DIT_NAME, tmp_path / "absent")
    with pytest.raises(models.ModelUnavailableError):
        models.load_model(settings.EMBEDDED_DIT_NAME)
    save_pipeline(dit_pipe, tmp_path / "dit")
    monkeypatch.setitem(models.SHIPPED, settings.EMBEDDED_DIT_NAME, tmp_path / "dit")
    pipe, preset = models.load_model(settings.EMBEDDED_DIT_NAME)
    assert type(pipe).__name__ == "PixArtAlphaPipeline"
    assert (preset.family, preset.image_size, preset.scheduler) == ("pixart", 64, "DDIMScheduler")
    assert models.is_scene_model(settings.EMBEDDED_DIT_NAME)


def test_a_training_snapshot_of_the_transformer_alone_loads_with_the_shared_parts(dit_pipe,
                                                                                   tmp_path):
    import json

    from probe_core.cli import main
    from probe_core.world.tiny_dit import load_scene_model
    from probe_core.world.tiny_ldm import save_pipeline

    save_pipeline(dit_pipe, tmp_path / "dit", extra={"training": {"shares": "tiny-scenes"}})
    assert main(["snapshot-dit", str(tmp_path / "absent"), str(tmp_path / "snapshot")]) == 2
    assert main(["snapshot-dit", str(tmp_path / "dit"), str(tmp_path / "snapshot")]) == 0
    assert not (tmp_path / "snapshot" / "vae").exists()  # the transformer alone
    info = json.loads((tmp_path / "snapshot" / "tiny_ldm.json").read_text())
    assert info["training"] == {"shares": "tiny-scenes"} and "'tiny-scenes'" in info["snapshot"]
    pipe = load_scene_model(tmp_path / "snapshot")
    assert type(pipe).__name__ == "PixArtAlphaPipeline"
    for a, b in zip(pipe.transformer.parameters(), dit_pipe.transformer.parameters()):
        assert a.dtype == torch.float32 and torch.equal(a, b.half().float())
    unet_model = load_scene_model(settings.EMBEDDED_MODEL)  # a pipeline folder loads as it is
    assert type(unet_model).__name__ == "StableDiffusionPipeline"
    assert torch.equal(pipe.vae.encoder.conv_in.weight, unet_model.vae.encoder.conv_in.weight)
