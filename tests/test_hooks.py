import pytest
import torch

from probe_core.probing.hooks import capture, edit, resolve_layers, self_attention_layers, token_grid
from tests.helpers import SD_V1_LAYERS


def _forward(unet, batch=2):
    torch.manual_seed(1)
    x = torch.randn(batch, 4, 16, 16)
    emb = torch.randn(batch, 5, unet.config.cross_attention_dim)
    with torch.no_grad():
        return unet(x, 500, encoder_hidden_states=emb).sample


def test_sd_shaped_unet_lists_the_16_paper_layers_in_forward_order(tiny_sd_unet):
    assert self_attention_layers(tiny_sd_unet) == SD_V1_LAYERS


def test_unknown_layer_raises_lookup_error_listing_valid_names(tiny_sd_unet):
    with pytest.raises(LookupError, match="down_blocks.0.attentions.0.transformer_blocks.0.attn1"):
        resolve_layers(tiny_sd_unet, ["down_blocks.9.attentions.0.transformer_blocks.0.attn1"])
    # modules that exist but are not self-attention are refused too
    for other in ("down_blocks.0.attentions.0.transformer_blocks.0.attn2",
                  "down_blocks.0.attentions.0.transformer_blocks.0", "down_blocks.0.attn1"):
        with pytest.raises(LookupError, match="valid layers"):
            resolve_layers(tiny_sd_unet, [other])
    # the paper's spelling of the same tensor is accepted
    paper = "up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_out.0"
    assert resolve_layers(tiny_sd_unet, [paper]) == [paper[: -len(".to_out.0")]]


def test_capture_shapes_conditional_half(tiny_sd_unet):
    with capture(tiny_sd_unet) as acts:
        _forward(tiny_sd_unet, batch=2)
    assert set(acts) == set(SD_V1_LAYERS)
    with capture(tiny_sd_unet, conditional_only=False) as both:
        _forward(tiny_sd_unet, batch=2)
    for name in SD_V1_LAYERS:  # the conditional half is the second row of [uncond, cond]
        assert torch.equal(acts[name], both[name][1:])
        assert not torch.equal(acts[name], both[name][:1])
    channels = {"down_blocks.0": 32, "down_blocks.1": 32, "down_blocks.2": 64, "mid_block": 64,
                "up_blocks.1": 64, "up_blocks.2": 32, "up_blocks.3": 32}
    for name, a in acts.items():
        block = ".".join(name.split(".")[:2]) if not name.startswith("mid") else "mid_block"
        assert a.shape[0] == 1 and a.shape[2] == channels[block]
        h, w = token_grid(a.shape[1], (16, 16))
        assert h == w and h in (16, 8, 4, 2)
    assert token_grid(acts[SD_V1_LAYERS[0]].shape[1], (16, 16)) == (16, 16)
    assert token_grid(acts["mid_block.attentions.0.transformer_blocks.0.attn1"].shape[1],
                      (16, 16)) == (2, 2)


def test_capture_is_read_only_and_hooks_are_removed(tiny_sd_unet):
    plain = _forward(tiny_sd_unet)
    with capture(tiny_sd_unet):
        probed = _forward(tiny_sd_unet)
    assert torch.equal(plain, probed)
    assert all(not m._forward_hooks for m in tiny_sd_unet.modules())


def test_edit_that_zeroes_a_layer_changes_only_the_conditional_output(tiny_sd_unet):
    plain = _forward(tiny_sd_unet)
    layer = SD_V1_LAYERS[0]
    seen = []

    def zero(out, name):
        seen.append((name, tuple(out.shape)))
        return torch.zeros_like(out)

    with edit(tiny_sd_unet, zero, [layer]):
        edited = _forward(tiny_sd_unet)
    assert seen == [(layer, (1, 256, 32))]
    assert torch.equal(plain[0], edited[0])  # unconditional half untouched
    assert not torch.allclose(plain[1], edited[1])
    assert all(not m._forward_hooks for m in tiny_sd_unet.modules())


def test_edit_must_keep_the_shape(tiny_sd_unet):
    with pytest.raises(ValueError, match="changed shape"):
        with edit(tiny_sd_unet, lambda out, name: out[:, :1], [SD_V1_LAYERS[0]]):
            _forward(tiny_sd_unet)
    assert all(not m._forward_hooks for m in tiny_sd_unet.modules())


def test_block_site_reads_and_edits_the_transformer_blocks_output(tiny_sd_unet):
    from probe_core.probing.hooks import capture, edit

    unet = tiny_sd_unet
    layer = SD_V1_LAYERS[0]
    x, emb = torch.randn(2, 4, 16, 16), torch.randn(2, 77, 32)
    with capture(unet, [layer], site="block") as blk, capture(unet, [layer]) as att:
        base = unet(x, 10, encoder_hidden_states=emb).sample
    assert blk[layer].shape == att[layer].shape == (1, 256, 32)
    assert not torch.allclose(blk[layer], att[layer])  # the residual stream, not attn1
    with edit(unet, lambda out, name: out * 0, [layer], site="block"):
        edited = unet(x, 10, encoder_hidden_states=emb).sample
    assert not torch.allclose(edited, base)
    with pytest.raises(ValueError, match="unknown probe site"):
        with capture(unet, [layer], site="ffn"):
            pass
