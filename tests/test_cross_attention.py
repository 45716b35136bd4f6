"""Per-word cross-attention maps (probe_core/probing/cross_attention.py): read only, equal to an
explicit softmax(QK^T * scale), through denoise and stream_run, and word positions for word-level
and CLIP BPE tokenizers."""

import json

import numpy as np
import pytest
import torch

from probe_core import settings
from probe_core.probing.cross_attention import (capture_word_attention, cross_attention_layers,
                                                word_maps, word_tokens)
from probe_core.probing.denoise import DenoiseSettings, denoise
from tests.helpers import PROMPT, SD_V1_LAYERS


@pytest.fixture(scope="module")
def embedded_pipe():
    from probe_core.world.tiny_ldm import load_pipeline

    pipe = load_pipeline(settings.EMBEDDED_MODEL)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _inputs(unet, batch=2, size=16, tokens=7):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 4, size, size, generator=g)
    emb = torch.randn(batch, tokens, unet.config.cross_attention_dim, generator=g)
    return x, emb


def _forward(unet, x, emb):
    with torch.no_grad():
        return unet(x, 500, encoder_hidden_states=emb).sample


class ExplicitProcessor:
    """Cross-attention written out: softmax(q k^T * scale) @ v, keeping the probabilities
    (B, heads, HW, L)."""

    def __init__(self):
        self.probs = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None,
                 temb=None):
        b = hidden_states.shape[0]
        q, k, v = (attn.to_q(hidden_states), attn.to_k(encoder_hidden_states),
                   attn.to_v(encoder_hidden_states))
        q, k, v = (t.view(b, -1, attn.heads, t.shape[-1] // attn.heads).transpose(1, 2)
                   for t in (q, k, v))
        self.probs = torch.softmax(q @ k.transpose(-1, -2) * attn.scale, dim=-1)
        out = (self.probs @ v).transpose(1, 2).reshape(b, -1, attn.heads * v.shape[-1])
        return attn.to_out[1](attn.to_out[0](out))


def test_sd_shaped_unet_lists_its_16_cross_attention_layers_in_forward_order(tiny_sd_unet):
    assert cross_attention_layers(tiny_sd_unet) == [n[:-1] + "2" for n in SD_V1_LAYERS]


@pytest.mark.parametrize("model", ["embedded", "tiny_sd"])
def test_capture_leaves_the_unet_output_bit_identical(model, embedded_pipe, tiny_sd_unet):
    unet = embedded_pipe.unet if model == "embedded" else tiny_sd_unet
    x, emb = _inputs(unet)
    plain = _forward(unet, x, emb)
    with capture_word_attention(unet) as attention:
        probed = _forward(unet, x, emb)
        maps = attention.maps()
    assert torch.equal(plain, probed)
    assert all(not m._forward_pre_hooks for m in unet.modules())  # hooks gone
    assert maps.shape == (7, 16, 16) and maps.dtype == torch.float32
    # every pixel's map is a mean of distributions over the 7 tokens
    torch.testing.assert_close(maps.sum(0), torch.ones(16, 16), atol=1e-5, rtol=0)
    assert attention.probs == {}  # maps() starts afresh


@pytest.mark.parametrize("model", ["embedded", "tiny_sd"])
def test_recorded_probabilities_equal_an_explicit_softmax(model, embedded_pipe, tiny_sd_unet):
    unet = embedded_pipe.unet if model == "embedded" else tiny_sd_unet
    layers = cross_attention_layers(unet)
    saved = {name: unet.get_submodule(name).processor for name in layers}
    explicit = {name: ExplicitProcessor() for name in layers}
    x, emb = _inputs(unet)
    try:
        for name in layers:
            unet.get_submodule(name).set_processor(explicit[name])
        with capture_word_attention(unet) as attention:
            _forward(unet, x, emb)
        with capture_word_attention(unet, layers[:1], conditional_only=False) as both:
            _forward(unet, x, emb)
    finally:
        for name in layers:
            unet.get_submodule(name).set_processor(saved[name])
    assert list(attention.probs) == layers and list(both.probs) == layers[:1]
    for name in layers:
        got, ref = attention.probs[name], explicit[name].probs  # (HW, L), (2, heads, HW, L)
        torch.testing.assert_close(got.sum(-1), torch.ones(got.shape[0]), atol=1e-5, rtol=0)
        torch.testing.assert_close(got, ref[1].mean(0), atol=1e-5, rtol=0)  # the cond half
        assert not torch.allclose(got, ref[0].mean(0), atol=1e-5)
    torch.testing.assert_close(both.probs[layers[0]], explicit[layers[0]].probs.mean((0, 1)),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("guidance", [1.0, 4.0])
def test_denoise_with_word_attention_keeps_the_latents_and_maps_every_step(tiny_pipe, guidance):
    def run(**kw):
        settings = DenoiseSettings(3, guidance, decode_x0=False, **kw)
        return list(denoise(tiny_pipe, PROMPT, settings, torch.Generator().manual_seed(5)))

    plain, mapped = run(), run(word_attention=True)
    assert torch.equal(plain[-1].latents, mapped[-1].latents)
    assert all(s.word_attention is None for s in plain)
    length = tiny_pipe.tokenizer.model_max_length  # the padded prompt
    for s in mapped:
        assert s.word_attention.shape == (length, 8, 8)  # 32x32 images, 8x8 latents
        assert s.word_attention.dtype == torch.float32
        torch.testing.assert_close(s.word_attention.sum(0), torch.ones(8, 8), atol=1e-5, rtol=0)


def test_stream_run_keeps_each_steps_map_on_the_host(tiny_pipe):
    from probe_core.probing.generation import Generation
    from probe_core.serve.runs import RunReaders, stream_run

    def last(word_attention):
        *_, run = stream_run(tiny_pipe, Generation(PROMPT, 3, 3, 4.0),
                             RunReaders(word_attention=word_attention))
        return run

    plain, run = last(False), last(True)
    np.testing.assert_array_equal(plain.image, run.image)
    assert plain.word_attention == [] and len(run.word_attention) == 3
    for m in run.word_attention:
        assert m.dtype == torch.float16 and m.device.type == "cpu" and m.shape[1:] == (8, 8)
    assert all(s.word_attention is None for s in run.steps)  # moved, not kept twice
    assert run.nbytes() - plain.nbytes() == sum(m.numel() * 2 for m in run.word_attention)


def test_word_tokens_of_the_word_level_tokenizer(embedded_pipe):
    tok = embedded_pipe.tokenizer
    words = word_tokens(tok, PROMPT)
    assert words == [(w, [i + 1]) for i, w in enumerate(PROMPT.split())]  # BOS at 0
    ids = tok(PROMPT).input_ids
    assert [ids[p] for _, (p,) in words] == [tok.convert_tokens_to_ids(w) for w in PROMPT.split()]
    # punctuation is a token of its own, kept with its word
    assert word_tokens(tok, "a red sphere, on a floor.") == [
        ("a", [1]), ("red", [2]), ("sphere,", [3, 4]), ("on", [5]), ("a", [6]),
        ("floor.", [7, 8])]
    # truncation: 24 tokens hold BOS, 22 words and EOS
    long = word_tokens(tok, " ".join(["red"] * 30))
    assert len(long) == 22 and long[-1] == ("red", [22])


@pytest.fixture
def clip_tokenizer(tmp_path):
    """A tiny CLIP BPE tokenizer: byte-level characters, a few merges ("red", "check", "ered")."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    merges = ["r e", "re d</w>", "c h", "ch e", "che c", "chec k", "e r", "er e", "ere d</w>"]
    vocab = (chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges]
             + ["<|startoftext|>", "<|endoftext|>"])
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in
                                                     enumerate(dict.fromkeys(vocab))}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer.from_pretrained(tmp_path, model_max_length=12)


def test_word_tokens_of_a_clip_bpe_tokenizer(clip_tokenizer):
    tok = clip_tokenizer
    ids = tok("a red checkered floor.").input_ids
    assert tok.convert_ids_to_tokens(ids) == [
        "<|startoftext|>", "a</w>", "red</w>", "check", "e", "red</w>", "f", "l", "o", "o",
        "r</w>", ".</w>", "<|endoftext|>"]
    assert word_tokens(tok, "a red checkered floor.") == [
        ("a", [1]), ("red", [2]), ("checkered", [3, 4, 5]),
        ("floor.", [6, 7, 8, 9, 10])]  # "." (11) is cut: 12 tokens hold 10 and EOS
    # upper case, repeated spaces, punctuation; the last letter of "floor" falls past the cut
    assert word_tokens(tok, "A  red, checkered floor") == [
        ("A", [1]), ("red,", [2, 3]), ("checkered", [4, 5, 6]), ("floor", [7, 8, 9, 10])]
    assert word_tokens(tok, "a " * 10 + "red") == [("a", [i]) for i in range(1, 11)]


def test_word_maps_sum_positions_upsample_and_scale():
    L, h, w = 5, 4, 4
    m = torch.zeros(L, h, w)
    m[1, 0, 0] = 2.0  # "a": top-left
    m[2, 3, 3], m[3, 3, 3] = 0.25, 0.5  # "box": two tokens, bottom-right
    words = [("a", [1]), ("box", [2, 3]), ("none", [4]), ("cut", [9])]
    maps = word_maps(m, words, image_size=16)
    assert set(maps) == {"a", "box", "none"}  # no position left: left out
    for v in maps.values():
        assert v.shape == (16, 16) and v.dtype == np.float32 and v.min() >= 0 and v.max() <= 1
    assert maps["a"].max() == 1 and maps["box"].max() == 1 and not maps["none"].any()
    assert maps["a"][0, 0] == 1 and maps["a"][-1, -1] == 0
    assert maps["box"][-1, -1] == 1 and maps["box"][0, 0] == 0
    # a word that occurs twice sums both; numpy in, same numbers out
    twice = word_maps(m.numpy(), [("x", [2]), ("x", [3])], 16)["x"]
    np.testing.assert_allclose(twice, maps["box"], atol=1e-6)
    # (steps, L, h, w): the mean over steps
    steps = torch.stack([m, 3 * m.flip(-1)])
    np.testing.assert_allclose(word_maps(steps, words, 16)["a"],
                               word_maps(steps.mean(0), words, 16)["a"], atol=1e-6)
    with pytest.raises(ValueError, match="steps, L, h, w"):
        word_maps(m[0], words, 16)


def _embedded_last_step(pipe, seed=0):
    from probe_core.probing.denoise import decode_latents
    from probe_core.world.labeler import SceneLabeler

    steps = list(denoise(pipe, PROMPT, DenoiseSettings(15, settings.DEFAULT_GUIDANCE,
                                                       decode_x0=False, word_attention=True),
                         torch.Generator().manual_seed(seed)))
    image = decode_latents(pipe, steps[-1].latents)
    _, saliency = SceneLabeler.load(settings.EMBEDDED_LABELER)(image[None])
    mask = saliency[0] > 0.5
    assert 0.02 < mask.mean() < 0.5  # the labeler found the sphere
    return word_maps(steps[-1].word_attention, word_tokens(pipe.tokenizer, PROMPT), 64), mask


@pytest.mark.xfail(strict=True, reason=(
    "measured: on the embedded model the object noun's map is lower on the object than off it "
    "(seed 0: 0.56 inside vs 0.78 outside; the same in 12 of 12 runs over 3 prompts x 4 seeds); "
    "the object shows in the maps of tokens after it (see the next test)"))
def test_the_object_nouns_map_falls_on_the_labelers_object(embedded_pipe):
    maps, mask = _embedded_last_step(embedded_pipe)
    sphere = maps["sphere"]
    assert sphere[mask].mean() > sphere[~mask].mean()  # a uniform map gives equal means


def test_the_maps_are_aligned_with_the_image(embedded_pipe):
    """What the embedded model does instead (found by looking, so a record, not a prediction):
    the object stands out in the map of "gray", a later token that has seen the whole object
    phrase (the text encoder is causal). Checks that the maps sit on the image's grid: a
    transposed or shifted map would miss the object, which is off-centre."""
    maps, mask = _embedded_last_step(embedded_pipe)
    gray = maps["gray"]
    assert gray[mask].mean() > 2 * gray[~mask].mean()
    assert gray[mask.T].mean() < gray[mask].mean()  # the object is not symmetric
