"""The installed package's version, recorded in every output that says what made it."""

from __future__ import annotations

from functools import cache


@cache
def package_version() -> str:
    """The ``atlas`` distribution's version, or "unknown" when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("atlas")
    except PackageNotFoundError:
        return "unknown"
