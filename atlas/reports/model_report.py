"""The model report (``atlas report-model``): the layer table, the first layer's filters,
and what the model expects each class to look like (class activation maximization by the
render path, :mod:`atlas.render`, with the report section's recipe); with a shape-bias
result, how the model decides between shape and texture."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePath

import numpy as np
import torch
from torch import nn

from atlas.config import ReportConfig
from atlas.errors import AtlasError, choices_hint
from atlas.layers import summarize
from atlas.models import LoadedModel
from atlas.render import Objectives, render_objectives
from atlas.reports.imaging import save_png, tile
from atlas.reports.pages import write_assets, write_page
from atlas.store.channels import PAGE as CHANNELS_PAGE
from atlas.store.channels import read_channel_index
from atlas.store.shape_bias import read_shape_bias


def first_filters(module: nn.Module) -> tuple[str, np.ndarray] | None:
    """The first convolution taking 3 channels, its filters (N, k, k, 3) each scaled to
    [0, 1] on its own (filters differ in scale by orders of magnitude)."""
    for name, layer in module.named_modules():
        if isinstance(layer, nn.Conv2d) and layer.in_channels == 3:
            weights = layer.weight.detach().float().cpu().numpy().transpose(0, 2, 3, 1)
            low = weights.min(axis=(1, 2, 3), keepdims=True)
            high = weights.max(axis=(1, 2, 3), keepdims=True)
            return name, (weights - low) / np.where(high > low, high - low, 1)
    return None


def model_report(
    model: LoadedModel,
    out_dir: str | Path,
    options: ReportConfig,
    *,
    shape_bias: str | Path | None = None,
    channels: str | Path | None = None,
) -> Path:
    """Write ``model.html`` and its pictures under ``out_dir``; returns the page's path.
    ``shape_bias``: an output folder of the shape-bias stage, shown with its examples (a
    folder without a result adds nothing). ``channels``: an output folder of the channels
    stage, summarized and linked (relative links: in a site, keep the two folders as
    siblings)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bias = _shape_bias_section(shape_bias, out) if shape_bias is not None else None
    summary = summarize(model.module, model.preprocessing.input_size)
    filters = first_filters(model.module)
    filter_file = None
    if filters is not None:
        name, weights = filters
        picture = (
            tile(weights, columns=min(16, len(weights)), pad=1, background=1.0) * 255 + 0.5
        ).astype(np.uint8)
        filter_file = "filters.png"
        save_png(picture, out / filter_file, scale=max(1, 96 // weights.shape[1]))
    names = options.classes or model.class_names[:16]
    unknown = [n for n in names if n not in model.class_names]
    if unknown:
        raise AtlasError(
            f"unknown class {unknown[0]!r} "
            + choices_hint(unknown[0], model.class_names, label="classes")
        )
    indices = [model.class_names.index(n) for n in names]
    seeds = [options.seed + i for i in range(len(indices))]
    result = render_objectives(model, Objectives.classes(indices), seeds, options)
    classes = []
    for i, (name, image, value) in enumerate(zip(names, result.images, result.values, strict=True)):
        file = f"class-{i}.png"
        save_png((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), out / file)
        with torch.no_grad():
            probability = torch.softmax(
                model.module(
                    model.preprocessing.normalize(
                        torch.from_numpy(image).permute(2, 0, 1)[None].to(model.device)
                    )
                ),
                dim=1,
            )[0, indices[i]].item()
        classes.append(
            {"name": name, "file": file, "logit": float(value), "probability": probability}
        )
    page = write_page(
        out / "model.html",
        "model.html",
        spec=model.spec,
        # The file's name only: a page never shows a path of the machine that built it.
        weights=PurePath(model.spec.weights).name if model.spec.weights else None,
        summary=summary,
        filters=filter_file,
        filter_layer=filters[0] if filters else None,
        classes=classes,
        options=options,
        shape_bias=bias,
        channels=_channels_section(channels, out) if channels is not None else None,
    )
    write_assets(out)
    return page


def _shape_bias_section(folder: str | Path, out: Path) -> dict | None:
    """The shape-bias result in ``folder``, its example images copied beside the page."""
    result = read_shape_bias(folder)
    if result is None:
        return None
    (out / "shape-bias").mkdir(exist_ok=True)
    for items in result["examples"].values():
        for item in items:
            copied = f"shape-bias/{PurePath(item['file']).name}"
            shutil.copyfile(Path(folder) / item["file"], out / copied)
            item["file"] = copied
    return result


def _channels_section(folder: str | Path, out: Path) -> dict:
    """The channel pages' index, with links relative to the report's folder."""
    index = read_channel_index(folder)
    base = PurePath(os.path.relpath(Path(folder).resolve(), out.resolve())).as_posix()
    layers = [{**layer, "link": f"{base}/{layer['page']}"} for layer in index["layers"]]
    return {**index, "layers": layers, "link": f"{base}/{CHANNELS_PAGE}"}
