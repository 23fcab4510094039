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
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np
import zarr

from atlas.channel_tops import ChannelTops, merge_task_tops
from atlas.config import ExtractConfig, ModelSpec, hash_sections
from atlas.data import locate
from atlas.errors import AtlasError, DataError, choices_hint
from atlas.geometry import LayerGeometry
from atlas.store.base import group_exists, open_group
from atlas.store.records import Record, Values, create_record_arrays, read_record, stored
from atlas.version import package_version

if TYPE_CHECKING:
    import torch

    from atlas.models import LoadedModel


# The identity hash was first written with json's default separators: a resumed run must
# hash its identity exactly so (:func:`atlas.config.hash_sections` of config sections is
# compact), or every existing store would be refused.
IDENTITY_SEPARATORS = (", ", ": ")


class StoreMismatchError(AtlasError, ValueError):
    """An existing store was made with another config or image list."""


@dataclass(frozen=True)
class ImageIndex(Record):
    """The run's root arrays, one row per image (``done``: per task)."""

    image_path: Values = field(metadata=stored("image", dtype=str, fill=""))
    image_label: Values = field(metadata=stored("image", dtype="int32", fill=-1))
    skip_reason: Values = field(metadata=stored("image", dtype=str, fill=""))
    done: Values = field(metadata=stored("task", dtype="uint8", fill=0))


