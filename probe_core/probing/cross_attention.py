"""Per-word cross-attention maps (DAAM-style): where each word of the prompt looks, read only.

    >>> words = word_tokens(pipe.tokenizer, "a large red sphere on a gray plain floor")
    >>> words[3]                                            # ('sphere', [4]): BOS is position 0
    >>> with capture_word_attention(pipe.unet) as attention:
    ...     pipe.unet(x, t, encoder_hidden_states=emb)      # emb (2, L, D): [uncond, cond]
    ...     step = attention.maps()                         # (L, h, w) on the UNet's device
    >>> maps = word_maps(step, words, image_size=64)        # word -> (64, 64) float32 in [0, 1]

A layer is the `...transformer_blocks.0.attn2` module (cross-attention: image tokens attend to
text tokens). While the context is active a forward pre-hook on each layer recomputes, from the
layer's own inputs, its attention probabilities softmax(q k^T * scale) for the conditional half
of the batch (under classifier-free guidance the batch is [uncond, cond]), averaged over heads:
(HW, L) per layer. The UNet's computation is not touched (the hook returns nothing), so its
output is bit-identical with or without it. `maps()` averages the layers on the latent grid.
`denoise(..., word_attention=True)` gives each step's (L, h, w) map.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .hooks import _conditional, token_grid

CROSS_ATTENTION_SUFFIX = ".attn2"


def _forward_order(name: str):
    """Sort key: down blocks, mid block, up blocks, then the numeric parts of the name (the
    rule of `hooks.self_attention_layers`)."""
    rank = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    return rank.get(name.split(".")[0], 3), [int(p) for p in name.split(".") if p.isdigit()]


def cross_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Dotted names of every cross-attention module (`...attn2`), in forward order.

    SD v1.x gives 16, at the same places as its self-attention layers."""
    names = [n for n, _ in unet.named_modules() if n.endswith(CROSS_ATTENTION_SUFFIX)]
    return sorted(names, key=_forward_order)


def word_tokens(tokenizer, prompt: str) -> list[tuple[str, list[int]]]:
    """Each whitespace-separated word of `prompt` with the positions of its tokens in the
    encoded prompt (`tokenizer(prompt).input_ids`, BOS at position 0).

    Each word is tokenized alone (no special tokens) and its tokens are matched in order against
    the prompt's ids, so a word split by BPE ("checkered" -> "check", "ered") or carrying
    punctuation ("floor." -> "floor", ".") gets all of its positions. Positions cut off by
    truncation to the tokenizer's max length are dropped; a word left with none is left out."""
    ids = tokenizer(prompt).input_ids
    kept = tokenizer(prompt, truncation=True).input_ids  # what the text encoder sees
    out: list[tuple[str, list[int]]] = []
    cursor = 1 if ids and ids[0] == tokenizer.bos_token_id else 0
    for word in prompt.split():
        own = tokenizer(word, add_special_tokens=False).input_ids
        n = len(own)
        start = next((s for s in range(cursor, len(ids) - n + 1) if ids[s: s + n] == own), None)
        if not n or start is None:  # tokenized differently in context: no reliable positions
            continue
        cursor = start + n
        positions = [p for p in range(start, start + n) if p < len(kept) and kept[p] == ids[p]]
        if positions:
            out.append((word, positions))
    return out


