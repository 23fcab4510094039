"""What each channel of a layer responds to, shown two ways side by side.

Zeiler & Fergus ("Visualizing and Understanding Convolutional Networks", 2014) show a
channel by the dataset patches that excite it most: the top images found during
extraction (:meth:`atlas.store.RunStore.channel_tops`), each cut to the receptive field of
the position where the channel peaks. Olah et al. ("Feature Visualization", Distill 2017)
show it by an image optimized to excite it. One is what the data holds, the other what
the channel wants; together they tell a feature from a texture that merely co-occurs.

:func:`channel_sheet` computes both for one layer: the icons rendered in batches and
handed to Dask workers like the render stage's (:mod:`atlas.distribute`), each batch
written by its worker (:func:`atlas.store.channels.icon_cache`).
:mod:`atlas.reports.channel_pages` writes the pages; :mod:`atlas.stages.channels` runs it
all for a store.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from atlas.config import ChannelsConfig, ModelSpec, RenderConfig
from atlas.data import UnusableImage, absolute_root, read_pixels
from atlas.distribute import Cluster, run_tasks
from atlas.featvis import objectives
from atlas.featvis.objectives import Objective
from atlas.featvis.render import RenderResult, render, transforms_for
from atlas.icons import worker_model
from atlas.models import LoadedModel, Preprocessing, with_absolute_paths
from atlas.progress import progress
from atlas.runtime import resolve_device
from atlas.store import ChannelTops, LayerGeometry, RunStore
from atlas.store.channels import icon_key
from atlas.store.render import IconCache

log = logging.getLogger(__name__)

GREY = 128  # what a crop shows outside the image: the field reaches past its edge there
DECODE_THREADS = 4
# Lucid's render_vis redirects ReLU gradients for its first 16 steps: a single channel
# behind a ReLU is often dead for the starting image and would never move without it.
REDIRECT_STEPS = 16


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


def channel_objective(layer: str, channels: Sequence[int], kind: str) -> Objective:
    """``neuron``: channel ``channels[b]`` at the map's central position, what one
    receptive field (as the crops show) wants to see; ``channel``: its mean over the whole
    map (Olah et al.'s channel objective, which tiles the icon with the feature)."""
    if kind == "neuron":
        return objectives.neuron(layer, list(channels))
    return objectives.channel(layer, list(channels))


def channel_icons(
    model: LoadedModel,
    layer: str,
    channels: Sequence[int],
    options: RenderConfig,
    *,
    objective: str = "neuron",
) -> RenderResult:
    """Feature visualizations of ``channels`` of ``layer`` with the render stage's recipe
    (``options``: icon size, steps, step size and schedule, transforms, seed), rendered
    ``options.batch_size`` at a time, ReLU gradients redirected for the first
    :data:`REDIRECT_STEPS` steps. Channel c starts from seed ``options.seed + c``, so its
    icon does not depend on the others. Returns images (N, S, S, 3) in [0, 1] and each
    icon's final objective."""
    channels = [int(c) for c in channels]
    size = options.icon_size
    images, values = [np.zeros((0, size, size, 3), np.float32)], [np.zeros(0, np.float32)]
    for start in range(0, len(channels), options.batch_size):
        chunk = channels[start : start + options.batch_size]
        result = render(
            model,
            channel_objective(layer, chunk, objective),
            size=size,
            seeds=[options.seed + c for c in chunk],
            steps=options.steps,
            lr=options.lr,
            lr_schedule=options.lr_schedule,
            transforms=transforms_for(options.transforms, size, options),
            transform_seed=options.seed,
            redirect_relu_steps=REDIRECT_STEPS,
        )
        images.append(result.images)
        values.append(result.values)
    return RenderResult(
        images=np.concatenate(images),
        values=np.concatenate(values),
        history=np.zeros((0, len(channels)), np.float32),
    )


def icon_task(
    channels: list[int],
    *,
    run_url: str,
    layer: str,
    objective: str,
    icons_dir: str,
    options: dict,
    device: str,
    model: LoadedModel | None = None,
    spec: ModelSpec | None = None,
) -> dict:
    """On a worker: render one batch of channels' icons with the run's model (``spec``,
    its paths resolved by the client, or ``model``, one in memory) into ``icons_dir``."""
    start = time.perf_counter()
    config = RenderConfig.model_validate(options)
    model = worker_model(run_url, device, model=model, spec=spec)
    result = channel_icons(model, layer, channels, config, objective=objective)
    cache = IconCache(icons_dir)
    for channel, image, value in zip(channels, result.images, result.values, strict=True):
        cache.save(icon_key(channel), image, float(value))
    return {"icons": len(channels), "seconds": time.perf_counter() - start}


def render_channel_icons(
    run: RunStore,
    layer: str,
    cache: IconCache,
    options: RenderConfig,
    *,
    objective: str = "neuron",
    scheduler=None,
    model: LoadedModel | None = None,
) -> None:
    """Render every channel's icon of ``layer`` with the run's model (``model``: that model
    in memory, for a run extracted from one) into ``cache``, keyed by
    :func:`atlas.store.channels.icon_key`: batches of ``options.batch_size`` channels
    handed to the workers of ``scheduler`` (None: a local cluster of
    ``options.workers``; ``"inline"``: this process)."""
    channels = list(range(run.geometry(layer).channels))
    batches = [
        channels[i : i + options.batch_size] for i in range(0, len(channels), options.batch_size)
    ]
    cache.folder.mkdir(parents=True, exist_ok=True)
    run_tasks(
        icon_task,
        [(batch,) for batch in batches],
        Cluster(scheduler, options.workers, options.processes, in_process=model is not None),
        key=f"channels-{run.identity_hash}-{layer}-{time.time_ns()}",
        desc=f"icons {layer}",
        unit="icon",
        count="icons",
        total=len(channels),
        run_url=absolute_root(run.url),
        layer=layer,
        objective=objective,
        icons_dir=str(cache.folder.resolve()),
        options=options.model_dump(mode="json"),
        device=str(resolve_device(options.device)),
        model=model,
        spec=None if model is not None else with_absolute_paths(run.model_spec()),
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
        run,
        layer,
        icons,
        render_options,
        objective=options.objective,
        scheduler=scheduler,
        model=model,
    )
    loaded = [icons.load(icon_key(c)) for c in range(geometry.channels)]
    return ChannelSheet(
        geometry,
        tops,
        names,
        crops,
        readable,
        np.stack([image for image, _ in loaded]),
        np.array([value for _, value in loaded], np.float32),
    )
