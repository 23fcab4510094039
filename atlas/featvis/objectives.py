"""Batched objectives. Every objective is **maximized** by the render loop.

An objective maps the activations recorded during a forward pass (``{layer: tensor}``)
and the model's output to one score per batch element, shape (B,). Objectives combine
with ``+``, ``-`` and scalar ``*``; a sum is one flat list of weighted terms, so combining
thousands of them never nests (Lucent's ``+`` chain builds a recursion as deep as the
number of terms). A batch of targets is one term holding a (B, C) tensor, not B objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

Activations = Mapping[str, torch.Tensor]
Term = Callable[[Activations, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """A weighted sum of terms; calling it returns one score per batch element (B,)."""

    terms: tuple[tuple[float, Term], ...]
    layers: frozenset[str]
    uses_output: bool = False  # whether a term reads the model's output (else None may do)

    def __call__(self, activations: Activations, output: torch.Tensor) -> torch.Tensor:
        total = None
        for weight, term in self.terms:
            value = weight * term(activations, output)
            total = value if total is None else total + value
        return total

    def __add__(self, other: Objective) -> Objective:
        return Objective(
            self.terms + other.terms,
            self.layers | other.layers,
            self.uses_output or other.uses_output,
        )

    def __sub__(self, other: Objective) -> Objective:
        return self + (-1.0) * other

    def __mul__(self, scale: float) -> Objective:
        return Objective(
            tuple((weight * float(scale), term) for weight, term in self.terms),
            self.layers,
            self.uses_output,
        )

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0

    @staticmethod
    def sum(objectives: Sequence[Objective]) -> Objective:
        """Flat sum of many objectives (no recursion, whatever their number)."""
        terms = tuple(t for o in objectives for t in o.terms)
        layers = frozenset().union(*(o.layers for o in objectives))
        return Objective(terms, layers, any(o.uses_output for o in objectives))


def _single(term: Term, *layers: str, uses_output: bool = False) -> Objective:
    return Objective(((1.0, term),), frozenset(layers), uses_output)


def _centre(tensor: torch.Tensor, y: int | None = None, x: int | None = None) -> torch.Tensor:
    """(B, C) vectors at a position of a (B, C, H, W) map (its centre by default), or the
    (B, C) tensor itself for a vector layer."""
    if tensor.dim() == 2:
        return tensor
    h, w = tensor.shape[2:]
    return tensor[:, :, h // 2 if y is None else y, w // 2 if x is None else x]


def _vectors(vectors) -> torch.Tensor:
    """Target directions as a (B, C) float tensor (one vector: B = 1)."""
    targets = torch.as_tensor(np.asarray(vectors), dtype=torch.float32)
    return targets[None] if targets.dim() == 1 else targets


def direction(
    layer: str,
    vectors,
    *,
    whitening=None,
    cossim_pow: float = 1.0,
) -> Objective:
    """The activation-atlas objective (Carter et al., "Activation Atlas", Distill 2019):
    at the layer's central position, the dot product of the activation vector ``a`` with
    the unit target direction ``v`` (whitened: ``v S`` when a whitening matrix ``S`` is
    given), times its cosine similarity raised to ``cossim_pow`` (floored at 0.1, as
    Lucid's ``direction_neuron_cossim_S``), so that both the strength and the purity of
    the direction count. ``vectors`` is (B, C): one target per batch element."""
    targets = _vectors(vectors)
    if whitening is not None:
        targets = targets @ torch.as_tensor(np.asarray(whitening), dtype=torch.float32)
    targets = targets / targets.norm(dim=1, keepdim=True).clamp_min(1e-12)
    cache: dict[torch.device, torch.Tensor] = {}

    def term(activations: Activations, output: torch.Tensor) -> torch.Tensor:
        acts = _centre(activations[layer]).float()
        target = cache.setdefault(acts.device, targets.to(acts.device))
        dot = (acts * target).sum(dim=1)
        if not cossim_pow:
            return dot
        cosine = dot / (acts.norm(dim=1) + 1e-4)
        return dot * cosine.clamp_min(0.1) ** cossim_pow

    return _single(term, layer)


def direction_map(layer: str, vectors) -> Objective:
    """The mean over the whole map of the dot product of each position's activation with
    the target direction ``vectors[b]`` (B, C), as Lucid's ``direction`` objective: a
    neuron group's feature visualization (Olah et al., "The Building Blocks of
    Interpretability", 2018)."""
    targets = _vectors(vectors)
    cache: dict[torch.device, torch.Tensor] = {}

    def term(activations: Activations, output: torch.Tensor) -> torch.Tensor:
        acts = activations[layer].float()
        target = cache.setdefault(acts.device, targets.to(acts.device))
        shape = (target.shape[0], target.shape[1]) + (1,) * (acts.dim() - 2)
        return (acts * target.view(shape)).sum(dim=1).flatten(1).mean(dim=1)

    return _single(term, layer)


def channel(layer: str, channels) -> Objective:
    """Mean activation of channel ``channels[b]`` over the whole map, per element."""
    index = torch.as_tensor(np.atleast_1d(channels), dtype=torch.long)

    def term(activations: Activations, output: torch.Tensor) -> torch.Tensor:
        acts = activations[layer]
        chosen = (
            index.to(acts.device).expand(acts.shape[0])
            if len(index) == 1
            else index.to(acts.device)
        )
        maps = acts[torch.arange(acts.shape[0], device=acts.device), chosen]
        return maps.flatten(1).mean(dim=1) if maps.dim() > 1 else maps

    return _single(term, layer)


def neuron(layer: str, channels, y: int | None = None, x: int | None = None) -> Objective:
    """Activation of channel ``channels[b]`` at one position (the centre by default)."""
    index = torch.as_tensor(np.atleast_1d(channels), dtype=torch.long)

    def term(activations: Activations, output: torch.Tensor) -> torch.Tensor:
        vectors = _centre(activations[layer], y, x)
        chosen = (
            index.to(vectors.device).expand(vectors.shape[0])
            if len(index) == 1
            else index.to(vectors.device)
        )
        return vectors[torch.arange(vectors.shape[0], device=vectors.device), chosen]

    return _single(term, layer)


def class_logit(classes) -> Objective:
    """The model's logit for class ``classes[b]``, per element."""
    index = torch.as_tensor(np.atleast_1d(classes), dtype=torch.long)

    def term(activations: Activations, output: torch.Tensor) -> torch.Tensor:
        chosen = (
            index.to(output.device).expand(output.shape[0])
            if len(index) == 1
            else index.to(output.device)
        )
        return output[torch.arange(output.shape[0], device=output.device), chosen]

    return _single(term, uses_output=True)
