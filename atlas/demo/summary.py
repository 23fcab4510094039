"""What `make demo` prints at the end: where to look, and the shortcut in numbers."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summary(root: Path) -> str:
    lines = [f"The demo's outputs are in {root}/:"]
    for path, what in (
        (
            "site/index.html",
            "the viewer: the atlas, class atlases, reports (atlas serve serves it)",
        ),
        ("data/", "the generated world: train, test, test-swapped"),
        ("model/model.pt", "the trained CNN (metrics/train.json: accuracy per split and class)"),
        ("extract/activations.zarr", "activations, attributions and predictions of block4"),
        ("render/tiles/", "the atlas's icons as deep-zoom pyramids, one per level"),
        ("classes/report.json", "class atlases, the look-alike pair, the checkpoint comparison"),
        ("shortcut/measures.json", "habitat share of each class atlas; empty scenes; checkpoints"),
        ("shape-bias/", "each checkpoint's shape bias on cue-conflict images, with examples"),
        ("attribute/index.html", "attribution reports on the swapped-habitat and test images"),
        ("model-report/model.html", "the model report"),
    ):
        lines.append(f"  {path:28} {what}")
    metrics = root / "metrics" / "train.json"
    if metrics.exists():
        scores = json.loads(metrics.read_text())
        accuracy = ", ".join(
            f"{k} {v['accuracy']:.3f}" for k, v in scores.items() if isinstance(v, dict)
        )
        lines.append(f"Accuracy: {accuracy}.")
    measures = root / "shortcut" / "measures.json"
    if measures.exists():
        measured = json.loads(measures.read_text())
        atlases = measured["atlases"]
        shares = {
            group.split("/", 1)[1]: values["habitat share"]
            for group, values in atlases.items()
            if group.startswith("class/")
        }
        if shares:
            shown = ", ".join(
                f"{name} {share:.2f}" for name, share in sorted(shares.items(), key=lambda x: -x[1])
            )
            lines.append(f"Habitat share of each class atlas: {shown}.")
        for name, row in measured.get("checkpoints", {}).items():
            shown = ", ".join(f"{k} {v:.2f}" for k, v in row.items() if v is not None)
            lines.append(f"Checkpoint {name}: {shown}.")
    return "\n".join(lines)


def photos_summary(roots: list[Path]) -> str:
    """The real-network runs' (one per layer, the first the main one): where to look, and
    per layer how its layout keeps predictions together and the icons' quality."""
    root = roots[0]
    lines = [f"The real network's outputs (MobileNetV2 on credited photographs) are in {root}/:"]
    for path, what in (
        ("site/index.html", "the viewer (atlas serve serves it); site/credits.html credits all"),
        ("data/credits.csv", "author, licence and source of every photo"),
        ("attribute/index.html", "attribution reports on the photos"),
        ("channels/index.html", "every channel beside its top photo patches"),
        ("model-report/model.html", "the model report"),
    ):
        lines.append(f"  {path:28} {what}")
    for other in roots[1:]:
        lines.append(f"  {str(other) + '/site/index.html':28} the atlas of another layer")
    for layer_root in roots:
        lines.extend(_layer_lines(layer_root))
    return "\n".join(lines)


def _layer_lines(root: Path) -> list[str]:
    """One run's layout and icon measures, under its layer's name."""
    reduce = _read(root / "metrics" / "reduce.json")
    lines = [f"{reduce['layer'] if reduce else root.name}:"]
    if reduce:
        n = reduce["neighbours"]
        others = n["other_images"]
        lines.append(
            f"  Layout: {n['share']:.2f} of each activation's {n['k']} "
            f"nearest neighbours share its prediction"
            + (f" ({others:.2f} of those from other photos)" if others is not None else "")
            + f"; chance {n['chance']:.2f}."
        )
    render = _read(root / "metrics" / "render.json")
    if render:
        shown = ", ".join(
            f"level {size} {value}" for size, value in render.get("median_quality", {}).items()
        )
        lines.append(f"  Median icon quality (icon over its best exemplar): {shown}.")
        robust = render.get("median_robust_quality", {})
        if robust:
            shown = ", ".join(f"level {size} {value}" for size, value in robust.items())
            lines.append(f"  The same under strong random warps (8 px, 0.9-1.1, 20 deg): {shown}.")
        slopes = render.get("median_spectrum_slope", {})
        if slopes:
            shown = ", ".join(f"level {size} {value}" for size, value in slopes.items())
            lines.append(
                f"  Icons' power spectrum slope: {shown}; the photos' "
                f"{render.get('photo_spectrum_slope')} (white noise 0)."
            )
    return lines


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


if __name__ == "__main__":
    roots = [Path(a) for a in sys.argv[1:] if not a.startswith("--")] or [Path("outputs/demo")]
    print(photos_summary(roots) if "--photos" in sys.argv else summary(roots[0]))
