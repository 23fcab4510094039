"""The extract stage: a model's layer activations for every image of a source, in a run
store (:mod:`atlas.store.run`).

The client lists the images, creates the store and hands out tasks, one per chunk of
images, to Dask workers (:mod:`atlas.distribute`): a ``LocalCluster`` by default, or any
cluster by address. Each worker loads the model once, decodes its images, runs the forward
(and backward, for attribution) passes and writes its own Zarr chunks
(:func:`atlas.extract.run_task`); nothing but a few counters returns through the client.
A task marks itself done after writing, so an interrupted run resumes with the tasks
still missing and yields the same store.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from atlas.config import ExtractConfig, ModelSpec
from atlas.data import ImageRecord, absolute_root, list_images
from atlas.distribute import Cluster, run_tasks
from atlas.extract import attribution_slots, chunk_size, probe_layers, run_task
from atlas.models import LoadedModel, load_model, weights_digest, with_absolute_paths
from atlas.runtime import resolve_device
from atlas.store import RunLayout, RunStore, create_run, sibling, write_skipped_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractSummary:
    store: str
    images: int
    skipped: int
    tasks_run: int
    seconds: float  # wall clock, start to end
    task_seconds: float  # summed over tasks: the work itself, without start-up


def extract_store(
    source: str,
    store_url: str,
    model: ModelSpec | LoadedModel,
    options: ExtractConfig,
    *,
    scheduler=None,
    overwrite: bool = False,
) -> ExtractSummary:
    """Extract ``options.layers`` of the model for every image of ``source`` into ``store_url``.

    ``model`` is a spec (each worker loads it) or a model in memory
    (:func:`atlas.models.wrap_model`, handed to the workers). ``scheduler``: None for a
    local cluster, ``"inline"``, a scheduler's address or a connected Dask ``Client``.
    Resumes an existing store made with the same model, options and images; refuses one
    made otherwise unless ``overwrite``. Writes ``skipped.csv`` beside the store.
    """
    start = time.perf_counter()
    in_memory = isinstance(model, LoadedModel)
    loaded = model if in_memory else load_model(model, seed=options.seed)
    geometries = probe_layers(loaded, options)
    listing = list_images(source, loaded.class_names)
    records = listing.records[: options.limit] if options.limit else listing.records
    slots = attribution_slots(options, loaded.num_classes)
    layout = RunLayout(
        n_images=len(records),
        chunk_size=chunk_size(options.chunk_size, len(records)),
        layers=geometries,
        topk=min(options.topk, loaded.num_classes),
        attribution_slots=slots,
        channel_top=options.channel_top,
    )
    identity = {
        "model": loaded.spec.model_dump(mode="json"),
        **({"weights_digest": weights_digest(loaded.module)} if in_memory else {}),
        "extract": options.model_dump(mode="json", exclude=set(ExtractConfig.OPERATIONAL)),
        "source": str(source),
        "images": _fingerprint(records),
        "n_images": len(records),
    }
    store = create_run(
        store_url,
        layout,
        identity=identity,
        records_path=[r.name for r in records],
        records_label=[r.label for r in records],
        class_names=loaded.class_names,
        image_root=listing.root,
        overwrite=overwrite,
    )
    pending = store.pending_tasks()
    task_seconds = 0.0
    if pending:
        local_only = any(str(u).startswith("memory://") for u in (source, store_url))
        task_seconds = _run_tasks(
            store,
            pending,
            options,
            scheduler=scheduler,
            in_process=local_only or in_memory,
            model=loaded if in_memory else None,
        )
    else:
        log.info("%s is complete; nothing to extract", store_url)
    skipped = write_skipped_csv(store, sibling(store_url, "skipped.csv"))
    elapsed = time.perf_counter() - start
    return ExtractSummary(store_url, len(records), skipped, len(pending), elapsed, task_seconds)


def _run_tasks(
    store: RunStore,
    pending: list[int],
    options: ExtractConfig,
    *,
    scheduler,
    in_process: bool,
    model: LoadedModel | None,
) -> float:
    """Run the pending tasks (see :mod:`atlas.distribute`); returns the summed task time."""
    cluster = Cluster(scheduler, options.workers, options.processes, in_process)
    threads = options.threads_per_worker
    if scheduler == "inline":  # one process: give torch every core a worker would get
        threads *= cluster.local_workers
    layout = store.layout
    results = run_tasks(
        run_task,
        # What the user gave relative to their working directory is resolved here, before
        # the work is shipped: a worker elsewhere reads the same store, images and weights.
        [(task, absolute_root(store.url), absolute_root(store.image_root)) for task in pending],
        cluster,
        key=f"extract-{store.identity_hash}",
        desc="extract",
        unit="img",
        count="images",
        total=sum(layout.images_of(t).stop - layout.images_of(t).start for t in pending),
        batch_size=options.batch_size,
        threads=threads,
        decode_threads=options.decode_threads,
        device=str(resolve_device(options.device)),
        model=model,
        spec=None if model is not None else with_absolute_paths(store.model_spec()),
    )
    task_seconds = sum(r["seconds"] for r in results)
    log.info("%d tasks in %.1f s of task time", len(results), task_seconds)
    return task_seconds


def _fingerprint(records: Sequence[ImageRecord]) -> str:
    digest = hashlib.sha256()
    for record in records:  # by name: the same images give the same store wherever they are
        digest.update(f"{record.name}\t{record.label}\n".encode())
    return digest.hexdigest()[:16]
