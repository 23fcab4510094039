"""Per-image attribution methods behind one face (as Captum gives its methods).

Construct a method with the model (and options), call ``attribute(inputs, target)`` with
normalized inputs (B, 3, H, W) and target classes (B,), get maps (B, H, W) at the input
resolution. Every method releases whatever it hooked, even when it fails.
"""

from atlas.attribution import (
    cam_variants,
    gradcam,
    guided_backprop,
    integrated_gradients,
    occlusion,
    saliency,
    smoothgrad,
)
from atlas.attribution.base import METHODS, Attribution, make_method

__all__ = [
    "METHODS",
    "Attribution",
    "cam_variants",
    "gradcam",
    "guided_backprop",
    "integrated_gradients",
    "make_method",
    "occlusion",
    "saliency",
    "smoothgrad",
]
