"""Weights files: reading state_dicts in their common wrappings, and our checkpoints.

A weights file may be a plain state_dict (``.pt``/``.pth``), a training checkpoint that
nests it (under ``state_dict``, ``model``, ...), keys prefixed by ``module.`` (DataParallel)
or ``_orig_mod.`` (torch.compile), or ``.safetensors``. Checkpoints written by
:func:`save_checkpoint` also carry the resolved model spec, so they load on their own.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from atlas.errors import WeightsError, WeightsFileNotFoundError

# Keys under which training frameworks commonly nest the state_dict, in order of preference.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "ema", "params")
# Prefixes that DataParallel, torch.compile and Lightning put before every key.
KEY_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")


def read_weights_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a state_dict from ``.pt``/``.pth``/``.safetensors``, unwrapping checkpoints.

    Returns the tensors and the atlas metadata the file carries (empty if none).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):  # not a pickle of objects: corrupt or foreign
            raise WeightsError(f"cannot read weights file {path}: not a torch checkpoint") from None
        raise WeightsError(
            f"{path} holds pickled Python objects, not a plain state_dict; "
            "save model.state_dict() instead of the model object"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise WeightsError(f"cannot read weights file {path}: {first}") from None
    meta = {}
    if isinstance(payload, dict) and isinstance(payload.get("atlas"), dict):
        meta = payload["atlas"]
    state = _find_state_dict(payload)
    if state is None:
        keys = (
            ", ".join(map(str, list(payload)[:8]))
            if isinstance(payload, dict)
            else type(payload).__name__
        )
        raise WeightsError(f"{path} contains no state_dict (found: {keys})")
    return state, meta


def save_checkpoint(module: nn.Module, meta: Mapping[str, Any], path: str | Path) -> Path:
    """Write the module's weights plus ``meta`` (the resolved model spec: see
    :meth:`atlas.models.LoadedModel.checkpoint_meta`), so ``load_model`` needs only the file.

    ``.safetensors`` keeps the spec as JSON metadata; anything else is a torch pickle of
    plain types that ``torch.load(weights_only=True)`` reads.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path), metadata={"atlas": json.dumps(meta)})
    else:
        torch.save({"state_dict": state, "atlas": meta}, path)
    return path


def _find_state_dict(payload: Any) -> dict[str, torch.Tensor] | None:
    if _is_tensor_dict(payload):
        return dict(payload)
    if isinstance(payload, Mapping):
        for key in WRAPPER_KEYS:
            found = _find_state_dict(payload.get(key)) if key in payload else None
            if found is not None:
                return found
    return None


def _is_tensor_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) for k in value)
        and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise WeightsError(f"cannot read weights file {path}: {err}") from None
    meta = json.loads(metadata["atlas"]) if "atlas" in metadata else {}
    return state, meta


def strip_prefixes(state: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    """Drop wrapper prefixes (``module.``, ``model.``...) while that matches more keys."""
    while True:
        hits = len(wanted & state.keys())
        for prefix in KEY_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                stripped = {k[len(prefix) :]: v for k, v in state.items()}
                if len(wanted & stripped.keys()) > hits:
                    state = stripped
                    break
        else:
            return state
