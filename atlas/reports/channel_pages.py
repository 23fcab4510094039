"""Channel pages (``atlas channels``): per layer, every channel's feature visualization
beside its top dataset images cropped to the receptive field of their peak
(:class:`atlas.channels.ChannelSheet`), and an index of the layers.

Image names are data: they reach the pages as text (the templates autoescape), and the
pictures are named by channel and rank, never by an image's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from atlas.channels import ChannelSheet
from atlas.config import RenderConfig
from atlas.credits import Credit, credit_entry
from atlas.reports.imaging import save_png
from atlas.reports.pages import write_assets, write_page
from atlas.store.channels import crop_file, icon_file

SHOWN_PX = 96  # pictures are shown scaled by a whole factor to about this size


def write_channel_pages(
    out_dir: str | Path,
    sheets: Sequence[ChannelSheet],
    *,
    objective: str,
    render_options: RenderConfig,
    images: int,
    credits: Mapping[str, Credit] | None = None,
) -> list[dict[str, Any]]:
    """Write ``<layer>.html`` and its crops for each sheet (the icons are there already:
    :func:`atlas.channels.channel_sheet`), and ``index.html``, under ``out_dir``;
    ``images``: how many images the tops were found among. Returns each layer's entry of
    the folder's index (:mod:`atlas.store.channels`). ``credits``: the images' credits
    (:mod:`atlas.credits`), shown under each crop of a credited image."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for sheet in sheets:
        entries.append(_layer_page(out, sheet, objective, render_options, credits))
    write_page(out / "index.html", "channels_index.html", layers=entries, images=images)
    write_assets(out)
    return entries


def _layer_page(
    out: Path,
    sheet: ChannelSheet,
    objective: str,
    options: RenderConfig,
    credits: Mapping[str, Credit] | None,
) -> dict[str, Any]:
    layer, geometry, tops = sheet.layer, sheet.geometry, sheet.tops
    (out / layer).mkdir(exist_ok=True)
    crop_h, crop_w = sheet.crops.shape[2:4]
    scale = max(1, SHOWN_PX // max(crop_h, crop_w, options.icon_size))
    dead = sheet.never_active()
    # An icon's objective and an image's peak are both one position's value only for the
    # neuron objective; a map's mean is not comparable with them.
    ratio = sheet.icon_ratio() if objective == "neuron" else np.full(geometry.channels, np.nan)
    channels = []
    for c in range(geometry.channels):
        exemplars = []
        for rank in np.flatnonzero(tops.image[c] >= 0):
            file = crop_file(layer, c, int(rank))
            if sheet.readable[c, rank]:
                save_png(sheet.crops[c, rank], out / file)
            y, x = (int(v) for v in tops.pos[c, rank])
            exemplars.append(
                {
                    "file": file if sheet.readable[c, rank] else None,
                    "name": str(sheet.names[c, rank]),
                    "value": float(tops.value[c, rank]),
                    "y": y,
                    "x": x,
                    "box": geometry.crop_box(y, x),
                }
                | credit_entry(credits, str(sheet.names[c, rank]))
            )
        channels.append(
            {
                "index": c,
                "icon": icon_file(layer, c),
                "icon_value": float(sheet.icon_values[c]),
                "ratio": None if np.isnan(ratio[c]) else float(ratio[c]),
                "dead": bool(dead[c]),
                "exemplars": exemplars,
            }
        )
    page = f"{layer}.html"
    finite = ratio[np.isfinite(ratio)]
    entry = {
        "name": layer,
        "page": page,
        "channels": geometry.channels,
        "top": int(tops.image.shape[1]),
        "map": [geometry.height, geometry.width],
        "field": [int(crop_h), int(crop_w)],
        "never_active": int(dead.sum()),
        "median_icon_ratio": round(float(np.median(finite)), 4) if len(finite) else None,
    }
    write_page(
        out / page,
        "channels.html",
        layer=entry,
        channels=channels,
        objective=objective,
        options=options,
        crop_px=(crop_w * scale, crop_h * scale),
        icon_px=options.icon_size * scale,
    )
    return entry
