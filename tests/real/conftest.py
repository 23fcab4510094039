"""The real network and photos these tests need: torchvision's MobileNetV2 with its
ImageNet weights, and a folder of credited photographs (``credits.csv`` beside them).
Where they are is ``ATLAS_TORCH_HOME`` (a torch hub cache holding the weights) and
``ATLAS_PHOTOS``, by default the copies under /work/data; a test that needs one that is
absent is skipped, saying which."""

import os
from pathlib import Path

import pytest

TORCH_HOME = Path(os.environ.get("ATLAS_TORCH_HOME", "/work/data/torch"))
PHOTOS = Path(os.environ.get("ATLAS_PHOTOS", "/work/data/photos"))
WEIGHTS = "hub/checkpoints/mobilenet_v2-b0353104.pth"


@pytest.fixture(scope="session")
def mobilenet_v2():
    """MobileNetV2 with torchvision's IMAGENET1K_V1 weights (a LoadedModel), on the CPU."""
    if not (TORCH_HOME / WEIGHTS).is_file():
        pytest.skip(f"MobileNetV2's ImageNet weights are not at {TORCH_HOME / WEIGHTS}")
    import torch

    from atlas.config import ModelSpec
    from atlas.models import load_model

    os.environ["TORCH_HOME"] = str(TORCH_HOME)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_model(ModelSpec(arch="mobilenet_v2", weights="IMAGENET1K_V1"))


@pytest.fixture(scope="session")
def photos():
    """The folder of real photographs, with its credits.csv."""
    if not (PHOTOS / "credits.csv").is_file():
        pytest.skip(f"no credited photos at {PHOTOS} (credits.csv missing)")
    return PHOTOS
