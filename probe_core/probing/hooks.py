"""Find a UNet's self-attention layers by name; capture or edit their outputs inside a context.

    >>> layers = self_attention_layers(pipe.unet)        # ['down_blocks.0.attentions.0...attn1', ...]
    >>> with capture(pipe.unet, layers) as acts:
    ...     pipe.unet(x, t, encoder_hidden_states=emb)      # acts[layer] -> (B_cond, HW, C)
    >>> with edit(pipe.unet, lambda out, layer: out * 0, layers[:1]):
    ...     pipe.unet(x, t, encoder_hidden_states=emb)      # that layer's output zeroed

A layer is the `...transformer_blocks.0.attn1` module (self-attention); its output is the
paper's probed tensor: self-attention after the output projection `to_out.0`, before the residual
add, shape (B, HW, C). With `site="block"` the same layer name reads (or edits) the output of the
transformer block that holds it (`...transformer_blocks.0`): the residual stream after
self-attention, cross-attention and the feed-forward, also (B, HW, C). Under classifier-free
guidance the batch is [uncond, cond]; with `conditional_only=True` only the conditional half
is captured or edited. Hooks exist only inside the `with` block.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch

SELF_ATTENTION_SUFFIX = ".attn1"
PAPER_SUFFIX = ".attn1.to_out.0"  # the authors' name for the same tensor

EditFn = Callable[[torch.Tensor, str], torch.Tensor]  # (output (B, HW, C), layer) -> output
SITES = ("attn1", "block")  # what a layer name reads: its self-attention output, or its block's


def self_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Dotted names of every self-attention module, in the order the forward pass runs them
    (down blocks, mid block, up blocks; diffusers registers up_blocks before mid_block).

    SD v1.x gives 16: down_blocks.0-2 (2 each), mid_block (1), up_blocks.1-3 (3 each)."""
    names = [name for name, _ in unet.named_modules() if name.endswith(SELF_ATTENTION_SUFFIX)]
    rank = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}
    return sorted(names, key=lambda n: (rank.get(n.split(".")[0], 3),
                                        [int(p) for p in n.split(".") if p.isdigit()]))


def resolve_layers(unet: torch.nn.Module, layers: list[str] | None) -> list[str]:
    """Normalise names (accepting the paper's `...attn1.to_out.0` spelling) and check them.

    None means all self-attention layers. Unknown names raise LookupError listing valid ones.
    Named layers are checked by looking each one up, not by listing the UNet's modules: `capture`
    and `edit` resolve their layers again each time they are entered, at every denoising step."""
    if layers is None:
        return self_attention_layers(unet)
    out = []
    for name in layers:
        short = name[: -len(".to_out.0")] if name.endswith(PAPER_SUFFIX) else name
        if not _is_self_attention(unet, short):
            raise LookupError(f"no self-attention layer {name!r}; valid layers: "
                              f"{', '.join(self_attention_layers(unet))}")
        out.append(short)
    return out


def _is_self_attention(unet: torch.nn.Module, name: str) -> bool:
    """Whether `name` is the dotted name of a self-attention module of `unet`."""
    if not name.endswith(SELF_ATTENTION_SUFFIX):
        return False
    try:
        unet.get_submodule(name)
    except AttributeError:
        return False
    return True


def _module(unet: torch.nn.Module, name: str, site: str = "attn1") -> torch.nn.Module:
    if site not in SITES:
        raise ValueError(f"unknown probe site {site!r}; sites are {SITES}")
    return unet.get_submodule(name if site == "attn1" else name[: -len(SELF_ATTENTION_SUFFIX)])


def _conditional(out: torch.Tensor, conditional_only: bool) -> slice:
    """The batch rows that hold the conditional half: [uncond, cond] -> the second half."""
    if not conditional_only:
        return slice(None)
    if out.shape[0] % 2:
        raise ValueError(f"conditional_only needs an [uncond, cond] batch; got batch {out.shape[0]}")
    return slice(out.shape[0] // 2, None)


@contextmanager
def capture(unet: torch.nn.Module, layers: list[str] | None = None,
            conditional_only: bool = True, detach: bool = True,
            site: str = "attn1") -> Iterator[dict[str, torch.Tensor]]:
    """Record each layer's output on every forward pass; the dict holds the latest one.

    Values are (B', HW, C) with B' the conditional half when `conditional_only`."""
    names = resolve_layers(unet, layers)
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make_hook(name):
        def hook(module, args, output):
            rows = output[_conditional(output, conditional_only)]
            store[name] = rows.detach() if detach else rows

        return hook

    try:
        for name in names:
            handles.append(_module(unet, name, site).register_forward_hook(make_hook(name)))
        yield store
    finally:
        for h in handles:
            h.remove()


@contextmanager
def edit(unet: torch.nn.Module, fn: EditFn, layers: list[str] | None = None,
         conditional_only: bool = True, site: str = "attn1") -> Iterator[None]:
    """Replace each layer's output (its conditional half when `conditional_only`) with
    `fn(output, layer)`, which must keep the shape. Layers run in forward order, so later layers
    see the effect of earlier edits."""
    names = resolve_layers(unet, layers)
    handles = []

    def make_hook(name):
        def hook(module, args, output):
            rows = _conditional(output, conditional_only)
            new = fn(output[rows], name)
            if new.shape != output[rows].shape:
                raise ValueError(f"edit of {name} changed shape {tuple(output[rows].shape)} "
                                 f"-> {tuple(new.shape)}")
            out = output.clone()
            out[rows] = new.to(output.dtype)
            return out

        return hook

    try:
        for name in names:
            handles.append(_module(unet, name, site).register_forward_hook(make_hook(name)))
        yield
    finally:
        for h in handles:
            h.remove()


def token_grid(n_tokens: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) grid of a layer's HW tokens for latents of size latent_hw (same aspect ratio,
    downsampled by a power of two)."""
    lh, lw = latent_hw
    for k in range(8):
        h, w = lh // 2**k, lw // 2**k
        if h * w == n_tokens:
            return h, w
    raise ValueError(f"{n_tokens} tokens do not tile a {lh}x{lw} latent at any power-of-two scale")
