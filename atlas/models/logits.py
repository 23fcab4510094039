"""Networks whose output is a structure holding their logits (Hugging Face's
``ImageClassifierOutput``, a dict, a tuple), made to return the logits tensor itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from atlas.errors import ModelSpecError


def attach_logits(module: nn.Module) -> nn.Module:
    """Make a network whose output is a structure holding its logits return the logits
    tensor itself, as every part of atlas and the libraries it uses expect: a forward hook
    on the network, which keeps its layers' names as they are. Returns the module."""
    if not getattr(module, "_atlas_logits", False):
        module.register_forward_hook(lambda _module, _args, output: logits_of(output))
        module._atlas_logits = True
    return module


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a network's output: the tensor itself, a ``logits`` field or key, or
    the first element of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ModelSpecError(
        f"the model returns {type(output).__name__}, which holds no logits tensor "
        "(expected a tensor, a .logits field or a tuple starting with the logits)"
    )