@dataclass(frozen=True, kw_only=True)
class RunLayer(Record):
    """One layer's arrays (see the module docstring). Read from the store
    (:meth:`RunStore.read_layer`) the arrays are Zarr arrays, read where sliced (so
    ``acts`` may be far bigger than memory); written per task (:meth:`RunStore.write_task`)
    they are a task's rows."""

    name: str
    acts: Values = field(metadata=stored("sample", "channel", dtype="float32", fill=0.0))
    attribution: Values = field(
        default=None, metadata=stored("sample", "slot", dtype="float32", fill=0.0)
    )
    attribution_class: Values = field(
        default=None, metadata=stored("sample", "slot", dtype="int32", fill=-1)
    )
    path: Values = field(metadata=stored("sample", dtype=str, fill=""))
    label: Values = field(metadata=stored("sample", dtype="int32", fill=-1))
    image: Values = field(metadata=stored("sample", dtype="int64", fill=-1))
    pos: Values = field(metadata=stored("sample", "yx", dtype="int32", fill=-1))
    valid: Values = field(metadata=stored("sample", dtype="bool", fill=False))
    topk_class: Values = field(metadata=stored("sample", "k", dtype="int32", fill=-1))
    topk_prob: Values = field(metadata=stored("sample", "k", dtype="float32", fill=0.0))
    # Absent from stores extracted before pooled vectors were kept:
    pooled: Values = field(
        default=None, metadata=stored("image", "channel", dtype="float32", fill=0.0)
    )
    channel_top_value: Values = field(
        default=None, metadata=stored("task", "channel", "rank", dtype="float32", fill=0.0)
    )
    channel_top_image: Values = field(
        default=None, metadata=stored("task", "channel", "rank", dtype="int64", fill=-1)
    )
    channel_top_pos: Values = field(
        default=None, metadata=stored("task", "channel", "rank", "yx", dtype="int32", fill=-1)
    )

    @property
    def has_attribution(self) -> bool:
        return self.attribution is not None

    @property
    def has_channel_tops(self) -> bool:
        return self.channel_top_image is not None

    def channel_top_arrays(self) -> tuple[Values, Values, Values]:
        """(value, image, pos) of every task's channel tops."""
        return self.channel_top_value, self.channel_top_image, self.channel_top_pos


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
            layers=tuple(LayerGeometry.from_stored(g) for g in meta["layers"]),
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

    def read_layer(self, name: str | None = None) -> RunLayer:
        """One layer's arrays (the only layer's when ``name`` is None), lazily."""
        group = self._layer_group(name)
        return read_record(RunLayer, group, name=group.basename)

    @property
    def images(self) -> ImageIndex:
        """The image index (paths, labels, skip reasons, tasks done), lazily."""
        return read_record(ImageIndex, self.group)

    def _layer_group(self, name: str | None) -> zarr.Group:
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
        names = self.images.image_path
        if images is None:
            return np.asarray(names[:])
        images = np.asarray(images, dtype=np.int64)
        if not len(images):
            return np.zeros(0, dtype=str)
        return np.asarray(names.get_coordinate_selection(images))

    def image_valid(self) -> np.ndarray:
        """(n_images,) bool: the images that were decoded and extracted (their task is done
        and they were not skipped)."""
        index = self.images
        done = np.repeat(index.done[:] == 1, self.layout.chunk_size)
        return done[: self.layout.n_images] & (index.skip_reason[:] == "")

    def pooled(self, layer: str | None = None) -> np.ndarray:
        """The layer's whole-image embeddings: (n_images, channels) float32, row i the
        spatial mean of the layer's output for image i (``image_path[i]``), or the vector
        itself for a vector layer. Every image has its row; rows of images not extracted
        are zeros, so select with :meth:`image_valid`. (For runs too big for memory, read
        :meth:`pooled_array` by blocks.)"""
        return np.asarray(self.pooled_array(layer)[:], dtype=np.float32)

    def pooled_array(self, layer: str | None = None) -> Values:
        """The layer's ``pooled`` array (n_images, channels), lazily; a :class:`DataError`
        for a store extracted without it."""
        pooled = self.read_layer(layer).pooled
        if pooled is None:
            raise DataError(
                f"{self.url} has no pooled activations (extracted by an older atlas): "
                "extract it again with --overwrite"
            )
        return pooled

    @property
    def channel_top_layers(self) -> list[str]:
        """The layers whose channels' top images were recorded during extraction."""
        return [name for name in self.layer_names if self.read_layer(name).has_channel_tops]

    def channel_tops(self, layer: str | None = None) -> ChannelTops:
        """The run's top images for every channel of a spatial layer (Zeiler & Fergus
        exemplars): the tasks' own rankings merged in one streaming pass over them, a
        block of tasks at a time. Ties go to the lower image index; tasks not yet done
        count as empty."""
        arrays = self.read_layer(layer)
        if not arrays.has_channel_tops:
            raise DataError(
                f"{self.url} has no channel tops for layer {arrays.name!r} "
                + choices_hint("", self.channel_top_layers, label="layers with them")
                + "; extract with extract.channel_top > 0 (a spatial layer)"
            )
        return merge_task_tops(*arrays.channel_top_arrays())

    def pending_tasks(self) -> list[int]:
        done = self.images.done[:]
        return [int(t) for t in np.flatnonzero(done == 0)]

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every image that could not be used, in image order."""
        index = self.images
        reasons = index.skip_reason[:]
        bad = np.flatnonzero(reasons != "")
        if not len(bad):
            return []
        paths = index.image_path[:]
        return [(str(paths[i]), str(reasons[i])) for i in bad]

    # Writing -----------------------------------------------------------------------------

    def write_task(
        self, task: int, skip_reason: np.ndarray, layers: Mapping[str, RunLayer]
    ) -> None:
        """Write one task's slice of every array, then mark the task done: each image's
        ``skip_reason`` ("" for those used) and every layer's present arrays. An array's
        first dimension names the slice: the task's samples, its images, or its own row."""
        images = self.layout.images_of(task)
        self.group["skip_reason"][images] = skip_reason
        for geometry in self.layout.layers:
            per = geometry.samples_per_image
            regions = {
                "sample": slice(images.start * per, images.stop * per),
                "image": images,
                "task": task,
            }
            group = self.group[geometry.name]
            for name, (values, dims) in layers[geometry.name].arrays().items():
                group[name][regions[dims[0]]] = values
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
    identity_hash = hash_sections(identity, separators=IDENTITY_SEPARATORS)
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
        "layers": [g.stored() for g in layout.layers],
        "topk": layout.topk,
        "attribution_slots": layout.attribution_slots,
        "channel_top": layout.channel_top,
        "class_names": list(class_names),
        "image_root": image_root,
    }
    n_images, chunk = layout.n_images, layout.chunk_size
    create_record_arrays(
        group,
        ImageIndex,
        {name: (n_images,) for name in ("image_path", "image_label", "skip_reason")}
        | {"done": (layout.n_tasks,)},
        {name: (chunk,) for name in ("image_path", "image_label", "skip_reason")} | {"done": (1,)},
    )
    index = read_record(ImageIndex, group)
    index.image_path[:] = np.asarray(records_path, dtype=str)
    index.image_label[:] = np.asarray(
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
        shapes, chunks = _layer_shapes(layout, g)
        create_record_arrays(sub, RunLayer, shapes, chunks)
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


def _layer_shapes(layout: RunLayout, g: LayerGeometry) -> tuple[dict, dict]:
    """The shapes and chunks of a layer's arrays: a task's rows per chunk (its own row of
    the channel tops), only the arrays the layout asks for."""
    n, c = layout.n_images * g.samples_per_image, layout.chunk_size * g.samples_per_image
    shapes = {
        "acts": (n, g.channels),
        "path": (n,),
        "label": (n,),
        "image": (n,),
        "pos": (n, 2),
        "valid": (n,),
        "topk_class": (n, layout.topk),
        "topk_prob": (n, layout.topk),
        "pooled": (layout.n_images, g.channels),
    }
    if layout.attribution_slots:
        shapes["attribution"] = shapes["attribution_class"] = (n, layout.attribution_slots)
    if g.spatial and layout.channel_top:
        tops = (layout.n_tasks, g.channels, layout.channel_top)
        shapes["channel_top_value"] = shapes["channel_top_image"] = tops
        shapes["channel_top_pos"] = (*tops, 2)
    chunks = {name: (c, *shape[1:]) for name, shape in shapes.items()}
    chunks["pooled"] = (layout.chunk_size, g.channels)
    for name in ("channel_top_value", "channel_top_image", "channel_top_pos"):
        if name in shapes:
            chunks[name] = (1, *shapes[name][1:])
    return shapes, chunks


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
