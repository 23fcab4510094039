"""The figure of :mod:`atlas.attribution.sanity`: one panel per similarity measure, one
line per method (its mean over the photos at each step of the cascade, top block first),
and, dashed, the measure's floor between maps of different photos. A PNG through
matplotlib (headless), or a small SVG where matplotlib is not installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The report is an atlas.attribution.sanity.SanityReport, which writes this figure: the
# module names no type of it, so that the two do not import each other.

PANELS = {
    "spearman_abs": "Spearman |map|",
    "ssim": "SSIM",
    "ssim_over_floor": "SSIM over its floor",
    "spearman_native": "Spearman at native resolution",
}
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def plot_cascade(report: Any, out: Path) -> Path:
    """Write ``out/sanity.png`` (or ``.svg``) and return its path."""
    try:
        import matplotlib
    except ImportError:
        return _svg(report, out / "sanity.svg")
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 4.4), sharey=True)
    for ax, (measure, title) in zip(axes, PANELS.items(), strict=True):
        for colour, (name, method) in zip(COLOURS, report.methods.items(), strict=False):
            x = range(len(method.steps))
            ax.plot(x, method.curves[measure], marker="o", ms=3, color=colour, label=name)
            floor = method.floor_other_photos.get(measure)
            if floor is not None:
                ax.axhline(floor, color=colour, ls="--", lw=0.8)
        steps = next(iter(report.methods.values())).steps
        ax.set_xticks(range(len(steps)), steps, rotation=90, fontsize=6)
        ax.set_title(title, fontsize=10)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_ylim(-1.0, 1.02)
    axes[0].set_ylabel("similarity with the original map")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Cascading randomization, {report.model}, mean over {len(report.photos)} photos "
        "(dashed: between different photos' maps)",
        fontsize=10,
    )
    fig.tight_layout()
    path = out / "sanity.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _svg(report: Any, path: Path) -> Path:
    """The Spearman |map| panel alone as a plain SVG polyline chart."""
    width, height, pad = 480, 300, 40
    lines = []
    for colour, (name, method) in zip(COLOURS, report.methods.items(), strict=False):
        values = method.curves["spearman_abs"]
        step = (width - 2 * pad) / max(1, len(values) - 1)
        points = " ".join(
            f"{pad + i * step:.1f},{height - pad - (v if v == v else 0) * (height - 2 * pad):.1f}"
            for i, v in enumerate(values)
        )
        lines.append(f'<polyline fill="none" stroke="{colour}" points="{points}"/>')
        lines.append(
            f'<text x="{width - pad}" y="{pad + 14 * len(lines) / 2}" fill="{colour}" '
            f'font-size="11" text-anchor="end">{name}</text>'
        )
    body = "\n".join(lines)
    path.write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">\n'
        f'<text x="{pad}" y="20" font-size="12">Spearman |map| under cascading '
        f"randomization, {report.model}</text>\n{body}\n</svg>\n"
    )
    return path
