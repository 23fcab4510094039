"""Where work runs: the device a config asks for, and the model each worker loads once.

Shared by every stage that computes with the model (training, extraction, rendering);
nothing here knows a stage.
"""

from __future__ import annotations

import copy
import threading

import torch

from atlas.config import ModelSpec
from atlas.models import LoadedModel, channels_last, load_model


def resolve_device(name: str) -> torch.device:
    """``auto`` picks the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: a CUDA device that supports it, or
    a CPU with AMX or AVX-512 BF16 (Intel since Sapphire Rapids and Cooper Lake, AMD since
    Zen 4). Elsewhere bfloat16 is emulated, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    # torch's own probes, private but stable since 2.0; a torch without them: assume not.
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


_MODELS: dict[tuple, LoadedModel] = {}
_COPIES: dict[tuple, tuple[LoadedModel, LoadedModel]] = {}
_LOCK = threading.Lock()


def cached_model(spec: ModelSpec, *, device: str | torch.device, seed: int) -> LoadedModel:
    """The model of ``spec``, loaded once per worker process and thread (hooks are per
    model, so threads do not share one) and kept for the worker's later tasks.

    Kept channels-last (:func:`atlas.models.channels_last`) on every device: convolutions
    run markedly faster on the CPU and with cuDNN, with the same results up to rounding.
    """
    key = (spec.model_dump_json(), str(device), seed, threading.get_ident())
    with _LOCK:
        if key not in _MODELS:
            loaded = load_model(spec, device=device, seed=seed)
            channels_last(loaded.module)
            _MODELS[key] = loaded
        return _MODELS[key]


def thread_copy(loaded: LoadedModel) -> LoadedModel:
    """A model handed over as an object, copied once per worker thread (hooks are per
    model: threads must not share one), channels-last as :func:`cached_model`'s."""
    key = ("object", id(loaded), threading.get_ident())
    with _LOCK:
        if key not in _COPIES:
            module = copy.deepcopy(loaded.module)
            channels_last(module)
            # The original is kept too, so that its id is never another model's.
            _COPIES[key] = (loaded, loaded.with_module(module))
        return _COPIES[key][1]
