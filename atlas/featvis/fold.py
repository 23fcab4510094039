"""Batch norm folded into the convolution before it, for rendering.

A feature visualization runs the network in eval mode hundreds of times forward and
backward; there a batch norm is a fixed per-channel scale and shift, which the
convolution feeding it can absorb (``torch.nn.utils.fusion.fuse_conv_bn_eval``). On the
demo CNN the batch norms' forward and backward are an eighth of a render step; folded,
the image and the objective are those of the unfolded network up to rounding.

Only a convolution and a batch norm that follow each other in an ``nn.Sequential`` are
folded: there the batch norm's input is the convolution's output, whatever the model's
own ``forward`` does. The batch norm becomes an ``nn.Identity`` (its output, if a layer
reads it, is unchanged); a convolution whose own output a layer reads is left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from itertools import pairwise

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_BATCH_NORMS = (nn.BatchNorm2d,)


def fold_batchnorm(module: nn.Module, read: Iterable[str] = ()) -> tuple[nn.Module, int]:
    """``module`` with each ``Conv2d`` -> ``BatchNorm2d`` pair of a ``Sequential`` folded
    into the convolution, in a copy in eval mode (``module`` itself, untouched, when there
    is nothing to fold); ``read`` names layers whose outputs are read (their convolutions
    are not folded). Returns the module and the number of pairs folded."""
    pairs = _pairs(module, set(read))
    if not pairs:
        return module, 0
    folded = copy.deepcopy(module).eval()
    for parent_name, conv_name, bn_name in pairs:
        parent = folded.get_submodule(parent_name)
        conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
        setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
        setattr(parent, bn_name, nn.Identity())
    return folded, len(pairs)


def _pairs(module: nn.Module, read: set[str]) -> list[tuple[str, str, str]]:
    found = []
    for name, parent in module.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        for (conv_name, conv), (bn_name, bn) in pairwise(parent.named_children()):
            path = f"{name}.{conv_name}" if name else conv_name
            if (
                type(conv) is nn.Conv2d
                and type(bn) in _BATCH_NORMS
                and bn.track_running_stats
                and bn.running_mean is not None
                and path not in read
            ):
                found.append((name, conv_name, bn_name))
    return found
