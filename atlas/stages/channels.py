"""The channels stage: per layer, every channel's feature visualization beside its top
dataset images (:mod:`atlas.channels`), written as pages
(:mod:`atlas.reports.channel_pages`) with the folder's index (:mod:`atlas.store.channels`).

Outputs, under the output folder: ``index.html``, ``<layer>.html`` and its pictures in
``<layer>/``, ``channels.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atlas.channels import channel_sheet
from atlas.config import ChannelsConfig, RenderConfig
from atlas.credits import credits_in
from atlas.errors import DataError, choices_hint
from atlas.models import LoadedModel
from atlas.reports.channel_pages import write_channel_pages
from atlas.store import StoreLayerError, open_run
from atlas.store.channels import icon_cache, write_channel_index


@dataclass(frozen=True)
class ChannelsSummary:
    folder: str
    layers: list[dict[str, Any]]  # the index's entries (atlas.store.channels)
    seconds: float


def channel_pages(
    run_url: str,
    out_dir: str | Path,
    options: ChannelsConfig,
    render_options: RenderConfig,
    *,
    scheduler=None,
    model: LoadedModel | None = None,
) -> ChannelsSummary:
    """Write the channel pages of ``options.layers`` (default: every layer of the run with
    channel tops) under ``out_dir``: icons rendered with the run's model (``model``: that
    model in memory, for a run extracted from one) and ``render_options``' recipe, on the
    workers of ``scheduler`` (None: a local cluster; ``"inline"``: this process)."""
    start = time.perf_counter()
    run = open_run(run_url)
    available = run.channel_top_layers
    if not available:
        raise DataError(
            f"{run_url} holds no channel tops: extract a spatial layer with extract.channel_top > 0"
        )
    layers = options.layers or available
    for name in layers:
        if name not in available:
            raise StoreLayerError(
                f"{run_url} has no channel tops for layer {name!r} "
                + choices_hint(name, available, label="layers with them")
            )
    sheets = [
        channel_sheet(
            run,
            name,
            icon_cache(out_dir, name),
            options,
            render_options,
            scheduler=scheduler,
            model=model,
        )
        for name in layers
    ]
    images = int(run.image_valid().sum())
    entries = write_channel_pages(
        out_dir,
        sheets,
        objective=options.objective,
        render_options=render_options,
        images=images,
        credits=credits_in(run.image_root),
    )
    write_channel_index(
        out_dir, {"objective": options.objective, "images": images, "layers": entries}
    )
    return ChannelsSummary(str(out_dir), entries, time.perf_counter() - start)
