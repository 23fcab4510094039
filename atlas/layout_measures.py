"""How well a layout keeps together what the network keeps together: the share of each
sample's nearest neighbours in the 2-D layout that share its predicted class, beside what
chance gives (the same share for neighbours drawn at random: the sum of the squared
shares of each predicted class). With every position of an image sampled, neighbours
from the same image agree by construction, so the share is also given over neighbours
from other images only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atlas.neighbors import exact_knn


@dataclass(frozen=True)
class NeighbourAgreement:
    k: int
    samples: int  # the samples measured (a seeded subset beyond ``limit``)
    share: float  # of the k nearest layout neighbours predicted as the sample is
    other_images: float | None  # the same over neighbours from other images (None: none)
    chance: float  # the share that random neighbours would give

    def as_dict(self) -> dict[str, float | int | None]:
        return {key: _round(value) for key, value in self.__dict__.items()}


def neighbour_agreement(
    xy: np.ndarray,
    predicted: np.ndarray,
    image: np.ndarray,
    *,
    k: int = 15,
    limit: int = 20_000,
    seed: int = 0,
) -> NeighbourAgreement:
    """:class:`NeighbourAgreement` of the layout ``xy`` (N, 2) with each sample's top-1
    prediction ``predicted`` and its ``image``; rows with a NaN coordinate are left out.
    The neighbours of at most ``limit`` samples (seeded) are searched among all of them,
    from ``k * 4`` candidates so that enough come from other images."""
    keep = np.flatnonzero(np.isfinite(xy).all(axis=1))
    xy, predicted, image = xy[keep].astype(np.float32), predicted[keep], image[keep]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(xy), min(len(xy), limit), replace=False))
    found, _ = exact_knn(np.ascontiguousarray(xy), np.ascontiguousarray(xy[chosen]), 4 * k + 1)
    found = found[:, 1:]  # each sample is its own nearest
    same_class = predicted[found] == predicted[chosen, None]
    other = image[found] != image[chosen, None]
    share = same_class[:, :k].mean()
    # The first k neighbours from another image, where there are k among the candidates.
    rank = np.cumsum(other, axis=1)
    usable = rank[:, -1] >= k
    firsts = other & (rank <= k)
    other_share = (
        float((same_class & firsts)[usable].sum() / (k * usable.sum())) if usable.any() else None
    )
    _, counts = np.unique(predicted, return_counts=True)
    chance = float(((counts / counts.sum()) ** 2).sum())
    return NeighbourAgreement(k, len(chosen), float(share), other_share, chance)


def _round(value):
    return round(value, 4) if isinstance(value, float) else value
