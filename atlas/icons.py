"""Icons for activation directions: the atlas's cells and the class atlases', cached by
content, and how well each grid level's icons do.

Each target is a direction in a layer's activation space (a grid cell's mean vector);
its icon maximizes the direction objective (:func:`atlas.featvis.objectives.direction`),
rendered by the render path (:func:`atlas.render.render_to_cache`). An icon's key hashes
the model, the layer, the target vector, the whitening and the render settings
(:func:`icon_content_key`), and its seed comes from the key, so the same target always
gets the same icon and a rerun (or a new grid level) renders only what is new (the cache:
:class:`atlas.store.render.IconCache`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import numpy as np
import torch

from atlas.config import RenderConfig
from atlas.featvis import objectives
from atlas.models import LoadedModel
from atlas.render import Objectives, grey_share, render_to_cache
from atlas.rows import take_rows
from atlas.store import RunStore
from atlas.store.render import IconCache, RenderLevel

log = logging.getLogger(__name__)


def icon_content_key(
    identity: dict, layer: str, target: np.ndarray, whitening_digest: str, options: RenderConfig
) -> str:
    """The content hash that names an icon of ``target`` (C,): it changes with anything
    that changes the icon (the model's ``identity``, the layer, the whitening's digest,
    the settings that are not operational), and names its file in the cache."""
    settings = options.model_dump(mode="json", exclude=set(RenderConfig.OPERATIONAL))
    digest = hashlib.sha256()
    digest.update(
        json.dumps([identity, layer, whitening_digest, settings], sort_keys=True).encode()
    )
    digest.update(np.ascontiguousarray(target, dtype=np.float32).tobytes())
    return digest.hexdigest()[:24]


def render_icons(
    run: RunStore,
    layer: str,
    targets: np.ndarray,
    cache: IconCache,
    options: RenderConfig,
    *,
    whitening: np.ndarray | None,
    scheduler=None,
    model: LoadedModel | None = None,
) -> tuple[list[str], int]:
    """Make sure ``cache`` holds an icon for every target direction (N, C) of ``layer``
    of the run's model (``model``: the run's model in memory, for a run extracted from
    one): returns each target's icon key, and how many had to be rendered."""
    identity = run.meta["identity"]["model"]
    if "weights_digest" in run.meta["identity"]:  # a model in memory: its weights name it
        identity = {**identity, "weights_digest": run.meta["identity"]["weights_digest"]}
    digest = (
        hashlib.sha256(whitening.tobytes()).hexdigest()[:16] if whitening is not None else "none"
    )
    keys = [icon_content_key(identity, layer, target, digest, options) for target in targets]
    cache.folder.mkdir(parents=True, exist_ok=True)
    missing = {}
    for key, target in zip(keys, targets, strict=True):
        if not cache.has(key):
            missing.setdefault(key, target)
    if missing:
        ordered = sorted(missing)
        render_to_cache(
            run,
            Objectives.directions(
                layer,
                np.stack([missing[k] for k in ordered]),
                whitening=whitening,
                cossim_pow=options.cossim_pow,
            ),
            ordered,
            [int(key[:8], 16) for key in ordered],
            cache,
            options,
            scheduler=scheduler,
            model=model,
        )
    log.info(
        "%d icons: %d rendered, %d from the cache",
        len(keys),
        len(missing),
        len(keys) - len(missing),
    )
    return keys, len(missing)


def exemplar_objective(
    acts, exemplars: np.ndarray, means: np.ndarray, occupied: np.ndarray, layer, whitening, options
) -> np.ndarray:
    """Per cell, the best direction objective (towards the cell's mean) among its
    exemplars' activation vectors: what the data reaches, for an icon to be measured by."""
    best = np.full(len(exemplars), np.nan, np.float32)
    if not len(occupied):
        return best
    rows = exemplars[occupied]
    used = np.unique(rows[rows >= 0])
    vectors = {int(i): v for i, v in zip(used, take_rows(acts, used), strict=True)}
    objective = objectives.direction(
        layer, means[occupied], whitening=whitening, cossim_pow=options.cossim_pow
    )
    for slot in range(rows.shape[1]):
        present = rows[:, slot] >= 0
        if not present.any():
            continue
        stacked = np.zeros((len(rows), means.shape[1]), np.float32)
        stacked[present] = np.stack([vectors[int(i)] for i in rows[present, slot]])
        with torch.no_grad():
            scores = objective({layer: torch.from_numpy(stacked)}, torch.empty(0)).numpy()
        scores[~present] = np.nan
        best[occupied] = np.fmax(best[occupied], scores)
    return best


@dataclass(frozen=True)
class LevelIcons:
    """One grid level's icons placed on its cells, and how well they do. Per cell:
    ``icons`` (cells, S, S, 3) uint8 (zeros where empty), ``keys`` their cache keys (""
    where empty), ``objective`` what each icon reaches, ``exemplar_objective`` what the
    best exemplar reaches (:func:`exemplar_objective`), ``quality`` the one over the
    other, ``grey_share`` the icon's area left at the initial grey
    (:func:`atlas.render.grey_share`); NaN where a cell has no icon or no exemplar."""

    icons: np.ndarray
    keys: np.ndarray
    objective: np.ndarray
    exemplar_objective: np.ndarray
    quality: np.ndarray
    grey_share: np.ndarray

    @property
    def median_quality(self) -> float | None:
        return finite_median(self.quality)

    @property
    def median_grey_share(self) -> float | None:
        return finite_median(self.grey_share)

    def record(self, size: int) -> RenderLevel:
        """The level as the render store keeps it."""
        return RenderLevel(
            size=size,
            icon=self.icons,
            icon_key=self.keys.astype(str),
            objective=self.objective,
            exemplar_objective=self.exemplar_objective,
            quality=self.quality,
            grey_share=self.grey_share,
        )


def level_icons(
    cache: IconCache,
    keys: list[str],
    cells: np.ndarray,
    n_cells: int,
    acts,
    exemplars: np.ndarray,
    means: np.ndarray,
    layer: str,
    whitening: np.ndarray | None,
    options: RenderConfig,
) -> LevelIcons:
    """The :class:`LevelIcons` of a level of ``n_cells`` cells whose occupied ``cells``
    have the icons ``keys`` in ``cache``; ``acts`` (samples, C), the layer's activations,
    ``exemplars`` (cells, e) and ``means`` (cells, C), the level's."""
    icons, value = cache.gather(keys, cells, n_cells, options.icon_size)
    exemplar_value = exemplar_objective(acts, exemplars, means, cells, layer, whitening, options)
    icon_keys = np.full(n_cells, "", dtype=object)
    icon_keys[cells] = keys
    quality = value / np.where(exemplar_value > 0, exemplar_value, np.nan)
    grey = np.full(n_cells, np.nan, np.float32)
    grey[cells] = grey_share(icons[cells], options.grey_tolerance)
    return LevelIcons(icons, icon_keys, value, exemplar_value, quality, grey)


def finite_median(values: np.ndarray) -> float | None:
    """The median of the finite values (cells without an icon or exemplar are NaN), to
    four places; None when there is none."""
    finite = values[np.isfinite(values)]
    return round(float(np.median(finite)), 4) if len(finite) else None
