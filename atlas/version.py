"""The installed package's version, recorded in every output that says what made it."""

from __future__ import annotations

from functools import cache

# The name the package is installed under (pyproject.toml); it is imported as `atlas`.
DISTRIBUTION = "activation-atlas"


@cache
def package_version() -> str:
    """The installed distribution's version, or "unknown" when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
