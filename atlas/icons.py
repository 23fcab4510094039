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
from atlas.data import UnusableImage, read_pixels
from atlas.featvis import objectives
from atlas.featvis.spectrum import spectrum_slope
from atlas.models import LoadedModel, Preprocessing
from atlas.render import Objectives, grey_share, render_to_cache, robust_check
from atlas.rows import take_rows
from atlas.store import RunStore
from atlas.store.render import IconCache, RenderLevel

log = logging.getLogger(__name__)
PHOTO_SAMPLE = 64  # images whose spectra give the photographs' median slope


def icon_content_key(
    identity: dict, layer: str, target: np.ndarray, whitening_digest: str, options: RenderConfig
) -> str:
    """The content hash that names an icon of ``target`` (C,): it changes with anything
    that changes the icon (the model's ``identity``, the layer, the whitening's digest,
    the settings that are not operational), and names its file in the cache."""
    settings = options.content_settings()
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
    (:func:`atlas.render.grey_share`); NaN where a cell has no icon or no exemplar.

    Two figures a person would agree with sit beside ``quality``, which a pattern fitted
    pixel-exact to the central position can inflate: ``robust_objective``, the icon's
    mean objective under strong random shifts, zooms and turns
    (:func:`atlas.featvis.render.robust_warp`), and ``robust_quality``, that over the
    best exemplar's (a real feature keeps beating the data when moved; a checkerboard
    does not); ``spectrum_slope``, the slope of the icon's power spectrum
    (:func:`atlas.featvis.spectrum.spectrum_slope`: photographs about -2, noise 0)."""

    icons: np.ndarray
    keys: np.ndarray
    objective: np.ndarray
    exemplar_objective: np.ndarray
    quality: np.ndarray
    grey_share: np.ndarray
    robust_objective: np.ndarray
    robust_quality: np.ndarray
    spectrum_slope: np.ndarray

    @property
    def median_quality(self) -> float | None:
        return finite_median(self.quality)

    @property
    def median_grey_share(self) -> float | None:
        return finite_median(self.grey_share)

    @property
    def median_robust_quality(self) -> float | None:
        return finite_median(self.robust_quality)

    @property
    def median_spectrum_slope(self) -> float | None:
        return finite_median(self.spectrum_slope)

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
            robust_objective=self.robust_objective,
            robust_quality=self.robust_quality,
            spectrum_slope=self.spectrum_slope,
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
    robust = cache.gather_robust(keys, cells, n_cells, robust_check(options))
    if len(cells) and np.isnan(robust[cells]).any():
        log.warning(
            "%d icons in %s were measured with other robust settings (or before the "
            "robust objective was): their robust quality is NaN; delete them to re-render",
            int(np.isnan(robust[cells]).sum()),
            cache.folder,
        )
    exemplar_value = exemplar_objective(acts, exemplars, means, cells, layer, whitening, options)
    icon_keys = np.full(n_cells, "", dtype=object)
    icon_keys[cells] = keys
    best = np.where(exemplar_value > 0, exemplar_value, np.nan)
    grey = np.full(n_cells, np.nan, np.float32)
    grey[cells] = grey_share(icons[cells], options.grey_tolerance)
    slope = np.full(n_cells, np.nan, np.float32)
    slope[cells] = spectrum_slope(icons[cells])
    return LevelIcons(
        icons, icon_keys, value, exemplar_value, value / best, grey, robust, robust / best, slope
    )


def photo_spectrum_slope(run: RunStore, size: int, limit: int = PHOTO_SAMPLE) -> float | None:
    """The median spectrum slope (:func:`atlas.featvis.spectrum.spectrum_slope`) of the
    run's images as its model sees them (resized and center-cropped), each cut to its
    central ``size`` px square, the icons' side: what an icon's slope is read against. Up
    to ``limit`` images, evenly spaced over those extracted; None when none can be read."""
    spec = run.model_spec()
    preprocessing = Preprocessing(spec.input_size, spec.resize_size, spec.mean, spec.std)
    valid = np.flatnonzero(run.image_valid())
    chosen = valid[np.linspace(0, len(valid) - 1, min(limit, len(valid))).astype(int)]
    crops = []
    for name in run.image_names(np.unique(chosen)) if len(chosen) else []:
        try:
            pixels = preprocessing.crop(read_pixels(run.locate(name)))
        except UnusableImage:
            continue
        side = min(size, *pixels.shape[-2:])
        top, left = (pixels.shape[1] - side) // 2, (pixels.shape[2] - side) // 2
        crops.append(pixels[:, top : top + side, left : left + side].permute(1, 2, 0).numpy())
    return finite_median(spectrum_slope(np.stack(crops))) if crops else None


def finite_median(values: np.ndarray) -> float | None:
    """The median of the finite values (cells without an icon or exemplar are NaN), to
    four places; None when there is none."""
    finite = values[np.isfinite(values)]
    return round(float(np.median(finite)), 4) if len(finite) else None
