"""Errors caused by what the user gave us.

Every error here is an :class:`AtlasError` and also the matching built-in (a missing
layer is a ``KeyError`` too), so library callers can catch either. The CLI prints an
``AtlasError`` as one line and exits with status 2; anything else is a bug (status 1).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AtlasError(Exception):
    """Base class of the errors a user can fix by changing their input."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(AtlasError, ValueError):
    """A config file or override is malformed, has an unknown key or a wrong type."""


class ModelSpecError(AtlasError, ValueError):
    """The model spec names an unknown architecture or an unusable option."""


class WeightsError(AtlasError, ValueError):
    """A weights file does not fit the architecture, or cannot be read."""


class WeightsFileNotFoundError(AtlasError, FileNotFoundError):
    """The weights file named in the model spec does not exist."""


class LayerNotFoundError(AtlasError, KeyError):
    """A layer name does not name a module of the model."""


class DataError(AtlasError, ValueError):
    """An image source or data set cannot be used."""


class MethodNotDefinedError(AtlasError, ValueError):
    """An attribution method has no rule for this network (guided backprop on a network
    without rectifiers); reports show the method as not defined, with this message."""


def close_matches(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """The entries of ``choices`` that look most like ``name``, best first."""
    choices = list(choices)
    found = difflib.get_close_matches(name, choices, n=n, cutoff=0.5)
    if not found:  # fall back to substring matches ("conv" -> "block1.conv")
        found = [c for c in choices if name and name.lower() in c.lower()][:n]
    return found


def choices_hint(
    name: str, choices: Iterable[str], *, label: str = "valid", limit: int = 12
) -> str:
    """A short "(did you mean ...?; valid: ...)" phrase for an error message."""
    choices = list(choices)
    close = close_matches(name, choices)
    parts = []
    if close:
        parts.append("did you mean " + ", ".join(close) + "?")
    shown = ", ".join(choices[:limit]) + (
        f", ... ({len(choices)} in all)" if len(choices) > limit else ""
    )
    parts.append(f"{label}: {shown}" if choices else f"{label}: none")
    return "(" + "; ".join(parts) + ")"
