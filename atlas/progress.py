"""Progress bars for long work: rate and ETA on a terminal, a widget in a notebook
(``tqdm.auto``), sparse lines in logs.

Set ``ATLAS_PROGRESS=0`` to silence them (tests do).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> tqdm:
    """A ``tqdm`` bar on stderr; refreshes every 0.1 s on a terminal, every 10 s otherwise."""
    enabled = os.environ.get("ATLAS_PROGRESS", "1") not in ("0", "false", "no")
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.1 if interactive else 10.0)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs["disable"] = kwargs.get("disable", False) or not enabled
    if interactive:
        kwargs["file"] = sys.stderr  # a notebook's widget has no file
    return tqdm(iterable, **kwargs)
