"""The real network and photographs: torchvision's MobileNetV2 ImageNet checkpoint and the
credited photos, where this machine has them (``/work/data``); the tests that need them
skip, saying why, where it does not."""

import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("ATLAS_REAL_DATA", "/work/data"))


@pytest.fixture(scope="session")
def mobilenet_v2():
    """MobileNetV2 with its ImageNet weights (``IMAGENET1K_V1`` from the torch hub cache
    under ``DATA/torch``), its class names and preprocessing."""
    hub = DATA / "torch"
    if not (hub / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth").exists():
        pytest.skip(f"no MobileNetV2 ImageNet weights in {hub} (make fetches them)")
    os.environ["TORCH_HOME"] = str(hub)
    from atlas.config import ModelSpec
    from atlas.models import load_model

    return load_model(ModelSpec(arch="mobilenet_v2", weights="IMAGENET1K_V1"))


@pytest.fixture(scope="session")
def photos():
    """The folder of credited photographs (one subfolder per activity)."""
    root = DATA / "photos"
    if not (root / "credits.csv").exists():
        pytest.skip(f"no photographs in {root} (make fetches them)")
    return root