def _attention_probs(attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor,
                     attention_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, HW, L) attention probabilities averaged over heads, computed as diffusers'
    `AttnProcessor2_0` computes them (in float32)."""
    h = hidden_states
    if h.ndim == 4:  # (B, C, H, W) -> (B, HW, C)
        h = h.flatten(2).transpose(1, 2)
    b = h.shape[0]
    if attn.group_norm is not None:
        h = attn.group_norm(h.transpose(1, 2)).transpose(1, 2)
    q = attn.to_q(h)
    enc = (attn.norm_encoder_hidden_states(encoder_hidden_states) if attn.norm_cross
           else encoder_hidden_states)
    k = attn.to_k(enc)
    head_dim = k.shape[-1] // attn.heads
    q = q.view(b, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, HW, d)
    k = k.view(b, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, L, d)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    scores = (q.float() @ k.float().transpose(-1, -2)) * attn.scale  # (B, heads, HW, L)
    if attention_mask is not None:
        mask = attn.prepare_attention_mask(attention_mask, k.shape[2], b)
        scores = scores + mask.view(b, attn.heads, -1, mask.shape[-1]).float()
    return scores.softmax(-1).mean(1)


class WordAttention:
    """What `capture_word_attention` yields. `probs[layer]` holds the layer's latest (HW, L)
    head-averaged probabilities (the mean over the recorded rows of the batch); `maps()` turns
    them into one (L, h, w) map and starts afresh."""

    def __init__(self, layers: list[str]):
        self.layers = layers
        self.probs: dict[str, torch.Tensor] = {}  # layer -> (HW, L) float32
        self.latent_hw: tuple[int, int] | None = None  # the UNet input's (h, w)

    def maps(self) -> torch.Tensor:
        """(L, h, w) float32 on the UNet's device: the mean over recorded layers of each layer's
        map on its token grid, upsampled bilinearly to the largest grid (the latent's)."""
        if not self.probs:
            raise RuntimeError("no cross-attention recorded: run the UNet inside the context")
        by_grid: dict[tuple[int, int], torch.Tensor] = {}  # one upsampling per grid size
        for p in self.probs.values():
            grid = token_grid(p.shape[0], self.latent_hw)
            by_grid[grid] = by_grid[grid] + p if grid in by_grid else p
        size = max(by_grid, key=lambda g: g[0] * g[1])
        total = None
        for (h, w), p in by_grid.items():
            m = p.T.reshape(1, -1, h, w)  # (1, L, h, w)
            if (h, w) != size:
                m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            total = m if total is None else total + m
        n = len(self.probs)
        self.probs = {}
        return total[0] / n


@contextmanager
def capture_word_attention(unet: torch.nn.Module, layers: list[str] | None = None,
                           conditional_only: bool = True) -> Iterator[WordAttention]:
    """Record the cross-attention probabilities of `layers` (None: all) on every UNet forward,
    without changing what the UNet computes. Hooks exist only inside the `with` block."""
    names = cross_attention_layers(unet) if layers is None else list(layers)
    record = WordAttention(names)

    def on_unet(module, args, kwargs):
        sample = args[0] if args else kwargs.get("sample", kwargs.get("hidden_states"))
        record.latent_hw = tuple(sample.shape[-2:])

    def make_hook(name):
        def hook(attn, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            enc = args[1] if len(args) > 1 else kwargs.get("encoder_hidden_states")
            if enc is None:  # used as self-attention: nothing to record
                return
            mask = args[2] if len(args) > 2 else kwargs.get("attention_mask")
            rows = _conditional(hidden, conditional_only)
            with torch.no_grad():
                probs = _attention_probs(attn, hidden[rows], enc[rows],
                                         mask[rows] if mask is not None else None)
            record.probs[name] = probs.mean(0)  # (HW, L)

        return hook

    handles = []
    try:
        handles.append(unet.register_forward_pre_hook(on_unet, with_kwargs=True))
        for name in names:
            module = unet.get_submodule(name)
            handles.append(module.register_forward_pre_hook(make_hook(name), with_kwargs=True))
        yield record
    finally:
        for h in handles:
            h.remove()


def word_maps(step_maps: torch.Tensor | np.ndarray, words: list[tuple[str, list[int]]],
              image_size: int) -> dict[str, np.ndarray]:
    """Each word's (image_size, image_size) float32 map, scaled to [0, 1] by its maximum.

    step_maps: (L, h, w), one step's `maps()`, or (steps, L, h, w), averaged over steps.
    A word's map is the sum over its token positions (`word_tokens`; a word that occurs twice
    sums both), upsampled bilinearly; an all-zero map stays zero."""
    m = torch.as_tensor(step_maps).float()
    if m.ndim == 4:
        m = m.mean(0)
    if m.ndim != 3:
        raise ValueError(f"step_maps must be (L, h, w) or (steps, L, h, w); got {tuple(m.shape)}")
    positions: dict[str, list[int]] = {}
    for word, pos in words:
        pos = [p for p in pos if p < m.shape[0]]
        if pos:
            positions.setdefault(word, []).extend(pos)
    if not positions:
        return {}
    per_word = torch.stack([m[pos].sum(0) for pos in positions.values()])  # (n, h, w)
    per_word = F.interpolate(per_word[None], size=(image_size, image_size), mode="bilinear",
                             align_corners=False)[0]
    peak = per_word.amax((1, 2), keepdim=True)
    per_word = torch.where(peak > 0, per_word / peak.clamp_min(1e-30), 0).clamp(0, 1)
    out = per_word.cpu().numpy().astype(np.float32)
    return dict(zip(positions, out))
