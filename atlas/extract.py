"""Extraction's computation: images to a layer's activation vectors, class attributions
and predictions, one batch (:func:`batch_samples`) and one task (:func:`run_task`, a chunk
of images written into the run store by a worker) at a time. The extract stage
(:mod:`atlas.stages.extract`) lists the images, creates the store and hands out the tasks.

Class attribution follows the activation-atlas papers (Carter et al., "Activation
Atlas", Distill 2019): the activation vector ``a`` at the sampled position times the
gradient of the class logit with respect to it, summed over channels, i.e. the first-order
(linear) share of that logit the vector accounts for.

The same pass records, per image, the layer's spatial mean (a whole-image embedding) and,
per channel of a spatial layer, its largest value anywhere in the map and where: each
task ranks its images by it, channel by channel (Zeiler & Fergus, "Visualizing and
Understanding Convolutional Networks", 2014), without reading an image twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from atlas.channel_tops import ChannelTops
from atlas.config import ExtractConfig, ModelSpec
from atlas.data import UnusableImage, read_pixels
from atlas.geometry import Box, LayerGeometry
from atlas.layers import get_layer
from atlas.models import LoadedModel, channels_last_input
from atlas.runtime import cached_model, thread_copy
from atlas.store import RunLayer, RunLayout, open_run

log = logging.getLogger(__name__)

ALL_CLASSES_UP_TO = 32  # attribution "auto": every class up to this many, else the top-k


# The per-batch computation (pure: tensors in, arrays out) --------------------------------


def probe_layers(loaded: LoadedModel, options: ExtractConfig) -> tuple[LayerGeometry, ...]:
    """Each layer's output shape at the model's input size, read as maps or vectors
    (:meth:`atlas.models.LoadedModel.views`), and its samples per image."""
    size = loaded.preprocessing.input_size
    for name in options.layers:
        get_layer(loaded.module, name)
    with torch.no_grad(), loaded.capture(options.layers) as outputs:
        loaded.module(torch.zeros(1, 3, size, size, device=loaded.device))
    geometries = []
    for name in options.layers:
        output = outputs[name]
        if output.dim() == 2:
            geometries.append(LayerGeometry(name, output.shape[1], 0, 0, 1, size))
            continue
        _, channels, height, width = output.shape
        per_image = {"all": min(height * width, options.max_positions)}.get(options.sampling, 1)
        field = receptive_field(loaded, name)
        geometries.append(LayerGeometry(name, channels, height, width, per_image, size, field))
    return tuple(geometries)


def receptive_field(loaded: LoadedModel, layer: str, trials: int = 4) -> Box:
    """The input box (x0, y0, x1, y1) that the layer's central position depends on,
    measured: where the gradient of that position's activations with respect to random
    inputs is non-zero (union over a few inputs, since ReLUs and max-pools route it)."""
    size = loaded.preprocessing.input_size
    generator = torch.Generator().manual_seed(0)
    support = torch.zeros(size, size, dtype=torch.bool)
    for _ in range(trials):
        image = (
            torch.randn(1, 3, size, size, generator=generator).to(loaded.device).requires_grad_()
        )
        with loaded.capture([layer], detach=False) as outputs:
            loaded.module(image)
        output = outputs[layer]
        centre = output[0, :, output.shape[2] // 2, output.shape[3] // 2]
        (grad,) = torch.autograd.grad(centre.sum(), image)
        support |= (grad[0].abs().sum(dim=0) > 0).cpu()
    rows, cols = torch.nonzero(support.any(dim=1)), torch.nonzero(support.any(dim=0))
    if len(rows) == 0:
        return Box(0, 0, size, size)
    return Box(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


def sample_positions(
    geometry: LayerGeometry, images: Sequence[int], options: ExtractConfig
) -> np.ndarray:
    """The (y, x) positions sampled from each image, shape (len(images), per_image, 2).

    Random choices are seeded by (seed, image index): the same whatever the worker.
    -1 marks the spatial mean (and vector layers).
    """
    per = geometry.samples_per_image
    out = np.full((len(images), per, 2), -1, dtype=np.int32)
    if not geometry.spatial or options.sampling == "mean":
        return out
    h, w = geometry.height, geometry.width
    if options.sampling == "center":
        out[:] = (h // 2, w // 2)
        return out
    for row, image in enumerate(images):
        rng = np.random.default_rng([options.seed, int(image)])
        if options.sampling == "random":
            margin_y = options.border if h > 2 * options.border else 0
            margin_x = options.border if w > 2 * options.border else 0
            out[row, 0] = (
                rng.integers(margin_y, h - margin_y),
                rng.integers(margin_x, w - margin_x),
            )
        else:  # all: every position, or a seeded subset of max_positions of them
            flat = (
                np.arange(h * w) if per == h * w else np.sort(rng.choice(h * w, per, replace=False))
            )
            out[row] = np.stack([flat // w, flat % w], axis=1)
    return out


def chunk_size(configured: int, n_images: int) -> int:
    """Images per task: as configured, but small enough that a modest run still splits into
    ~16 tasks for the workers to share (never under 32 unless configured so). Depends on
    the image count only, so any number of workers makes the same store."""
    return min(configured, max(32, -(-n_images // 16)))


def attribution_slots(options: ExtractConfig, num_classes: int) -> int:
    """How many classes each sample's attribution covers (0: off)."""
    mode = options.attribution
    if mode == "auto":
        mode = "all" if num_classes <= ALL_CLASSES_UP_TO else "topk"
    return {"off": 0, "all": num_classes, "topk": min(options.attribution_k, num_classes)}[mode]


