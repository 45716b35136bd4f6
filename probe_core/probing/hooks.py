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

Transformer denoisers are read the same way: a layer is a block's attention module (PixArt
`transformer_blocks.N.attn1`; SD3 and FLUX `transformer_blocks.N.attn`, FLUX's single-stream
`single_transformer_blocks.N.attn`) and `site="block"` its block. Joint text-image modules
return (text, image) pairs; only the image tokens, (B, HW, C) in the latent grid's row-major
order, are captured or edited.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

SELF_ATTENTION_SUFFIX = ".attn1"
PAPER_SUFFIX = ".attn1.to_out.0"  # the authors' name for the same tensor

EditFn = Callable[[torch.Tensor, str], torch.Tensor]  # (output (B, HW, C), layer) -> output
SITES = ("attn1", "block")  # what a layer name reads: its self-attention output, or its block's
# a transformer block's joint attention (SD3, FLUX): its own name ends in ".attn"
JOINT_ATTENTION = re.compile(r"^(single_)?transformer_blocks\.\d+\.attn$")
_ORDER = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2, "transformer_blocks": 3,
          "single_transformer_blocks": 4}


def _is_layer_name(name: str) -> bool:
    return name.endswith(SELF_ATTENTION_SUFFIX) or bool(JOINT_ATTENTION.match(name))


def self_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Dotted names of every self-attention module, in the order the forward pass runs them
    (down blocks, mid block, up blocks; diffusers registers up_blocks before mid_block).

    SD v1.x gives 16: down_blocks.0-2 (2 each), mid_block (1), up_blocks.1-3 (3 each)."""
    names = [name for name, _ in unet.named_modules() if _is_layer_name(name)]
    return sorted(names, key=lambda n: (_ORDER.get(n.split(".")[0], 5),
                                        [int(p) for p in n.split(".") if p.isdigit()]))


def layer_width(unet: torch.nn.Module, name: str) -> int:
    """C of a layer's image tokens (B, HW, C): its attention's output width (FLUX's
    single-stream attention has no output projection: its query width)."""
    module = unet.get_submodule(name)
    out = getattr(module, "to_out", None)
    return out[0].out_features if out is not None else module.to_q.out_features


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
    if not _is_layer_name(name):
        return False
    try:
        unet.get_submodule(name)
    except AttributeError:
        return False
    return True


def _module(unet: torch.nn.Module, name: str, site: str = "attn1") -> torch.nn.Module:
    if site not in SITES:
        raise ValueError(f"unknown probe site {site!r}; sites are {SITES}")
    return unet.get_submodule(name if site == "attn1" else name.rsplit(".", 1)[0])


def _attach(unet: torch.nn.Module, name: str, site: str, on_image) -> list:
    """Hook `name` at `site` so that `on_image(image)` sees its image tokens (B, HW, C) on
    every forward pass; what it returns (or None: unchanged) replaces them. Joint blocks
    return (text, image), joint attention (image, text); a single-stream block's attention
    runs over [text; image] tokens, whose text length its block's input tells."""
    module = _module(unet, name, site)
    handles, text = [], {}
    mixed = site == "attn1" and name.startswith("single_")
    if mixed:
        def remember_text(block, args, kwargs):
            words = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
            text["length"] = words.shape[1]
        handles.append(unet.get_submodule(name.rsplit(".", 1)[0]).register_forward_pre_hook(
            remember_text, with_kwargs=True))

    def hook(mod, args, output):
        index = None if torch.is_tensor(output) else (
            1 if type(mod).__name__.endswith("TransformerBlock") else 0)
        whole = output if index is None else output[index]
        cut = text["length"] if mixed else 0
        new = on_image(whole[:, cut:])
        if new is None:
            return None
        if cut:
            new = torch.cat([whole[:, :cut], new], dim=1)
        return new if index is None else tuple(
            new if k == index else part for k, part in enumerate(output))

    handles.append(module.register_forward_hook(hook))
    return handles


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
        def record(image):
            rows = image[_conditional(image, conditional_only)]
            store[name] = rows.detach() if detach else rows

        return record

    try:
        for name in names:
            handles += _attach(unet, name, site, make_hook(name))
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
        def replace(image):
            rows = _conditional(image, conditional_only)
            new = fn(image[rows], name)
            if new.shape != image[rows].shape:
                raise ValueError(f"edit of {name} changed shape {tuple(image[rows].shape)} "
                                 f"-> {tuple(new.shape)}")
            out = image.clone()
            out[rows] = new.to(image.dtype)
            return out

        return replace

    try:
        for name in names:
            handles += _attach(unet, name, site, make_hook(name))
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
