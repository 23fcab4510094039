"""Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All
Convolutional Net", 2014): the input gradient with every ReLU passing back only positive
gradients, and only where its input was positive; shown as the largest magnitude over the
color channels. Known to depend little on the model's higher layers (Adebayo et al. 2018):
the randomization check in the reports shows it.

Many networks apply ReLU as a function (``F.relu(x, inplace=True)`` in torchvision's
GoogLeNet and Inception, ``torch.relu`` or ``x.relu_()`` elsewhere), which hooks on
``nn.ReLU`` modules (Captum's way) never see: the map then silently degrades to the plain
gradient. :func:`guided_relus` instead intercepts every ReLU call, module or function,
in place or not, for the duration of a forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from atlas.attribution.base import Attribution


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


_OUT_OF_PLACE = {F.relu, torch.relu, torch.Tensor.relu}
_IN_PLACE = {torch.relu_, F.relu_, torch.Tensor.relu_}


class _GuidedReLUMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _OUT_OF_PLACE or func in _IN_PLACE:
            inplace = func in _IN_PLACE or bool(kwargs.get("inplace", False))
            if len(args) > 1:  # F.relu(x, True)
                inplace = inplace or bool(args[1])
            return _GuidedReLU.apply(args[0], inplace)
        return func(*args, **kwargs)


@contextmanager
def guided_relus() -> Iterator[None]:
    """Within the block, every ReLU (``nn.ReLU``, ``F.relu``, ``torch.relu``, the
    ``Tensor`` methods, their in-place forms) back-propagates as guided backprop's."""
    with _GuidedReLUMode():
        yield


class GuidedBackprop(Attribution):
    name = "guided_backprop"
    signed = False
    paper = "guided backprop: max over colors of |guided gradient| (Springenberg et al. 2014)"

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        inputs = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad(), guided_relus():
            logits = self.model.module(inputs)
            (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), inputs)
        return grad.abs().amax(dim=1).detach()
