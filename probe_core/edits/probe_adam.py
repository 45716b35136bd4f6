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
"""

from __future__ import annotations

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


def optimise_toward_probe(task: str, weight: torch.Tensor, acts: torch.Tensor,
                          target: torch.Tensor, lr: float, iterations: int, check_every: int = 8
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam (torch.optim.Adam's update, default betas) on `acts` (HW, C) for at most
    `iterations` steps, stopping once the loss stops falling. Returns (the activation (HW, C)
    float32, the loss before, the loss after) with the losses as device scalars."""
    weight = weight.to(acts.device, torch.float32)
    target = target.to(acts.device, torch.float32)
    a = acts.detach().float().clone()
    m, v = torch.zeros_like(a), torch.zeros_like(a)
    going = torch.ones((), dtype=torch.bool, device=a.device)
    first = previous = None
    for k in range(iterations):
        loss, grad = loss_and_grad(task, weight, a, target)
        if first is None:
            first = loss
        else:
            going = going & (loss <= previous * STOP_RATIO)
        previous = loss
        step = k + 1
        m.mul_(BETAS[0]).add_(grad, alpha=1 - BETAS[0])
        v.mul_(BETAS[1]).addcmul_(grad, grad, value=1 - BETAS[1])
        denom = (v.sqrt() / (1 - BETAS[1] ** step) ** 0.5).add_(EPS)
        a = torch.where(going, a.addcdiv(m, denom, value=-lr / (1 - BETAS[0] ** step)), a)
        if step % check_every == 0 and step < iterations and not bool(going):
            break  # the one host synchronisation, every `check_every` iterations
    final, _ = loss_and_grad(task, weight, a, target)
    if first is None:  # no iterations
        first = final
    return a, first.detach(), final.detach()
