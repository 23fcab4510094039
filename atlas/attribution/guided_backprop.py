"""Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All
Convolutional Net", 2014): the input gradient with every ReLU passing back only positive
gradients, and only where its input was positive; shown as the largest magnitude over the
color channels. Known to depend little on the model's higher layers (Adebayo et al. 2018):
the randomization check in the reports shows it.

Many networks apply ReLU as a function (``F.relu(x, inplace=True)`` in torchvision's
GoogLeNet and Inception, ``torch.relu`` or ``x.relu_()`` elsewhere), which hooks on
``nn.ReLU`` modules (Captum's way) never see: the map then silently degrades to the plain
gradient. :func:`guided_relus` instead intercepts every ReLU call, module or function,
in place or not, for the duration of a forward pass. What counts as a gate is the model's
family's to say (:class:`atlas.models.Gates`); activations it leaves plain (``ReLU6``,
``SiLU``, ``GELU``) are named in a warning rather than silently passed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.overrides import TorchFunctionMode

from atlas.attribution.base import Attribution
from atlas.models import RELU_GATES, Gates

log = logging.getLogger(__name__)


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients where the output is positive."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, inplace: bool) -> torch.Tensor:
        if inplace:
            ctx.mark_dirty(x)
            out = x.clamp_(min=0)
        else:
            out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0), None


class _GuidedMode(TorchFunctionMode):
    """Runs every gate of ``gates`` as :class:`_GuidedReLU`, and counts the calls of the
    activations it does not rectify (``gates.not_gates``)."""

    def __init__(self, gates: Gates) -> None:
        super().__init__()
        self.gates = gates
        self.ungated: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.gates:
            inplace = func in self.gates.in_place or bool(kwargs.get("inplace", False))
            if len(args) > 1:  # F.relu(x, True)
                inplace = inplace or bool(args[1])
            return _GuidedReLU.apply(args[0], inplace)
        if func in self.gates.not_gates:
            self.ungated[func.__name__] += 1
        return func(*args, **kwargs)


@contextmanager
def guided_relus(gates: Gates = RELU_GATES) -> Iterator[Counter[str]]:
    """Within the block, every gate (by default every ReLU: ``nn.ReLU``, ``F.relu``,
    ``torch.relu``, the ``Tensor`` methods, their in-place forms) back-propagates as guided
    backprop's. Yields the count, by function name, of the activations called meanwhile
    that the rule leaves plain (``F.hardtanh`` of ``nn.ReLU6``, ``F.silu``, ``F.gelu``)."""
    mode = _GuidedMode(gates)
    with mode:
        yield mode.ungated


class GuidedBackprop(Attribution):
    name = "guided_backprop"
    signed = False
    paper = "guided backprop: max over colors of |guided gradient| (Springenberg et al. 2014)"

    def __init__(self, model, options=None) -> None:
        super().__init__(model, options)
        self.warned = False

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Gates are what the model's family declares (:attr:`atlas.models.Family.gates`);
        activations outside them pass the plain gradient, and a warning says so once."""
        inputs = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad(), guided_relus(self.model.family.gates) as ungated:
            logits = self.model.module(inputs)
            (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), inputs)
        if ungated and not self.warned:
            calls = ", ".join(f"{n} x{c}" for n, c in sorted(ungated.items()))
            log.warning(
                "guided backprop on %s rectifies only its gates; these activations pass the "
                "plain gradient: %s",
                self.model.spec.arch,
                calls,
            )
            self.warned = True
        return grad.abs().amax(dim=1).detach()
