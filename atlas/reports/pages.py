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
    return Environment(
        loader=PackageLoader("atlas.reports", "templates"), autoescape=select_autoescape(["html"])
    )


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
