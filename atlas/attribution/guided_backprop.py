"""Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All
Convolutional Net", 2014): the input gradient with every rectifier passing back only
positive gradients, and only where its input was positive; shown as the largest
magnitude over the color channels. Known to depend little on the model's higher layers
(Adebayo et al. 2018): the randomization check in the reports shows it.

The rule, for every activation a torchvision, timm or Hugging Face network uses (which
is which is the model family's to say: :class:`atlas.models.Gates`):

- **Gates** (ReLU; ReLU6, i.e. ``F.hardtanh(x, 0, 6)``; hardtanh from 0 to any cap): the
  gradient arriving at the activation's output is clipped at zero, then goes through
  the activation's own derivative. For ReLU that is the paper's rule exactly (its
  derivative is the "input was positive" mask); for ReLU6 the mask is ``0 < x < 6``, as
  torch's own derivative has it (zero at and beyond both bounds).
- **Leaky rectifiers** (LeakyReLU, PReLU, RReLU, ELU, CELU, SELU): the same rule, so
  they pass ``f'(x) * max(g, 0)``, a small positive signal below zero. We rectify rather
  than refuse them because they are monotone: the rule then keeps the one property the
  method is built on (no negative signal crosses an activation) without inventing a
  threshold the network does not have; with a slope of 0 it is the ReLU rule again.
- **Smooth activations** (SiLU, GELU, Hardswish, Mish): refused. Their derivative is
  negative below a point (SiLU below -1.28, GELU below -0.75), so a clipped signal comes
  out negative and the rule no longer does what it says, and no paper defines one.
  Captum (``isinstance(module, nn.ReLU)``), pytorch-grad-cam (replaces ``nn.ReLU``
  modules) and Zennit (its composite maps ``nn.ReLU``) leave every other activation,
  ReLU6 included, with its plain gradient, silently; iNNvestigate's ``GuidedBackprop``
  refuses any network with a non-ReLU activation. We do neither silently: a network
  with no gate at all raises :class:`MethodNotDefinedError` (the reports then show the
  method as not defined, and why); one with some gates is rectified there and its page
  names the smooth activations the rule left plain (:meth:`GuidedBackprop.describe`).

Squashing functions (sigmoid, tanh, hardsigmoid) gate other branches multiplicatively
(squeeze-and-excitation, attention); like every implementation above we leave them
alone. Many networks apply ReLU as a function (``F.relu(x, inplace=True)`` in
torchvision's GoogLeNet), which hooks on ``nn.ReLU`` modules (Captum's way) never see;
:func:`guided_relus` intercepts every call instead, module or function, in place or not.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.overrides import TorchFunctionMode

from atlas.attribution.base import Attribution
from atlas.errors import MethodNotDefinedError
from atlas.models import RELU_GATES, Gates, LoadedModel

log = logging.getLogger(__name__)


@dataclass
class Coverage:
    """The activations a forward pass called, by function name: those the rule rectified
    (``gated``: gates and leaky rectifiers) and the smooth ones it left plain."""

    gated: Counter[str] = field(default_factory=Counter)
    smooth: Counter[str] = field(default_factory=Counter)

    def smooth_calls(self) -> str:
        """``"hardswish x12, silu x3"``: the smooth activations, for messages."""
        return ", ".join(f"{name} x{count}" for name, count in sorted(self.smooth.items()))


def _positive(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


class _GuidedMode(TorchFunctionMode):
    """Runs every activation as the model wrote it; on the output of a gate or leaky
    rectifier, a hook clips the arriving gradient at zero before the activation's own
    backward applies its derivative. Counts what it sees in a :class:`Coverage`."""

    def __init__(self, gates: Gates) -> None:
        super().__init__()
        self.gates = gates
        self.coverage = Coverage()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = self.gates.kind(func, args, kwargs)
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func)).rstrip("_")
        if kind in ("gate", "leaky"):
            self.coverage.gated[name] += 1
            # A hook on a tensor gets the gradient of its value at registration, even if
            # the tensor is later changed in place (a residual ``out += x``).
            if isinstance(out, torch.Tensor) and out.requires_grad:
                out.register_hook(_positive)
        elif kind == "smooth":
            self.coverage.smooth[name] += 1
        return out


@contextmanager
def guided_relus(gates: Gates = RELU_GATES) -> Iterator[Coverage]:
    """Within the block, every gate and leaky rectifier of ``gates`` (by default every
    ReLU-family activation in all its torch forms) back-propagates as guided backprop's;
    the forward pass is unchanged. Yields the :class:`Coverage` of the calls meanwhile."""
    mode = _GuidedMode(gates)
    with mode:
        yield mode.coverage


def coverage(model: LoadedModel, batch: int = 1) -> Coverage:
    """What guided backprop's rule covers in ``model``: one forward pass of a blank
    image at its input size, counting the activations called."""
    size = model.preprocessing.input_size
    blank = torch.zeros(batch, 3, size, size, device=model.device)
    with torch.no_grad(), guided_relus(model.family.gates) as seen:
        model.module(blank)
    return seen


def not_defined(model: LoadedModel, seen: Coverage) -> MethodNotDefinedError:
    """The refusal for a network none of whose activations is a rectifier."""
    smooth = seen.smooth_calls()
    found = f"its activations are smooth ({smooth})" if smooth else "it calls no rectifier"
    return MethodNotDefinedError(
        f"guided backprop is not defined for {model.spec.arch}: {found}, and the rule "
        "(Springenberg et al. 2014) gates only ReLU-family activations"
    )


class GuidedBackprop(Attribution):
    name = "guided_backprop"
    signed = False
    paper = "guided backprop: max over colors of |guided gradient| (Springenberg et al. 2014)"

    def __init__(self, model, options=None) -> None:
        """Raises :class:`MethodNotDefinedError` for a network with no gate at all (one
        blank forward pass finds out)."""
        super().__init__(model, options)
        self.coverage = coverage(model)
        if not self.coverage.gated:
            raise not_defined(model, self.coverage)
        self.warned = False

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Gates are what the model's family declares (:attr:`atlas.models.Family.gates`);
        smooth activations pass the plain gradient, and a warning says so once (the
        report's description says it on the page)."""
        inputs = inputs.detach().clone().requires_grad_(True)
        with torch.enable_grad(), guided_relus(self.model.family.gates) as seen:
            logits = self.model.module(inputs)
            (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), inputs)
        if not seen.gated:
            raise not_defined(self.model, seen)
        if seen.smooth and not self.warned:
            log.warning("%s", self.partial_warning(seen))
            self.warned = True
        return grad.abs().amax(dim=1).detach()

    def partial_warning(self, seen: Coverage | None = None) -> str:
        """One line naming the smooth activations the rule left plain ("" if none)."""
        seen = seen or self.coverage
        if not seen.smooth:
            return ""
        gated = sum(seen.gated.values())
        return (
            f"warning: guided only through {gated} rectifier calls; these activations of "
            f"{self.model.spec.arch} have no guided rule and pass the plain gradient: "
            f"{seen.smooth_calls()}"
        )

    def describe(self) -> str:
        warning = self.partial_warning()
        return f"{self.paper}. {warning}" if warning else self.paper
