"""The paper's activation edit as one layer's optimisation: Adam on a (HW, C) activation to lower a
linear probe's loss against a token target, with no autograd and no host synchronisation per
iteration.

    >>> a, first, final = optimise_toward_probe("depth", weight, acts, target, lr=0.05,
    ...                                         iterations=32)
    >>> a.shape, float(first), float(final)    # (HW, C), loss before, loss after

The loss of a linear probe has a closed-form gradient, so an iteration is a few matrix-vector
kernels. The stopping rule (stop once the loss stops falling: loss > 0.999 x the previous one) is
evaluated on the device every iteration; a stopped optimisation freezes its activation, so the
result equals checking the rule on the host each time, and the host looks at the flag only every
`check_every` iterations to end the loop early.

On CUDA each run of `check_every` iterations is captured once as a CUDA graph (per shape, task,
step size and chunk) and replayed: the same kernels, launched at once instead of one by one.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F

BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, as the paper's code used
EPS = 1e-8
STOP_RATIO = 0.999  # the loss must fall below this share of the previous one to go on


def loss_and_grad(task: str, weight: torch.Tensor, acts: torch.Tensor, target: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The probe loss of (HW, C) float32 activations against a (HW,) token target, and its
    gradient (HW, C). depth: mean squared error of the (1, C) probe; saliency: cross-entropy of
    the (2, C) probe's foreground logit margin against the foreground fraction."""
    n = acts.shape[0]
    if task == "depth":
        w = weight[0]  # (C,)
        residual = acts @ w - target  # (HW,)
        return residual.pow(2).mean(), torch.outer(residual * (2.0 / n), w)
    w = weight[1] - weight[0]  # (C,) the foreground logit margin
    margin = acts @ w  # (HW,)
    loss = F.binary_cross_entropy_with_logits(margin, target)
    return loss, torch.outer((torch.sigmoid(margin) - target) / n, w)


class AdamState:
    """One optimisation's tensors, updated in place (so that a CUDA graph can replay it)."""

    def __init__(self, acts: torch.Tensor, weight: torch.Tensor, target: torch.Tensor):
        self.a = torch.empty(acts.shape, dtype=torch.float32, device=acts.device)  # (HW, C)
        self.m, self.v = torch.empty_like(self.a), torch.empty_like(self.a)
        self.weight = torch.empty(weight.shape, dtype=torch.float32, device=acts.device)
        self.target = torch.empty(target.shape, dtype=torch.float32, device=acts.device)
        self.going = torch.empty((), dtype=torch.bool, device=acts.device)
        self.first = torch.empty((), dtype=torch.float32, device=acts.device)
        self.previous = torch.empty_like(self.first)
        self.load(acts, weight, target)

    def load(self, acts, weight, target) -> None:
        self.a.copy_(acts)
        self.weight.copy_(weight)
        self.target.copy_(target)
        self.m.zero_()
        self.v.zero_()
        self.going.fill_(True)

    def iterate(self, task: str, k: int, lr: float) -> None:
        """Iteration k (0-based): read the loss, apply the stopping rule, take Adam's step
        (torch.optim.Adam's update) unless stopped."""
        loss, grad = loss_and_grad(task, self.weight, self.a, self.target)
        if k == 0:
            self.first.copy_(loss)
        else:
            self.going.logical_and_(loss <= self.previous * STOP_RATIO)
        self.previous.copy_(loss)
        step = k + 1
        self.m.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
        self.v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
        denom = (self.v.sqrt() / (1 - BETAS[1] ** step) ** 0.5).add_(EPS)
        moved = self.a.addcdiv(self.m, denom, value=-lr / (1 - BETAS[0] ** step))
        self.a.copy_(torch.where(self.going, moved, self.a))


class GraphedAdam:
    """The chunks of one (shape, task, step size, schedule) optimisation as CUDA graphs."""

    def __init__(self, task: str, lr: float, iterations: int, check_every: int):
        self.task, self.lr = task, lr
        self.chunks = [range(s, min(s + check_every, iterations))
                       for s in range(0, iterations, check_every)]
        self.graphs: list[torch.cuda.CUDAGraph] = []
        self.state: AdamState | None = None
        self.error: str | None = None

    def _capture(self, acts, weight, target) -> None:
        self.state = AdamState(acts, weight, target)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: cuBLAS and the allocator see these shapes
            for k in self.chunks[0]:
                self.state.iterate(self.task, k, self.lr)
        torch.cuda.current_stream().wait_stream(side)
        pool = None
        for chunk in self.chunks:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):  # chunks run one at a time: one pool
                for k in chunk:
                    self.state.iterate(self.task, k, self.lr)
            pool = graph.pool()
            self.graphs.append(graph)

    def run(self, acts, weight, target) -> AdamState:
        if not self.graphs:
            self._capture(acts, weight, target)
        state = self.state
        state.load(acts, weight, target)
        for j, graph in enumerate(self.graphs):
            graph.replay()
            if j + 1 < len(self.graphs) and not bool(state.going):
                break  # the one host synchronisation per chunk
        return state


_GRAPHED: "OrderedDict[tuple, GraphedAdam]" = OrderedDict()
MAX_GRAPHED = 16  # optimisations kept captured (a step size is part of the key: bound them)


def optimise_toward_probe(task: str, weight: torch.Tensor, acts: torch.Tensor,
                          target: torch.Tensor, lr: float, iterations: int, check_every: int = 8,
                          cuda_graph: bool | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam (torch.optim.Adam's update, default betas) on `acts` (HW, C) for at most
    `iterations` steps, stopping once the loss stops falling. Returns (the activation (HW, C)
    float32, the loss before, the loss after), the losses as device scalars. On CUDA the
    iterations replay from CUDA graphs unless `cuda_graph` is False."""
    weight = weight.to(acts.device, torch.float32)
    target = target.to(acts.device, torch.float32)
    if iterations <= 0:
        loss, _ = loss_and_grad(task, weight, acts.float(), target)
        return acts.float().clone(), loss.detach(), loss.detach()
    state = None
    if acts.is_cuda and cuda_graph is not False:
        key = (tuple(acts.shape), tuple(weight.shape), str(acts.device), task, float(lr),
               iterations, check_every)
        runner = _GRAPHED.pop(key, None) or GraphedAdam(task, lr, iterations, check_every)
        _GRAPHED[key] = runner  # the most recently used last
        while len(_GRAPHED) > MAX_GRAPHED:
            _GRAPHED.popitem(last=False)
        if runner.error is None:
            try:
                state = runner.run(acts, weight, target)
            except RuntimeError as err:  # capture failed: say why, run eagerly from now on
                runner.error = f"{type(err).__name__}: {str(err)[:300]}"
                state = None
    if state is None:
        state = AdamState(acts, weight, target)
        for k in range(iterations):
            state.iterate(task, k, lr)
            if (k + 1) % check_every == 0 and k + 1 < iterations and not bool(state.going):
                break  # the one host synchronisation, every `check_every` iterations
    final, _ = loss_and_grad(task, state.weight, state.a, state.target)
    return state.a.clone(), state.first.clone(), final.detach()


def graph_errors() -> list[str]:
    """Why any optimisation's graph capture failed (it then ran eagerly)."""
    return [r.error for r in _GRAPHED.values() if r.error]
