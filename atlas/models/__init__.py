"""Loading a classifier by spec: architecture, weights, preprocessing, class names.

A model spec (:class:`atlas.config.ModelSpec`) names an architecture, its weights and
its preprocessing. :func:`load_model` turns it into a :class:`LoadedModel`, whose
``spec`` is fully resolved (every preprocessing field and the class names filled in),
so whatever records it records exactly what was used.

Each model family has its own module behind one face (:class:`Family`):
:mod:`~atlas.models.torchvision`, :mod:`~atlas.models.timm`, :mod:`~atlas.models.hf`
(Hugging Face) and :mod:`~atlas.models.callable` (``package.module:callable``). What all
share is in :mod:`~atlas.models.load`, :mod:`~atlas.models.weights` (weights files) and
:mod:`~atlas.models.heads` (classification heads).
"""

from atlas.models.family import NETWORK, PRETRAINED, RELU_GATES, Built, Family, Gates
from atlas.models.heads import find_head, head_size, replace_head
from atlas.models.load import (
    FAMILIES,
    IN_MEMORY,
    WEIGHTS_SUFFIXES,
    build_architecture,
    family_of,
    load_model,
    read_class_names,
    weights_digest,
    with_absolute_paths,
    wrap_model,
)
from atlas.models.loaded import LoadedModel, Preprocessing, channels_last, channels_last_input
from atlas.models.logits import attach_logits, logits_of
from atlas.models.torchvision import TORCHVISION_DEFAULTS, resolve_weights_enum, torchvision_archs
from atlas.models.weights import read_weights_file, save_checkpoint

__all__ = [
    "FAMILIES",
    "IN_MEMORY",
    "NETWORK",
    "PRETRAINED",
    "RELU_GATES",
    "TORCHVISION_DEFAULTS",
    "WEIGHTS_SUFFIXES",
    "Built",
    "Family",
    "Gates",
    "LoadedModel",
    "Preprocessing",
    "attach_logits",
    "build_architecture",
    "channels_last",
    "channels_last_input",
    "family_of",
    "find_head",
    "head_size",
    "load_model",
    "logits_of",
    "read_class_names",
    "read_weights_file",
    "replace_head",
    "resolve_weights_enum",
    "save_checkpoint",
    "torchvision_archs",
    "weights_digest",
    "with_absolute_paths",
    "wrap_model",
]
