"""A classifier's head: found, measured, and replaced by a fresh one of another size."""

from __future__ import annotations

from torch import nn

from atlas.errors import ModelSpecError


def find_head(module: nn.Module) -> tuple[str, nn.Module]:
    """The classification head: the last ``Linear`` (or, failing that, ``Conv2d``) module."""
    for kind in (nn.Linear, nn.Conv2d):
        found = [(name, m) for name, m in module.named_modules() if isinstance(m, kind)]
        if found:
            return found[-1]
    raise ModelSpecError(
        f"{type(module).__name__} has no Linear or Conv2d layer to use as its head"
    )


def head_size(module: nn.Module) -> int:
    """How many classes the head outputs."""
    _, head = find_head(module)
    return head.out_features if isinstance(head, nn.Linear) else head.out_channels


def replace_head(module: nn.Module, num_classes: int, *, old_classes: int | None = None) -> str:
    """Swap the head for a freshly initialized one with ``num_classes`` outputs; returns
    the note that says so."""
    name, head = find_head(module)
    if isinstance(head, nn.Linear):
        new = nn.Linear(head.in_features, num_classes, bias=head.bias is not None)
    else:
        new = nn.Conv2d(head.in_channels, num_classes, head.kernel_size, head.stride, head.padding)
    module.set_submodule(name, new)
    was = f" (weights have {old_classes})" if old_classes else ""
    return f"head {name!r} re-initialized for {num_classes} classes{was}"
