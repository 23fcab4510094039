"""HTML pages from the Jinja templates in ``atlas/reports/templates``: one environment,
autoescaping every value (anything from data reaches a page as text)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from atlas.version import package_version


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("atlas.reports", "templates"), autoescape=select_autoescape(["html"])
    )
    env.filters["points"] = svg_points
    return env


def svg_points(
    values, low: float = 0.0, high: float = 1.0, width: float = 200, height: float = 80
) -> str:
    """The ``points`` of an SVG polyline through ``values`` spaced evenly across
    ``width``, ``low`` at the bottom and ``high`` at the top; undefined values (None,
    NaN) are left out. Charts are inline SVG: no script, no inline style."""
    values = list(values)
    step = width / max(len(values) - 1, 1)
    points = []
    for i, value in enumerate(values):
        if value is None or value != value:
            continue
        y = height - (min(max(value, low), high) - low) / (high - low) * height
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)


def render_page(template: str, **context: Any) -> str:
    """The template filled in; every page also gets the package ``version``."""
    return _environment().get_template(template).render(version=package_version(), **context)


def write_page(path: str | Path, template: str, **context: Any) -> Path:
    path = Path(path)
    path.write_text(render_page(template, **context))
    return path


def write_assets(folder: str | Path) -> None:
    """The pages' stylesheet and script (``style.css``, ``sort.js``) into ``folder``: pages
    carry no inline style or script, so a strict Content-Security-Policy serves them."""
    for name in ("style.css", "sort.js"):
        (Path(folder) / name).write_text(render_page(name))