@dataclass
class BatchSamples:
    """What one batch gives of one layer (see :func:`batch_samples`)."""

    acts: np.ndarray  # (B*P, C)
    pooled: np.ndarray  # (B, C)
    attribution: np.ndarray | None = None  # (B*P, slots)
    attribution_class: np.ndarray | None = None  # (B*P, slots)
    peak: np.ndarray | None = None  # (B, C), a spatial layer's
    peak_at: np.ndarray | None = None  # (B, C)


def batch_samples(
    loaded: LoadedModel,
    inputs: torch.Tensor,
    geometries: Sequence[LayerGeometry],
    positions: dict[str, np.ndarray],
    *,
    slots: int,
    topk: int,
    targets: torch.Tensor | None = None,
) -> tuple[dict[str, BatchSamples], np.ndarray, np.ndarray]:
    """Activations (and attributions) at the sampled positions of one batch.

    ``inputs`` are normalized model inputs (B, 3, S, S); ``positions[layer]`` is (B, P, 2).
    The ``slots`` classes attributed to are every class when ``slots`` is their number,
    else each image's top ``slots`` predictions, or ``targets`` (B, slots) when given.
    Returns per layer a :class:`BatchSamples`: ``acts`` (B*P, C) and, when ``slots``,
    ``attribution`` and ``attribution_class`` (B*P, slots), and per image ``pooled``
    (B, C), the spatial mean (the vector itself for a vector layer), and for a spatial
    layer ``peak`` (B, C), each channel's largest value over the map, and ``peak_at``
    (B, C), its flat position ``y * width + x`` (the first in row-major order on ties);
    plus the top-k predicted classes and probabilities (B, topk).
    """
    model = loaded.module
    names = [g.name for g in geometries]
    grad_mode = torch.enable_grad() if slots else torch.inference_mode()
    with grad_mode, loaded.capture(names, detach=not slots) as outputs:
        if slots:
            inputs = inputs.requires_grad_(True)  # so layer outputs carry a graph even if frozen
        logits = model(inputs)
    probs = torch.softmax(logits.detach().float(), dim=1)
    top_prob, top_class = probs.topk(topk, dim=1)
    gathered = {g.name: _gather(outputs[g.name], g, positions[g.name]) for g in geometries}
    with torch.no_grad():
        result = {
            g.name: BatchSamples(
                gathered[g.name].detach().float().cpu().numpy(),
                **_image_summaries(outputs[g.name].detach(), g),
            )
            for g in geometries
        }
    if slots:
        num_classes = logits.shape[1]
        if targets is not None:
            classes = targets.to(logits.device).reshape(len(logits), slots)
        elif slots == num_classes:
            classes = torch.arange(num_classes, device=logits.device).expand(len(logits), -1)
        else:
            classes = logits.detach().topk(slots, dim=1).indices
        scores = {name: [] for name in names}
        tensors = [outputs[name] for name in names]
        for slot in range(slots):
            target = logits.gather(1, classes[:, slot : slot + 1]).sum()
            grads = torch.autograd.grad(target, tensors, retain_graph=slot < slots - 1)
            for g, grad in zip(geometries, grads, strict=True):
                grad_at = _gather(grad, g, positions[g.name], mean_as_sum=True)
                scores[g.name].append((gathered[g.name] * grad_at).sum(dim=1).detach())
        for g in geometries:
            per = g.samples_per_image
            result[g.name].attribution = torch.stack(scores[g.name], dim=1).float().cpu().numpy()
            result[g.name].attribution_class = (
                classes.repeat_interleave(per, dim=0).to(torch.int32).cpu().numpy()
            )
    return result, top_class.to(torch.int32).cpu().numpy(), top_prob.cpu().numpy()


