"""What each channel of a layer responds to, shown two ways side by side.

Zeiler & Fergus ("Visualizing and Understanding Convolutional Networks", 2014) show a
channel by the dataset patches that excite it most: the top images found during
extraction (:meth:`atlas.store.RunStore.channel_tops`), each cut to the receptive field of
the position where the channel peaks. Olah et al. ("Feature Visualization", Distill 2017)
show it by an image optimized to excite it. One is what the data holds, the other what
the channel wants; together they tell a feature from a texture that merely co-occurs.

:func:`channel_sheet` computes both for one layer: the icons come from the render path
(:func:`atlas.render.render_to_cache`), with the render section's recipe, into the
layer's folder (:func:`atlas.store.channels.icon_cache`).
:mod:`atlas.reports.channel_pages` writes the pages; :mod:`atlas.stages.channels` runs it
all for a store.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from atlas.config import ChannelsConfig, RenderConfig
from atlas.data import UnusableImage, read_pixels
from atlas.models import LoadedModel, Preprocessing
from atlas.progress import progress
from atlas.render import Objectives, render_to_cache
from atlas.store import ChannelTops, LayerGeometry, RunStore
from atlas.store.channels import icon_name
from atlas.store.render import IconCache

log = logging.getLogger(__name__)

GREY = 128  # what a crop shows outside the image: the field reaches past its edge there
DECODE_THREADS = 4


@dataclass(frozen=True)
class ChannelSheet:
    """One layer's channels: their top images and feature visualizations.

    ``tops``: the ranking per channel (C, k), and ``names`` (C, k) its images' names
    ("" for pads); ``crops`` (C, k, h, w, 3) uint8, each top image's receptive-field box
    around the channel's peak (grey outside the image; all grey for pads); ``readable``
    (C, k), whether the crop could be read (false for pads and images no longer
    readable); ``icons`` (C, S, S, 3) uint8 and ``icon_values`` (C,) the objective each
    icon reaches."""

    geometry: LayerGeometry
    tops: ChannelTops
    names: np.ndarray
    crops: np.ndarray
    readable: np.ndarray
    icons: np.ndarray
    icon_values: np.ndarray

    @property
    def layer(self) -> str:
        return self.geometry.name

    def icon_ratio(self) -> np.ndarray:
        """Per channel, the icon's objective over the best image's peak (NaN where the
        channel never fires): above 1, the icon excites it more than any image does.
        Comparable only for the ``neuron`` objective (both are one position's value)."""
        best = self.tops.value[:, 0].astype(np.float64)
        return np.where(best > 0, self.icon_values / np.where(best > 0, best, 1), np.nan)

    def never_active(self) -> np.ndarray:
        """Channels that are never above zero anywhere in any image."""
        return self.tops.value[:, 0] <= 0


def render_channel_icons(
    run: RunStore,
    layer: str,
    cache: IconCache,
    options: ChannelsConfig,
    render_options: RenderConfig,
    *,
    scheduler=None,
    model: LoadedModel | None = None,
) -> None:
    """Render every channel's icon of ``layer`` with the run's model (``model``: that model
    in memory, for a run extracted from one) into ``cache``, named by
    :func:`atlas.store.channels.icon_name`: ``options.objective`` for each channel
    (``neuron``: the channel at the map's central position, what one receptive field, as
    the crops show, wants to see; ``channel``: its mean over the whole map, Olah et al.'s
    channel objective, which tiles the icon with the feature), ``render_options``' recipe
    and workers. Channel c starts from seed ``render_options.seed + c``, so its icon does
    not depend on the others."""
    channels = list(range(run.geometry(layer).channels))
    render_to_cache(
        run,
        Objectives.channels(
            layer, channels, options.objective, redirect_relu_steps=options.redirect_relu_steps
        ),
        [icon_name(c) for c in channels],
        [render_options.seed + c for c in channels],
        cache,
        render_options,
        scheduler=scheduler,
        model=model,
        desc=f"icons {layer}",
    )


def field_crop(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The part of ``pixels`` (S, S, 3) inside ``box`` (x0, y0, x1, y1), which may reach
    past the image's edges (:meth:`atlas.store.LayerGeometry.field_box`): what lies
    outside the image is grey, so the peak sits at the same place in every crop."""
    x0, y0, x1, y1 = box
    height, width = pixels.shape[:2]
    out = np.full((y1 - y0, x1 - x0, 3), GREY, np.uint8)
    top, left = max(y0, 0), max(x0, 0)
    bottom, right = min(y1, height), min(x1, width)
    if bottom > top and right > left:
        out[top - y0 : bottom - y0, left - x0 : right - x0] = pixels[top:bottom, left:right]
    return out


def top_crops(
    run: RunStore, geometry: LayerGeometry, tops: ChannelTops, preprocessing: Preprocessing
) -> tuple[np.ndarray, np.ndarray]:
    """Every top image's receptive-field crop around the channel's peak, as the model saw
    the image (``preprocessing``: resized and center-cropped): (C, k, h, w, 3) uint8 and
    whether each was read (C, k). Each image is read once, however many channels rank
    it."""
    x0, y0, x1, y1 = geometry.field_box(geometry.height // 2, geometry.width // 2)
    crops = np.full((*tops.image.shape, y1 - y0, x1 - x0, 3), GREY, np.uint8)
    readable = np.zeros(tops.image.shape, bool)
    wanted = np.unique(tops.image[tops.image >= 0])

    def view(name: str) -> np.ndarray | None:
        try:
            return preprocessing.crop(read_pixels(run.locate(name))).permute(1, 2, 0).numpy()
        except UnusableImage as err:
            log.warning("cannot read %s again (%s): its crops stay grey", name, err.reason)
            return None

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        views = pool.map(view, [str(n) for n in run.image_names(wanted)])
        bar = progress(views, total=len(wanted), desc=f"crops {geometry.name}", unit="img")
        for image, pixels in zip(wanted, bar, strict=True):
            if pixels is None:
                continue
            for channel, rank in zip(*np.nonzero(tops.image == image), strict=True):
                y, x = tops.pos[channel, rank]
                crops[channel, rank] = field_crop(pixels, geometry.field_box(int(y), int(x)))
                readable[channel, rank] = True
    return crops, readable


def channel_sheet(
    run: RunStore,
    layer: str,
    icons: IconCache,
    options: ChannelsConfig,
    render_options: RenderConfig,
    *,
    scheduler=None,
    model: LoadedModel | None = None,
) -> ChannelSheet:
    """One layer's :class:`ChannelSheet`: its channels' top images from the run's store,
    cropped, and their feature visualizations, rendered into ``icons`` with the run's
    model (``model``: that model in memory, for a run extracted from one)."""
    geometry = run.geometry(layer)
    tops = run.channel_tops(layer)
    names = np.full(tops.image.shape, "", dtype=object)
    found = tops.image >= 0
    names[found] = run.image_names(tops.image[found])
    spec = run.model_spec()
    preprocessing = Preprocessing(spec.input_size, spec.resize_size, spec.mean, spec.std)
    crops, readable = top_crops(run, geometry, tops, preprocessing)
    render_channel_icons(
        run, layer, icons, options, render_options, scheduler=scheduler, model=model
    )
    loaded = [icons.load(icon_name(c)) for c in range(geometry.channels)]
    return ChannelSheet(
        geometry,
        tops,
        names,
        crops,
        readable,
        np.stack([image for image, _ in loaded]),
        np.array([value for _, value in loaded], np.float32),
    )
