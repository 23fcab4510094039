import os

import pytest

os.environ.setdefault("ATLAS_PROGRESS", "0")


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A small demo world (32 px, a few images per class) generated once per session."""
    from atlas.demo.world import make_world

    root = tmp_path_factory.mktemp("world")
    make_world(
        root, seed=3, image_size=32, train_per_class=12, test_per_class=5, swapped_per_class=4
    )
    return root
