"""The real network and photographs some of these tests run on: torchvision's MobileNetV2
ImageNet weights and the credited photographs, where this machine has them (the
Makefile fetches both); a test that needs them is skipped, saying why, where it has not."""

import os
from pathlib import Path

import pytest

DATA = Path(os.environ.get("ATLAS_REAL_DATA", "/work/data"))
TORCH_HOME = DATA / "torch"
WEIGHTS = TORCH_HOME / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
PHOTOS = DATA / "photos"


@pytest.fixture(scope="session")
def mobilenet_v2():
    """torchvision's MobileNetV2 with its ImageNet weights (IMAGENET1K_V1), from the hub
    cache under ``$ATLAS_REAL_DATA/torch``."""
    if not WEIGHTS.exists():
        pytest.skip(f"MobileNetV2's ImageNet weights are not at {WEIGHTS} (make fetches them)")
    from atlas.config import ModelSpec
    from atlas.models import load_model

    saved = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(TORCH_HOME)
    try:
        return load_model(ModelSpec(arch="mobilenet_v2", weights="IMAGENET1K_V1"))
    finally:
        if saved is None:
            os.environ.pop("TORCH_HOME")
        else:
            os.environ["TORCH_HOME"] = saved


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """The credited photographs (their files, sorted)."""
    files = sorted(p for p in PHOTOS.rglob("*") if p.suffix.lower() in {".webp", ".jpg", ".png"})
    if not files:
        pytest.skip(f"the credited photographs are not under {PHOTOS} (make fetches them)")
    return files
