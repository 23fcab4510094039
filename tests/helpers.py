"""Small checks shared by several test modules."""

from torch import nn


def no_hooks_left(module: nn.Module) -> bool:
    """No forward, forward-pre or backward hook remains anywhere in ``module``."""
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in module.modules()
    )
