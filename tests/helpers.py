"""Small checks and specs shared by several test modules."""

from torch import nn

from atlas.config import ModelSpec
from atlas.demo.world import CLASS_NAMES

# The demo CNN at 32 px over the demo world's classes: random weights unless loaded
# from a checkpoint (conftest's ``cnn`` is this spec loaded with seed 0).
SPEC = ModelSpec(
    arch="atlas.demo.net:DemoCNN", num_classes=10, input_size=32, class_names=sorted(CLASS_NAMES)
)

# The recipe of conftest's ``tiny_world``: 32 px, a few images per class.
TINY_WORLD = {
    "seed": 3,
    "image_size": 32,
    "train_per_class": 12,
    "test_per_class": 5,
    "swapped_per_class": 4,
}


def no_hooks_left(module: nn.Module) -> bool:
    """No forward, forward-pre or backward hook remains anywhere in ``module``."""
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in module.modules()
    )
