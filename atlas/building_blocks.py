"""Per-image views of "The Building Blocks of Interpretability" (Olah et al., Distill
2018): what one layer of the network holds at each position of one image, and how much
each part of it pushes a class.

- :func:`layer_attribution`: the layer's activation ``a`` (C, H, W) and the gradient ``g``
  of a class logit with respect to it; ``a * g`` is the article's linear attribution of
  each channel at each position (summed over channels: *spatial attribution*, which parts
  of the image push the decision at the layer's resolution).
- :func:`semantic_dictionary`: per position, the channels that fire most (or push the
  class most).
- :func:`neuron_groups`: the layer's activations of the image factorized into ``k``
  groups of channels by non-negative matrix factorization (scikit-learn's ``NMF``), each
  with its map over the image, and :func:`group_attributions`: each group's share of the
  class's attribution, the shares and the factorization's remainder summing exactly to
  the layer's total.

Block outputs of networks with linear bottlenecks (MobileNetV2) are signed, and NMF takes
non-negative data only. A signed map is factorized as its positive and negative parts
side by side (2C "channels"), so each group's direction has a positive and a negative
half and the groups reconstruct the signed map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from atlas.models import LoadedModel


@dataclass
class LayerAttribution:
    """One image at one layer: activation and gradient of the class logit (C, H, W)."""

    layer: str
    target: int
    activation: np.ndarray
    gradient: np.ndarray

    @property
    def attribution(self) -> np.ndarray:
        """Activation times gradient per channel and position (C, H, W)."""
        return self.activation * self.gradient

    @property
    def spatial(self) -> np.ndarray:
        """The attribution summed over channels (H, W): what each position gives the class."""
        return self.attribution.sum(axis=0)

    @property
    def total(self) -> float:
        return float(self.attribution.sum())


def layer_attribution(
    model: LoadedModel, image: torch.Tensor, layer: str, target: int
) -> LayerAttribution:
    """``image`` (3, H, W, normalized) through ``model``; the layer's map and the gradient
    of logit ``target`` with respect to it."""
    return layer_attributions(model, image, layer, [target])[0]


def layer_attributions(
    model: LoadedModel, image: torch.Tensor, layer: str, targets: Sequence[int]
) -> list[LayerAttribution]:
    """:func:`layer_attribution` for each of ``targets``, from one forward pass."""
    inputs = image[None].to(model.device)
    with torch.enable_grad(), model.capture([layer], detach=False) as outputs:
        logits = model.module(inputs)
        activation = outputs[layer]
        gradients = [
            torch.autograd.grad(logits[0, t], activation, retain_graph=True)[0] for t in targets
        ]
    kept = activation[0].detach().float().cpu().numpy()
    return [
        LayerAttribution(layer, int(t), kept, g[0].float().cpu().numpy())
        for t, g in zip(targets, gradients, strict=True)
    ]


def semantic_dictionary(values: np.ndarray, top: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Per position, the ``top`` channels of ``values`` (C, H, W: activations, or their
    attribution), largest first: channel indices and values, each (top, H, W)."""
    top = min(top, values.shape[0])
    order = np.argsort(-values, axis=0, kind="stable")[:top]
    return order, np.take_along_axis(values, order, axis=0)


@dataclass
class NeuronGroups:
    """``k`` groups of a layer's channels for one image: ``maps[i]`` (H, W) is group i's
    strength at each position, ``directions[i]`` (C,) its signed channel weights, so that
    the activation map is ``sum_i maps[i] * directions[i]`` up to ``remainder``."""

    maps: np.ndarray  # (k, H, W), non-negative
    directions: np.ndarray  # (k, C)
    remainder: np.ndarray  # (C, H, W): activation minus the groups' reconstruction

    def reconstruction(self) -> np.ndarray:
        """The groups' sum (C, H, W)."""
        return np.einsum("khw,kc->chw", self.maps, self.directions)

    @property
    def relative_error(self) -> float:
        """|remainder| / |activation| (Frobenius norms)."""
        whole = self.reconstruction() + self.remainder
        norm = np.linalg.norm(whole)
        return float(np.linalg.norm(self.remainder) / norm) if norm > 0 else 0.0


def neuron_groups(activation: np.ndarray, k: int = 6, *, seed: int = 0) -> NeuronGroups:
    """The activation map (C, H, W) factorized into ``k`` groups (the article's default is
    6) by scikit-learn's ``NMF`` over positions: positions x channels (the positive and the
    negative parts side by side where the map is signed) ~ maps x directions."""
    from sklearn.decomposition import NMF

    channels, height, width = activation.shape
    flat = activation.reshape(channels, -1).T.astype(np.float64)  # (positions, C)
    signed = bool((flat < 0).any())
    data = np.concatenate([np.maximum(flat, 0), np.maximum(-flat, 0)], axis=1) if signed else flat
    k = max(1, min(k, *data.shape))
    factorization = NMF(n_components=k, init="nndsvda", random_state=seed, max_iter=1000, tol=1e-5)
    weights = factorization.fit_transform(data)  # (positions, k)
    components = factorization.components_  # (k, C or 2C)
    directions = components[:, :channels] - components[:, channels:] if signed else components
    maps = weights.T.reshape(k, height, width).astype(np.float32)
    directions = directions.astype(np.float32)
    rebuilt = np.einsum("khw,kc->chw", maps, directions)
    return NeuronGroups(maps, directions, (activation - rebuilt).astype(np.float32))


def group_attributions(groups: NeuronGroups, gradient: np.ndarray) -> tuple[np.ndarray, float]:
    """Each group's attribution to the class whose ``gradient`` (C, H, W) is given: the
    linear attribution of its part of the activation, ``sum (maps[i] x directions[i]) *
    gradient``; and the remainder's. The groups' and the remainder's sum to the layer's
    total attribution (``activation * gradient`` summed), exactly up to rounding."""
    per_group = np.einsum("khw,kc,chw->k", groups.maps, groups.directions, gradient)
    rest = float((groups.remainder * gradient).sum())
    return per_group, rest
