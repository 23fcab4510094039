"""Redirected ReLU gradients, Lucid's cure for units that start dead.

A unit behind a ReLU that is negative for the starting image gets no gradient, so an
objective on it never moves: a single channel's icon stays at zero. Lucid's ``render_vis``
(``redirected_relu_grad``) lets the gradient through such a ReLU for the first steps,
where it would push a negative input up, for the batch elements that no gradient reaches
at all; after those steps every ReLU is a plain ReLU again. The forward pass is never
changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn


class _RedirectedReLU(torch.autograd.Function):
    """``relu(x)`` whose gradient, for a batch element that the plain ReLU gradient does not
    reach anywhere, also flows where it would raise a negative ``x``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        plain = torch.where(x > 0, grad, torch.zeros_like(grad))
        # The loop minimizes minus the objective: a positive gradient pushes x lower.
        redirected = torch.where((x < 0) & (grad > 0), torch.zeros_like(grad), grad)
        reached = plain.flatten(1).abs().amax(dim=1) > 0
        return torch.where(reached.view(-1, *([1] * (x.dim() - 1))), plain, redirected)


def redirected_relu(x: torch.Tensor) -> torch.Tensor:
    """``relu(x)`` with the redirected gradient (see the module's docstring)."""
    return _RedirectedReLU.apply(x)


@dataclass
class Switch:
    """Whether the redirection is on; the render loop turns it off after its first steps."""

    active: bool = True


@contextmanager
def redirect_relus(
    module: nn.Module, gates: tuple[type[nn.Module], ...] = (nn.ReLU,)
) -> Iterator[Switch]:
    """Within the block, every gate module of ``module`` (``gates``: the model family's,
    :attr:`atlas.models.family.Gates.modules`; ``nn.ReLU``) gives the redirected gradient
    while the yielded switch is active (ReLUs called as functions are left alone). In-place
    ReLUs work out of place meanwhile: the redirection needs their input. Hooks are
    removed and in-place flags restored on the way out, whatever happens."""
    switch = Switch()
    relus = [m for m in module.modules() if isinstance(m, gates)]
    inplace = [m.inplace for m in relus]

    def hook(relu: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor):
        return redirected_relu(inputs[0]) if switch.active and torch.is_grad_enabled() else None

    handles = []
    try:
        for relu in relus:
            relu.inplace = False
            # First among the module's hooks: a capture of the ReLU's output sees ours.
            handles.append(relu.register_forward_hook(hook, prepend=True))
        yield switch
    finally:
        for handle in handles:
            handle.remove()
        for relu, flag in zip(relus, inplace, strict=True):
            relu.inplace = flag
