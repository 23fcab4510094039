"""The Building Blocks section of an image's report (Olah et al., "The Building Blocks of
Interpretability", Distill 2018; computed by :mod:`atlas.building_blocks`): at one layer,
the spatial attribution to the explained class, the neuron groups (each with its map over
the image, its feature visualization and its attribution to the top classes) and the
semantic dictionary (the strongest channels at each position).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from atlas.building_blocks import (
    group_attributions,
    layer_attributions,
    neuron_groups,
    semantic_dictionary,
)
from atlas.config import AttributeConfig, Recipe
from atlas.models import LoadedModel
from atlas.reports.imaging import Scale, save_png

BLOCKS_CLASSES = 3  # the groups' attribution to the explained class and the next most likely


def blocks_section(
    model: LoadedModel,
    image: torch.Tensor,
    pixels: np.ndarray,
    stem: str,
    classes: list[int],
    options: AttributeConfig,
    recipe: Recipe,
    out: Path,
) -> dict:
    """The section's numbers and pictures for one image (``image`` normalized (3, H, W);
    ``pixels`` the crop as shown (H, W, 3) uint8; ``classes`` the explained class, then
    the others whose attributions are shown), the pictures written as
    ``<stem>.blocks.*.png`` under ``out``."""
    layer = options.blocks_layer
    found = dict(zip(classes, layer_attributions(model, image, layer, classes), strict=True))
    main = found[classes[0]]
    groups = neuron_groups(main.activation, options.blocks_groups)
    shares = {c: group_attributions(groups, found[c].gradient) for c in classes}
    size = pixels.shape[:2]

    spatial = _upsampled(main.spatial[None], size)[0]
    scale = _own_scale(spatial, signed=True)
    save_png(scale.overlay(pixels, spatial), out / f"{stem}.blocks.spatial.png")

    maps = _upsampled(groups.maps, size)
    group_scale = _own_scale(maps, signed=False)
    icons = _group_icons(model, layer, groups.directions, options, recipe)
    rows = []
    for i in range(len(groups.maps)):
        save_png(group_scale.overlay(pixels, maps[i]), out / f"{stem}.blocks.group{i}.png")
        if icons is not None:
            save_png(icons[i], out / f"{stem}.blocks.group{i}.icon.png")
        strongest = np.argsort(-np.abs(groups.directions[i]))[:4]
        rows.append(
            {
                "map": f"{stem}.blocks.group{i}.png",
                "icon": f"{stem}.blocks.group{i}.icon.png" if icons is not None else None,
                "attribution": [float(shares[c][0][i]) for c in classes],
                "channels": [
                    {"channel": int(c), "weight": float(groups.directions[i, c])} for c in strongest
                ],
            }
        )
    channels, values = semantic_dictionary(main.activation, options.blocks_top_channels)
    return {
        "layer": layer,
        "shape": "x".join(map(str, main.activation.shape)),
        "classes": [model.class_names[c] for c in classes],
        "spatial": f"{stem}.blocks.spatial.png",
        "spatial_scale": scale.describe(),
        "total": [found[c].total for c in classes],
        "groups": rows,
        "group_scale": group_scale.describe(),
        "remainder": [shares[c][1] for c in classes],
        "relative_error": groups.relative_error,
        "dictionary": [
            [
                [(int(channels[k, y, x]), float(values[k, y, x])) for k in range(len(channels))]
                for x in range(channels.shape[2])
            ]
            for y in range(channels.shape[1])
        ],
    }


def _upsampled(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Maps (K, h, w) brought to the image's size by bilinear interpolation."""
    tensor = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0].numpy()


def _own_scale(values: np.ndarray, signed: bool) -> Scale:
    scale = Scale(signed)
    scale.observe(values)
    scale.settle()
    return scale


def _group_icons(
    model: LoadedModel, layer: str, directions: np.ndarray, options: AttributeConfig, recipe
) -> np.ndarray | None:
    """Each group's feature visualization (its direction over the whole map), uint8 (K, S,
    S, 3); None where ``options.blocks_icon_steps`` is 0."""
    if not options.blocks_icon_steps:
        return None
    from atlas.featvis import objectives
    from atlas.featvis.render import render

    settings = recipe.model_copy(update={"steps": options.blocks_icon_steps, "robust_samples": 0})
    result = render(
        model,
        objectives.direction_map(layer, directions),
        settings,
        seeds=list(range(len(directions))),
    )
    return (np.clip(result.images, 0, 1) * 255 + 0.5).astype(np.uint8)
