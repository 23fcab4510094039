"""The run's Zarr store, as extraction writes it.

One Zarr v3 group per run. The root holds the image index and the bookkeeping:

- ``image_path[image]`` (the image's path relative to the image source's root, which the
  attribute ``atlas.image_root`` records as the user gave it: outputs name images this
  way, never by a path of the machine that built them), ``image_label[image]`` (-1:
  unlabelled), ``skip_reason[image]`` ("" for images that were used), written by the
  client before extraction starts;
- ``done[task]``: 1 once a task's chunks are all written (one Zarr chunk per task, so
  workers never share a chunk); a rerun computes only the tasks still at 0;
- attribute ``atlas``: the model spec, the extraction options, the identity hash that a
  resumed run must match, the package version.

One subgroup per layer (named as the layer) holds the samples, ``sample`` being one
spatial position of one image:

- ``acts[sample, channel]`` float32, the layer's activation vector;
- ``attribution[sample, slot]`` float32 and ``attribution_class[sample, slot]`` int32, the
  linear attribution of the vector to class logits (absent when attribution is off);
- ``path[sample]`` (as ``image_path``), ``label[sample]``, ``image[sample]``,
  ``pos[sample, yx]`` (-1 for
  the spatial mean or a vector layer), ``valid[sample]`` (false where the image was
  skipped), ``topk_class[sample, k]`` and ``topk_prob[sample, k]``;
- ``pooled[image, channel]`` float32, the layer's spatial mean per image (the vector itself
  for a vector layer): a whole-image embedding, the "CNN code" that image maps and image
  retrieval use (zeros for a skipped image);
- for a spatial layer, when ``extract.channel_top`` > 0, each task's own top images per
  channel (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014:
  a channel's exemplars are the images with its largest activation anywhere in the map):
  ``channel_top_value[task, channel, rank]`` (that largest value),
  ``channel_top_image[task, channel, rank]`` (global image index; -1 pads, with value 0)
  and ``channel_top_pos[task, channel, rank, yx]`` (where in the map; on ties within an
  image, the first position in row-major order). An image counts once per channel, at its
  best position; ties between images go to the lower image index. Each task ranks its
  own images, so workers never share a chunk; :meth:`RunStore.channel_tops` merges them.

Every array's first dimension says which slice of it a task writes (``sample``, ``image``
or ``task``). Every array names its dimensions, so ``xarray.open_zarr(url, group=layer)``
reads it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import zarr

from atlas.config import ExtractConfig, ModelSpec
from atlas.data import locate
from atlas.errors import AtlasError, DataError, choices_hint
from atlas.store.base import create_array, group_exists, open_group
from atlas.version import package_version

if TYPE_CHECKING:
    import torch

    from atlas.models import LoadedModel


class StoreMismatchError(AtlasError, ValueError):
    """An existing store was made with another config or image list."""


@dataclass(frozen=True)
class LayerGeometry:
    """A layer's output shape per image, how many samples each image gives, and the
    receptive field of its central position: the input box (y0, x0, y1, x1) it sees."""

    name: str
    channels: int
    height: int  # 0 for a vector (C,) output
    width: int
    samples_per_image: int
    input_size: int = 0
    field: tuple[int, int, int, int] | None = None

    @property
    def spatial(self) -> bool:
        return self.height > 0

    def field_box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """The input box (x0, y0, x1, y1), in pixels, that position (y, x) sees: the
        central field shifted by the layer's stride, reaching past the image's edges
        where the field does. The whole image for the spatial mean (y < 0) or a vector
        layer."""
        size = self.input_size
        if not self.spatial or self.field is None or y < 0:
            return (0, 0, size, size)
        y0, x0, y1, x1 = self.field
        dy = round((y - self.height // 2) * size / self.height)
        dx = round((x - self.width // 2) * size / self.width)
        return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)

    def crop_box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """:meth:`field_box` clipped to the image."""
        x0, y0, x1, y1 = self.field_box(y, x)
        size = self.input_size
        return (max(0, x0), max(0, y0), min(size, x1), min(size, y1))

    def crop_boxes(self, samples: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """:meth:`crop_box` of every sample index in ``samples`` (any shape; -1 pads, whose
        box is zeros), given every sample's position ``positions`` (N, 2): shape
        ``(*samples.shape, 4)`` int32."""
        boxes = np.zeros((*samples.shape, 4), np.int32)
        for index, sample in np.ndenumerate(samples):
            if sample >= 0:
                boxes[index] = self.crop_box(*positions[sample])
        return boxes


@dataclass(frozen=True)
class RunLayout:
    """What the store must hold: sizes known before any image is decoded."""

    n_images: int
    chunk_size: int  # images per task
    layers: tuple[LayerGeometry, ...]
    topk: int
    attribution_slots: int  # 0 when attribution is off
    channel_top: int = 0  # top images kept per channel of a spatial layer (0: none)

    @property
    def n_tasks(self) -> int:
        return -(-self.n_images // self.chunk_size)

    def images_of(self, task: int) -> slice:
        return slice(task * self.chunk_size, min((task + 1) * self.chunk_size, self.n_images))


MERGE_CANDIDATES = 4_000_000  # channel-top candidates read per block while merging tasks


@dataclass(frozen=True)
class ChannelTops:
    """A ranking of images per channel, best first: ``value`` (C, k) float32, the channel's
    largest value anywhere in the image's map; ``image`` (C, k) int64, the image's global
    index (-1 pads, with value 0 and position -1); ``pos`` (C, k, 2) int32, the (y, x) of
    that value in the map."""

    value: np.ndarray
    image: np.ndarray
    pos: np.ndarray

    @classmethod
    def empty(cls, channels: int, k: int) -> ChannelTops:
        return cls(
            np.zeros((channels, k), np.float32),
            np.full((channels, k), -1, np.int64),
            np.full((channels, k, 2), -1, np.int32),
        )

    @classmethod
    def select(cls, value: np.ndarray, image: np.ndarray, pos: np.ndarray, k: int) -> ChannelTops:
        """The ``k`` best of each channel's candidates ``value``, ``image`` (C, M) and
        ``pos`` (C, M, 2): largest value first, ties to the lower image index; candidates
        with image -1 or a NaN value are not images and only pad."""
        pad = (image < 0) | np.isnan(value)
        primary = np.where(pad, np.inf, -value.astype(np.float64))
        secondary = np.where(pad, np.iinfo(np.int64).max, image)
        order = np.lexsort((secondary, primary), axis=-1)[:, :k]
        top = cls.empty(value.shape[0], k)
        taken = order.shape[1]
        keep = ~np.take_along_axis(pad, order, axis=1)
        top.value[:, :taken] = np.where(keep, np.take_along_axis(value, order, axis=1), 0)
        top.image[:, :taken] = np.where(keep, np.take_along_axis(image, order, axis=1), -1)
        top.pos[:, :taken] = np.where(
            keep[..., None], np.take_along_axis(pos, order[..., None], axis=1), -1
        )
        return top

    def merged(self, value: np.ndarray, image: np.ndarray, pos: np.ndarray) -> ChannelTops:
        """This ranking merged with the rankings of more tasks: ``value``, ``image``
        (T, C, k) and ``pos`` (T, C, k, 2), as the store holds them."""
        channels, k = self.value.shape

        def candidates(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
            theirs = np.moveaxis(theirs, 0, 1).reshape(channels, -1, *mine.shape[2:])
            return np.concatenate([mine, theirs.astype(mine.dtype)], axis=1)

        return ChannelTops.select(
            candidates(self.value, value),
            candidates(self.image, image),
            candidates(self.pos, pos),
            k,
        )


class RunStore:
    """A run's store opened for reading or for writing tasks."""

    def __init__(self, group: zarr.Group, url: str) -> None:
        self.group = group
        self.url = url
        meta = dict(group.attrs["atlas"])
        self.meta = meta
        self.layout = RunLayout(
            n_images=meta["n_images"],
            chunk_size=meta["chunk_size"],
            layers=tuple(_geometry(g) for g in meta["layers"]),
            topk=meta["topk"],
            attribution_slots=meta["attribution_slots"],
            channel_top=meta.get("channel_top", 0),
        )

    # Reading -----------------------------------------------------------------------------

    @property
    def class_names(self) -> list[str]:
        return list(self.meta["class_names"])

    @property
    def identity_hash(self) -> str:
        return self.meta["identity_hash"]

    @property
    def image_root(self) -> str:
        """The image source's root as the user gave it (relative to where they work)."""
        return self.meta.get("image_root", "")

    def locate(self, name: str, root: str | None = None) -> str:
        """Where the image recorded as ``name`` is read from: under ``root`` (default: the
        recorded image root)."""
        return locate(self.image_root if root is None else root, str(name))

    def model_spec(self) -> ModelSpec:
        """The fully resolved model spec the run was extracted with."""
        return ModelSpec.model_validate(self.meta["identity"]["model"])

    def extract_options(self) -> ExtractConfig:
        """The extraction options the run was made with (operational keys at defaults)."""
        return ExtractConfig.model_validate(self.meta["identity"]["extract"])

    def load_model(
        self, *, device: str | torch.device = "cpu", cached: bool = False
    ) -> LoadedModel:
        """The run's model, initialized with the run's seed. ``cached``: once per worker
        process and thread (see :func:`atlas.runtime.cached_model`)."""
        # Imported here: reading a store should not cost importing torch and torchvision.
        from atlas.models import load_model
        from atlas.runtime import cached_model

        seed = self.extract_options().seed
        if cached:
            return cached_model(self.model_spec(), device=device, seed=seed)
        return load_model(self.model_spec(), device=device, seed=seed)

    @property
    def layer_names(self) -> list[str]:
        return [g.name for g in self.layout.layers]

    def geometry(self, layer: str) -> LayerGeometry:
        for g in self.layout.layers:
            if g.name == layer:
                return g
        raise KeyError(layer)

    def layer(self, name: str | None = None) -> zarr.Group:
        """The subgroup of one layer (the only one when ``name`` is None)."""
        names = self.layer_names
        if name is None:
            if len(names) != 1:
                raise DataError(f"{self.url} holds layers {', '.join(names)}: name one")
            name = names[0]
        if name not in names:
            raise StoreLayerError(
                f"{self.url} has no layer {name!r} " + choices_hint(name, names, label="layers")
            )
        return self.group[name]

    def image_names(self, images: np.ndarray | None = None) -> np.ndarray:
        """The names (paths relative to the image root) of the images with global indices
        ``images`` (default: all), in that order."""
        if images is None:
            return np.asarray(self.group["image_path"][:])
        images = np.asarray(images, dtype=np.int64)
        if not len(images):
            return np.zeros(0, dtype=str)
        return np.asarray(self.group["image_path"].get_coordinate_selection(images))

    def image_valid(self) -> np.ndarray:
        """(n_images,) bool: the images that were decoded and extracted (their task is done
        and they were not skipped)."""
        done = np.repeat(self.group["done"][:] == 1, self.layout.chunk_size)
        return done[: self.layout.n_images] & (self.group["skip_reason"][:] == "")

    def pooled(self, layer: str | None = None) -> np.ndarray:
        """The layer's whole-image embeddings: (n_images, channels) float32, row i the
        spatial mean of the layer's output for image i (``image_path[i]``), or the vector
        itself for a vector layer. Every image has its row; rows of images not extracted
        are zeros, so select with :meth:`image_valid`. (For runs too big for memory, read
        ``layer(name)["pooled"]`` by blocks.)"""
        group = self.layer(layer)
        if "pooled" not in group:
            raise DataError(
                f"{self.url} has no pooled activations (extracted by an older atlas): "
                "extract it again with --overwrite"
            )
        return np.asarray(group["pooled"][:], dtype=np.float32)

    @property
    def channel_top_layers(self) -> list[str]:
        """The layers whose channels' top images were recorded during extraction."""
        return [name for name in self.layer_names if "channel_top_image" in self.group[name]]

    def channel_tops(self, layer: str | None = None) -> ChannelTops:
        """The run's top images for every channel of a spatial layer (Zeiler & Fergus
        exemplars): the tasks' own rankings merged in one streaming pass over them, a
        block of tasks at a time. Ties go to the lower image index; tasks not yet done
        count as empty."""
        group = self.layer(layer)
        if "channel_top_image" not in group:
            raise DataError(
                f"{self.url} has no channel tops for layer {group.attrs['layer']!r} "
                + choices_hint("", self.channel_top_layers, label="layers with them")
                + "; extract with extract.channel_top > 0 (a spatial layer)"
            )
        values, images, positions = (
            group[name] for name in ("channel_top_value", "channel_top_image", "channel_top_pos")
        )
        n_tasks, channels, k = values.shape
        best = ChannelTops.empty(channels, k)
        block = max(1, MERGE_CANDIDATES // max(1, channels * k))
        for start in range(0, n_tasks, block):
            tasks = slice(start, min(start + block, n_tasks))
            best = best.merged(
                np.asarray(values[tasks]), np.asarray(images[tasks]), np.asarray(positions[tasks])
            )
        return best

    def pending_tasks(self) -> list[int]:
        done = self.group["done"][:]
        return [int(t) for t in np.flatnonzero(done == 0)]

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every image that could not be used, in image order."""
        reasons = self.group["skip_reason"][:]
        bad = np.flatnonzero(reasons != "")
        if not len(bad):
            return []
        paths = self.group["image_path"][:]
        return [(str(paths[i]), str(reasons[i])) for i in bad]

    # Writing -----------------------------------------------------------------------------

    def write_task(
        self,
        task: int,
        image_columns: Mapping[str, np.ndarray],
        layer_columns: Mapping[str, Mapping[str, np.ndarray]],
    ) -> None:
        """Write one task's slice of every array, then mark the task done. An array's
        first dimension names the slice: the task's samples, its images, or its own row."""
        images = self.layout.images_of(task)
        for name, values in image_columns.items():
            self.group[name][images] = values
        for geometry in self.layout.layers:
            per = geometry.samples_per_image
            regions = {
                "sample": slice(images.start * per, images.stop * per),
                "image": images,
                "task": task,
            }
            group = self.group[geometry.name]
            for name, values in layer_columns[geometry.name].items():
                array = group[name]
                array[regions[array.metadata.dimension_names[0]]] = values
        self.group["done"][task] = 1


class StoreLayerError(AtlasError, KeyError):
    """A layer name that the store does not hold."""


def open_run(url: str, mode: str = "r") -> RunStore:
    """Open an existing run store (``mode`` "r" or "r+")."""
    try:
        group = open_group(url, mode=mode)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise DataError(f"no activation store at {url} (run `atlas extract` first)") from None
    if "atlas" not in group.attrs:
        raise DataError(f"{url} is a Zarr group but not an atlas run store")
    return RunStore(group, url)


def create_run(
    url: str,
    layout: RunLayout,
    *,
    identity: Mapping[str, Any],
    records_path: Sequence[str],
    records_label: Sequence[int | None],
    class_names: Sequence[str],
    image_root: str = "",
    overwrite: bool = False,
) -> RunStore:
    """Create the store for a run, or reopen it to resume when ``identity`` matches.

    ``identity`` is everything the result depends on (model, options, image list); a store
    made from another identity is refused unless ``overwrite``.
    """
    identity = json.loads(json.dumps(identity, default=str))  # tuples and lists compare alike
    identity_hash = _hash(identity)
    if group_exists(url):
        existing = open_group(url, mode="r+")
        meta = dict(existing.attrs.get("atlas", {}))
        if meta.get("identity_hash") == identity_hash:
            return RunStore(existing, url)
        if not overwrite:
            changes = _diff(meta.get("identity", {}), identity)
            raise StoreMismatchError(
                f"{url} was made with a different config or image list ({changes}); "
                "rerun with --overwrite to replace it"
            )
    group = open_group(url, mode="w", zarr_format=3)
    meta = {
        "version": package_version(),
        "identity": identity,
        "identity_hash": identity_hash,
        "n_images": layout.n_images,
        "chunk_size": layout.chunk_size,
        "n_tasks": layout.n_tasks,
        "layers": [g.__dict__ for g in layout.layers],
        "topk": layout.topk,
        "attribution_slots": layout.attribution_slots,
        "channel_top": layout.channel_top,
        "class_names": list(class_names),
        "image_root": image_root,
    }
    image = ("image",)
    chunk = layout.chunk_size
    create_array(group, "image_path", (layout.n_images,), (chunk,), str, image, "")
    create_array(group, "image_label", (layout.n_images,), (chunk,), "int32", image, -1)
    create_array(group, "skip_reason", (layout.n_images,), (chunk,), str, image, "")
    create_array(group, "done", (layout.n_tasks,), (1,), "uint8", ("task",), 0)
    group["image_path"][:] = np.asarray(records_path, dtype=str)
    group["image_label"][:] = np.asarray(
        [-1 if v is None else v for v in records_label], dtype="int32"
    )
    for g in layout.layers:
        sub = group.create_group(g.name)
        sub.attrs.update(
            {
                "layer": g.name,
                "channels": g.channels,
                "height": g.height,
                "width": g.width,
                "samples_per_image": g.samples_per_image,
                "channel_top": layout.channel_top if g.spatial else 0,
            }
        )
        n, c = layout.n_images * g.samples_per_image, chunk * g.samples_per_image
        sample = ("sample",)
        create_array(
            sub, "acts", (n, g.channels), (c, g.channels), "float32", ("sample", "channel"), 0.0
        )
        if layout.attribution_slots:
            slots = (n, layout.attribution_slots)
            create_array(
                sub, "attribution", slots, (c, slots[1]), "float32", ("sample", "slot"), 0.0
            )
            create_array(
                sub, "attribution_class", slots, (c, slots[1]), "int32", ("sample", "slot"), -1
            )
        create_array(sub, "path", (n,), (c,), str, sample, "")
        create_array(sub, "label", (n,), (c,), "int32", sample, -1)
        create_array(sub, "image", (n,), (c,), "int64", sample, -1)
        create_array(sub, "pos", (n, 2), (c, 2), "int32", ("sample", "yx"), -1)
        create_array(sub, "valid", (n,), (c,), "bool", sample, False)
        create_array(
            sub, "topk_class", (n, layout.topk), (c, layout.topk), "int32", ("sample", "k"), -1
        )
        create_array(
            sub, "topk_prob", (n, layout.topk), (c, layout.topk), "float32", ("sample", "k"), 0.0
        )
        create_array(
            sub,
            "pooled",
            (layout.n_images, g.channels),
            (chunk, g.channels),
            "float32",
            ("image", "channel"),
            0.0,
        )
        if g.spatial and layout.channel_top:
            tops = (layout.n_tasks, g.channels, layout.channel_top)
            per_task = (1, *tops[1:])
            dims = ("task", "channel", "rank")
            create_array(sub, "channel_top_value", tops, per_task, "float32", dims, 0.0)
            create_array(sub, "channel_top_image", tops, per_task, "int64", dims, -1)
            create_array(
                sub, "channel_top_pos", (*tops, 2), (*per_task, 2), "int32", (*dims, "yx"), -1
            )
    group.attrs["atlas"] = meta  # last: a store without it is an unfinished creation
    return RunStore(group, url)


def write_skipped_csv(store: RunStore, path: str) -> int:
    """Write ``path,reason`` for every skipped image; returns how many."""
    rows = store.skipped()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["path", "reason"])
    writer.writerows(rows)
    with fsspec.open(path, "w") as handle:
        handle.write(buffer.getvalue())
    return len(rows)


def sibling(url: str, name: str) -> str:
    """The path of ``name`` in the same folder as ``url`` (local path or fsspec URL)."""
    head, sep, _ = url.rstrip("/").rpartition("/")
    return f"{head}{sep}{name}" if sep else name


def _geometry(fields: Mapping[str, Any]) -> LayerGeometry:
    field = fields.get("field")
    return LayerGeometry(**{**fields, "field": tuple(field) if field else None})


def _hash(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> str:
    """The first few keys whose values differ, as 'a.b: old -> new'."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            inner = _diff(a, b, f"{prefix}{key}.")
            if inner:
                changes.append(inner)
        elif a != b:
            changes.append(f"{prefix}{key}: {_short(a)} -> {_short(b)}")
    return ", ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
