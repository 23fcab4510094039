"""Running a stage's tasks: inline, on a local Dask cluster, or on any Dask cluster.

A task is a plain function call whose result is a small dict of counters; the task
writes its own output. Extraction and rendering both hand out their work this way.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from atlas.progress import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cluster:
    """Where tasks run. ``scheduler``: None for a new local cluster, ``"inline"`` for this
    process without Dask, the address of a running scheduler (``tcp://host:8786``), or a
    ``dask.distributed.Client`` already connected (a notebook's), which is left open."""

    scheduler: Any = None
    workers: int | None = None  # local cluster size (default: one per core)
    processes: bool = False  # local workers as processes instead of threads
    in_process: bool = False  # force threads (data that lives only in this process)

    @property
    def local_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


def run_tasks(
    function: Callable[..., dict],
    arguments: Sequence[tuple],
    cluster: Cluster,
    *,
    key: str,
    desc: str,
    unit: str,
    count: str,
    total: int,
    **options: Any,
) -> list[dict]:
    """Call ``function(*args, **options)`` for each ``args`` in ``arguments`` and return the
    results (in completion order). The progress bar advances by ``result[count]`` out of
    ``total``; ``key`` names the Dask tasks (the same key is never computed twice)."""
    results = []
    with progress(total=total, desc=desc, unit=unit) as bar:
        if cluster.scheduler == "inline":
            for args in arguments:
                results.append(function(*args, **options))
                bar.update(results[-1][count])
            return results
        from dask.distributed import as_completed

        with dask_client(cluster) as client:
            futures = [
                client.submit(function, *args, key=f"{key}-{i}", pure=False, **options)
                for i, args in enumerate(arguments)
            ]
            for future in as_completed(futures):
                results.append(future.result())
                bar.update(results[-1][count])
    return results


@contextmanager
def dask_client(cluster: Cluster) -> Iterator:
    """A client of the cluster at ``cluster.scheduler``, or of a new local cluster that is
    closed afterwards."""
    from dask.distributed import Client, LocalCluster

    # Importing distributed sets its loggers to INFO; keep its routine chatter out of the
    # terminal unless our own logging asks for that much detail.
    logging.getLogger("distributed").setLevel(
        logging.INFO if log.isEnabledFor(logging.INFO) else logging.ERROR
    )
    if isinstance(cluster.scheduler, Client):
        yield cluster.scheduler
        return
    if cluster.scheduler:
        with Client(cluster.scheduler) as client:
            yield client
        return
    dashboard = importlib.util.find_spec("bokeh") is not None
    with (
        LocalCluster(
            n_workers=cluster.local_workers,
            threads_per_worker=1,
            processes=cluster.processes and not cluster.in_process,
            dashboard_address=":0" if dashboard else None,
            silence_logs=logging.ERROR,
        ) as local,
        Client(local) as client,
    ):
        if dashboard:
            log.warning("Dask dashboard: %s", client.dashboard_link)
        yield client