def _image_summaries(tensor: torch.Tensor, geometry: LayerGeometry) -> dict[str, np.ndarray]:
    """Per image of a layer's output: ``pooled``, and for a map ``peak`` and ``peak_at``
    (see :func:`batch_samples`)."""
    if not geometry.spatial:
        return {"pooled": tensor.float().cpu().numpy()}
    # Float first: a half-precision mean over a large map loses digits.
    flat = tensor.float().flatten(2)
    peak, peak_at = flat.max(dim=2)  # PyTorch returns the first maximal index on ties
    return {
        "pooled": flat.mean(dim=2).cpu().numpy(),
        "peak": peak.cpu().numpy(),
        "peak_at": peak_at.to(torch.int32).cpu().numpy(),
    }


def task_channel_tops(
    peak: np.ndarray, peak_at: np.ndarray, images: np.ndarray, width: int, k: int
) -> ChannelTops:
    """The ``k`` images of one task with the largest value of each channel: ``peak`` and
    ``peak_at`` (N, C) per image (:func:`batch_samples`), ``images`` (N,) their global
    indices (-1: skipped), ``width`` the map's. Ties go to the lower image index."""
    channels = peak.shape[1]
    yx = np.stack([peak_at // width, peak_at % width], axis=-1).astype(np.int32)
    return ChannelTops.select(
        np.ascontiguousarray(peak.T),
        np.broadcast_to(images.astype(np.int64), (channels, len(images))),
        np.ascontiguousarray(yx.transpose(1, 0, 2)),
        k,
    )


def _gather(
    tensor: torch.Tensor, geometry: LayerGeometry, positions: np.ndarray, mean_as_sum: bool = False
) -> torch.Tensor:
    """Vectors at the sampled positions: (B*P, C). For the mean policy, the spatial mean
    of activations; of gradients, the spatial sum (the gradient with respect to the mean)."""
    if not geometry.spatial:
        return tensor
    if positions[0, 0, 0] < 0:
        return tensor.sum(dim=(2, 3)) if mean_as_sum else tensor.mean(dim=(2, 3))
    batch = torch.arange(tensor.shape[0], device=tensor.device).repeat_interleave(
        positions.shape[1]
    )
    flat = torch.as_tensor(positions.reshape(-1, 2), device=tensor.device, dtype=torch.long)
    return tensor[batch, :, flat[:, 0], flat[:, 1]]


# One task: a chunk of images, on a worker -----------------------------------------------


def run_task(
    task: int,
    store_url: str,
    image_root: str,
    *,
    batch_size: int,
    threads: int,
    decode_threads: int,
    device: str,
    model: LoadedModel | None = None,
    spec: ModelSpec | None = None,
) -> dict:
    """Extract one chunk of images (read under ``image_root``) into the store and mark it
    done, with the store's model: ``spec`` (its paths resolved by the client), or
    ``model``, one in memory. Returns counters."""
    start = time.perf_counter()
    torch.set_num_threads(threads)
    store = open_run(store_url, mode="r+")
    options = store.extract_options()
    if model is None:
        spec = spec or store.model_spec()
        loaded = cached_model(spec, device=device, seed=options.seed)
    else:
        loaded = thread_copy(model)
        loaded.module.to(device)
    layout = store.layout
    images = layout.images_of(task)
    indices = np.arange(images.start, images.stop)
    index = store.images
    names = index.image_path[images]
    paths = [store.locate(name, image_root) for name in names]
    labels = index.image_label[images]
    n = len(indices)

    reasons = np.full(n, "", dtype=object)
    columns = {g.name: _TaskColumns.empty(g, n, layout) for g in layout.layers}
    positions = {g.name: sample_positions(g, indices, options) for g in layout.layers}
    top_class = np.full((n, layout.topk), -1, np.int32)
    top_prob = np.zeros((n, layout.topk), np.float32)
    prep = loaded.preprocessing
    decode = _Decoder(prep, options.max_pixels)

    batches = [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    with ThreadPoolExecutor(max_workers=decode_threads) as pool:
        pending = pool.map(decode, paths[batches[0].start : batches[0].stop]) if batches else None
        for b, rows in enumerate(batches):
            decoded = list(pending)
            if b + 1 < len(batches):  # decode the next batch while this one runs
                following = batches[b + 1]
                pending = pool.map(decode, paths[following.start : following.stop])
            ok = [i for i, item in zip(rows, decoded, strict=True) if not isinstance(item, str)]
            for i, item in zip(rows, decoded, strict=True):
                if isinstance(item, str):
                    reasons[i] = item
            if not ok:
                continue
            pixels = torch.stack([decoded[i - rows.start] for i in ok]).to(loaded.device)
            inputs = pixels.float().div_(255)
            inputs = channels_last_input(prep.normalize(inputs))
            batch_pos = {name: pos[ok] for name, pos in positions.items()}
            samples, classes, probs = batch_samples(
                loaded,
                inputs,
                layout.layers,
                batch_pos,
                slots=layout.attribution_slots,
                topk=layout.topk,
            )
            top_class[ok], top_prob[ok] = classes, probs
            for g in layout.layers:
                columns[g.name].put(samples[g.name], ok, g.samples_per_image)

    valid = reasons == ""
    records = {}
    for g in layout.layers:
        per = g.samples_per_image
        task_columns = columns[g.name]
        tops = (
            task_channel_tops(
                task_columns.peak,
                task_columns.peak_at,
                np.where(valid, indices, -1),
                g.width,
                layout.channel_top,
            )
            if task_columns.peak is not None
            else None
        )
        records[g.name] = RunLayer(
            name=g.name,
            acts=task_columns.acts,
            attribution=task_columns.attribution,
            attribution_class=task_columns.attribution_class,
            path=np.repeat(names, per),
            label=np.repeat(labels, per).astype(np.int32),
            image=np.repeat(indices, per),
            pos=np.where(np.repeat(valid, per)[:, None], positions[g.name].reshape(-1, 2), -1),
            valid=np.repeat(valid, per),
            topk_class=np.repeat(top_class, per, axis=0),
            topk_prob=np.repeat(top_prob, per, axis=0),
            pooled=task_columns.pooled,
            channel_top_value=None if tops is None else tops.value,
            channel_top_image=None if tops is None else tops.image,
            channel_top_pos=None if tops is None else tops.pos,
        )
    store.write_task(task, reasons.astype(str), records)
    return {
        "task": task,
        "images": n,
        "skipped": int((~valid).sum()),
        "seconds": time.perf_counter() - start,
        "rss": _rss(),
    }


class _Decoder:
    """Path to the model's square uint8 crop (3, S, S), or the reason it is unusable."""

    def __init__(self, preprocessing, max_pixels: int) -> None:
        self.crop, self.max_pixels = preprocessing.crop, max_pixels
        self.draft_size = preprocessing.resize_size

    def __call__(self, path: str) -> torch.Tensor | str:
        try:
            pixels = read_pixels(str(path), max_pixels=self.max_pixels, draft_size=self.draft_size)
            return self.crop(pixels)
        except UnusableImage as err:
            return err.reason


@dataclass
class _TaskColumns:
    """What a task gathers of one layer, batch by batch: per sample the activations (and
    attributions), per image the pooled vectors and, where the channels' top images are
    ranked, their peaks (zeros for skipped images)."""

    acts: np.ndarray
    pooled: np.ndarray
    attribution: np.ndarray | None = None
    attribution_class: np.ndarray | None = None
    peak: np.ndarray | None = None
    peak_at: np.ndarray | None = None

    @classmethod
    def empty(cls, g: LayerGeometry, n: int, layout: RunLayout) -> _TaskColumns:
        rows, slots = n * g.samples_per_image, layout.attribution_slots
        columns = cls(
            np.zeros((rows, g.channels), np.float32), np.zeros((n, g.channels), np.float32)
        )
        if slots:
            columns.attribution = np.zeros((rows, slots), np.float32)
            columns.attribution_class = np.full((rows, slots), -1, np.int32)
        if g.spatial and layout.channel_top:
            columns.peak = np.zeros((n, g.channels), np.float32)
            columns.peak_at = np.zeros((n, g.channels), np.int32)
        return columns

    def put(self, batch: BatchSamples, images: list[int], per: int) -> None:
        """One batch's values, of the task's images ``images`` (``per`` samples each)."""
        rows = (np.asarray(images)[:, None] * per + np.arange(per)).ravel()
        self.acts[rows] = batch.acts
        self.pooled[images] = batch.pooled
        if self.attribution is not None:
            self.attribution[rows] = batch.attribution
            self.attribution_class[rows] = batch.attribution_class
        if self.peak is not None:
            self.peak[images] = batch.peak
            self.peak_at[images] = batch.peak_at


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss
