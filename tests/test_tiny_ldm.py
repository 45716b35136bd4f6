import json

import numpy as np
import pytest
import torch

from probe_core.world.scenes import caption_vocabulary, render_scene, sample_scene
from probe_core.world.tiny_ldm import (UnknownWordsError, build_pipeline, build_scheduler, build_tokenizer,
                                 check_prompt, generate, load_pipeline, save_pipeline,
                                 shifted_betas, unknown_words)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(caption_vocabulary(), max_length=24)


def test_tokenizer_round_trip_on_captions(tokenizer):
    for seed in range(20):
        caption = render_scene(sample_scene(seed), size=16).caption
        ids = tokenizer(caption).input_ids
        assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == caption
        assert len(ids) <= tokenizer.model_max_length


def test_unknown_words_are_named_with_the_vocabulary(tokenizer):
    assert unknown_words(tokenizer, "A Red dragon, on a gray floor") == ["dragon", ","]
    with pytest.raises(UnknownWordsError) as err:
        check_prompt(tokenizer, "a red dragon and a unicorn")
    msg = str(err.value)
    assert "dragon" in msg and "unicorn" in msg and "sphere" in msg and "checkered" in msg
    with pytest.warns(UserWarning, match="dragon"):
        check_prompt(tokenizer, "a red dragon", strict=False)


def test_empty_prompt_is_fine_and_long_prompt_is_refused(tokenizer):
    check_prompt(tokenizer, "")
    assert tokenizer("").input_ids == [tokenizer.bos_token_id, tokenizer.eos_token_id]
    with pytest.raises(ValueError, match="at most 24"):
        check_prompt(tokenizer, " ".join(["red"] * 30))


def test_untrained_pipeline_saves_and_reloads_offline(tiny_cfg, tmp_path):
    torch.manual_seed(0)
    pipe = build_pipeline(tiny_cfg)
    pipe.set_progress_bar_config(disable=True)
    before = generate(pipe, "a red sphere on a gray plain floor", seed=3, num_inference_steps=3)
    save_pipeline(pipe, tmp_path / "p", tiny_cfg)
    assert json.loads((tmp_path / "p" / "model_index.json").read_text())["tokenizer"][1] == \
        "PreTrainedTokenizerFast"
    assert list((tmp_path / "p" / "unet").glob("*.safetensors"))
    from diffusers import StableDiffusionPipeline

    again = StableDiffusionPipeline.from_pretrained(tmp_path / "p")
    again.set_progress_bar_config(disable=True)
    after = generate(again, "a red sphere on a gray plain floor", seed=3, num_inference_steps=3)
    assert before.shape == (32, 32, 3)
    np.testing.assert_array_equal(before, after)
    # the empty prompt runs (unconditional), an unknown word is refused before any compute
    generate(again, "", seed=1, num_inference_steps=2)
    with pytest.raises(UnknownWordsError, match="dragon"):
        generate(again, "a dragon", seed=1, num_inference_steps=2)


def test_load_pipeline_reports_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_pipeline(tmp_path / "nothing")


def _snr(scheduler) -> torch.Tensor:
    a = scheduler.alphas_cumprod.double()  # (T,)
    return a / (1 - a)


def test_the_unshifted_schedule_is_sds_and_a_shift_divides_every_snr():
    from diffusers import DDIMScheduler

    sd = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    torch.testing.assert_close(shifted_betas(1.0).float(), sd.betas, rtol=1e-5, atol=1e-7)
    ratio = _snr(build_scheduler()) / _snr(build_scheduler(16.0))
    torch.testing.assert_close(ratio, torch.full_like(ratio, 16.0), rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="snr_shift must be positive"):
        shifted_betas(0.0)


def test_a_shifted_model_keeps_its_schedule_through_save_and_load(tiny_cfg, tmp_path):
    from dataclasses import replace

    cfg = replace(tiny_cfg, snr_shift=16.0)
    save_pipeline(build_pipeline(cfg), tmp_path / "p", cfg)
    again = load_pipeline(tmp_path / "p")
    torch.testing.assert_close(_snr(again.scheduler), _snr(build_scheduler(16.0)))
    assert json.loads((tmp_path / "p" / "tiny_ldm.json").read_text())["config"]["snr_shift"] == 16


def test_many_unknown_words_are_named_in_a_bounded_message():
    tok = build_tokenizer(["red", "sphere"])
    many = " ".join(f"w{k}" for k in range(40_000))
    found = unknown_words(tok, many + " red w7")
    assert found[:3] == ["w0", "w1", "w2"] and len(found) == 40_000  # in order, no repeats
    with pytest.raises(UnknownWordsError) as err:
        check_prompt(tok, many)
    assert "and 39990 more" in str(err.value) and len(str(err.value)) < 1000
