"""The UNet call of a denoising step, captured once as a CUDA graph and replayed, with the capture
of chosen layers' outputs inside the graph.

    >>> runner = graphed_unet(pipe.unet, layers, site="attn1", conditional_only=True)
    >>> noise_pred, acts = runner(model_input, t, prompt_embeds)   # acts[layer]: (1, HW, C)

At SD size a step is bound by kernel launches (about 850 a UNet call), not by the GPU's work; a
replay launches them all at once. The graph runs the same kernels on the same inputs, so its
output equals the eager call's. Capture hooks are part of the graph: each copies its layer's
output (the conditional half) into a fixed buffer, and after a replay one conversion to float32
makes the step's activations. Edit hooks are not: a step that edits runs eagerly.

A graph is kept per UNet and per (input shapes and dtypes, captured layers, site); if capture
fails, the runner says why (`error`) and the caller runs eagerly.
"""

from __future__ import annotations

import weakref

import torch

from .hooks import _conditional, _module

_GRAPHS: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()
WARMUP_CALLS = 2  # eager calls on a side stream before capture (cuBLAS and allocator setup)


class GraphedUNet:
    """One captured UNet call (see the module doc)."""

    def __init__(self, unet: torch.nn.Module, layers: tuple[str, ...], site: str,
                 conditional_only: bool):
        self.unet, self.layers, self.site = unet, layers, site
        self.conditional_only = conditional_only
        self.graph: torch.cuda.CUDAGraph | None = None
        self.error: str | None = (None if not any(hasattr(m, "_hf_hook") for m in unet.modules())
                                  else "the UNet has offloading hooks that move its weights")

    def _forward(self):
        return self.unet(self.sample, self.t, encoder_hidden_states=self.embeds,
                         return_dict=False)[0]

    def _capture(self, sample, t, embeds) -> None:
        self.sample, self.embeds = sample.clone(), embeds.clone()
        self.t = (t.clone() if torch.is_tensor(t) else torch.tensor(t, device=sample.device))
        shapes: dict[str, torch.Size] = {}

        def measure(name):
            def hook(module, args, output):
                shapes[name] = output[_conditional(output, self.conditional_only)].shape
            return hook

        handles = [_module(self.unet, n, self.site).register_forward_hook(measure(n))
                   for n in self.layers]
        try:
            with torch.no_grad():
                self._forward()
        finally:
            for h in handles:
                h.remove()
        # one flat buffer for every captured layer: a single conversion reads them all
        total = sum(s.numel() for s in shapes.values())
        self.flat = torch.empty(total, dtype=sample.dtype, device=sample.device)
        self.views, offset = {}, 0
        for name in self.layers:
            n = shapes[name].numel()
            self.views[name] = (offset, shapes[name])
            offset += n

        def copy_into(name):
            offset, shape = self.views[name]

            def hook(module, args, output):
                rows = output[_conditional(output, self.conditional_only)]
                self.flat[offset: offset + rows.numel()].view(shape).copy_(rows)
            return hook

        handles = [_module(self.unet, n, self.site).register_forward_hook(copy_into(n))
                   for n in self.layers]
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(WARMUP_CALLS):
                    self._forward()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.no_grad():
                self.out = self._forward()
            self.graph = graph
        finally:
            for h in handles:
                h.remove()

    def __call__(self, sample: torch.Tensor, t, embeds: torch.Tensor
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(noise prediction (B, 4, h, w), {layer: (B', HW, C) float32}) for this call."""
        if self.graph is None:
            self._capture(sample, t, embeds)
        self.sample.copy_(sample)
        self.embeds.copy_(embeds)
        if torch.is_tensor(t):
            self.t.copy_(t)
        else:
            self.t.fill_(t)
        self.graph.replay()
        acts = {}
        if self.layers:
            # a new tensor (also when the buffer is float32 already): the next replay
            # overwrites the buffer
            flat = self.flat.to(torch.float32, copy=True)
            for name, (offset, shape) in self.views.items():
                acts[name] = flat[offset: offset + shape.numel()].view(shape)
        return self.out.clone(), acts


def graphed_unet(unet: torch.nn.Module, sample: torch.Tensor, t, embeds: torch.Tensor,
                 layers: list[str], site: str, conditional_only: bool) -> GraphedUNet:
    """The runner for these inputs' shapes and dtypes, made once per UNet."""
    key = (tuple(sample.shape), sample.dtype, str(sample.device), tuple(embeds.shape),
           embeds.dtype, torch.is_tensor(t) and t.dtype, tuple(layers), site, conditional_only)
    per_unet = _GRAPHS.setdefault(unet, {})
    if key not in per_unet:
        per_unet[key] = GraphedUNet(unet, tuple(layers), site, conditional_only)
    return per_unet[key]


def forget_graphs(unet: torch.nn.Module) -> None:
    """Drop the UNet's captured graphs (and their memory pools)."""
    _GRAPHS.pop(unet, None)


def graph_report(unet: torch.nn.Module) -> dict[str, int | list[str]]:
    """How many graphs the UNet has captured, and why any capture failed."""
    runners = list(_GRAPHS.get(unet, {}).values())
    return {"captured": sum(r.graph is not None for r in runners),
            "errors": [r.error for r in runners if r.error]}
