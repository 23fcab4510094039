"""The sanity-check module on a tiny random network and a folder of generated photos (the
real network's figures are in tests/real): what it writes, and its floors on maps whose
answer is known."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.attribution.sanity import (
    MEASURES,
    _at,
    _floor_other_photos,
    _means,
    run_sanity,
    select_photos,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Five 40-px photos in two folders, random colours (seeded)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(5):
        sub = root / ("a" if i < 3 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(sub / f"{i}.png")
    return root


def test_photos_are_spread_over_the_folders(folder):
    assert [r.name for r in select_photos(folder, 2)] == ["a/0.png", "b/4.png"]
    assert len(select_photos(folder, 50)) == 5


def test_run_sanity_writes_every_methods_curves_floors_and_aucs(cnn, folder, tmp_path):
    report = run_sanity(
        cnn, folder, tmp_path, limit=3, steps=2, deletion_steps=4, auc_only=["occlusion"]
    )
    data = json.loads((tmp_path / "sanity.json").read_text())
    assert (tmp_path / "sanity.png").stat().st_size > 0
    assert data["photos"] == ["a/0.png", "a/2.png", "b/4.png"] and len(data["targets"]) == 3
    assert set(data["methods"]) == {"saliency", "guided_backprop", "gradcam"}
    for name, method in data["methods"].items():
        assert method["steps"] == ["fc", "block4"], name
        assert set(method["curves"]) == set(MEASURES) == set(method["end"])
        assert all(len(v) == 2 for v in method["curves"].values())
        assert set(method["floor_other_photos"]) == set(MEASURES)
        assert method["floor_other_photos"]["ssim_over_floor"] == 0.0
        assert 0 <= method["deletion_auc"] <= 1 and len(method["insertion_auc_per_photo"]) == 3
    assert data["methods"]["gradcam"]["native_resolution"] == [4, 4]  # block4 at 32 px
    assert report.methods["saliency"].end() == data["methods"]["saliency"]["end"]
    assert data["petsiuk_resnet50"]["gradcam"] == [0.123, 0.677]
    assert set(data["faithfulness_only"]["occlusion"]) == {"deletion_auc", "insertion_auc"}


def test_the_floors_read_one_for_identical_maps_and_low_for_unrelated_ones():
    rng = torch.Generator().manual_seed(0)
    same = torch.rand(1, 16, 16, generator=rng).expand(4, 16, 16)
    floor = _floor_other_photos(same, (16, 16))
    assert floor["spearman_abs"] == pytest.approx(1.0) and floor["ssim"] == pytest.approx(1.0)
    noise = torch.rand(6, 16, 16, generator=rng)
    floor = _floor_other_photos(noise, (16, 16))
    assert abs(floor["spearman_abs"]) < 0.1 and floor["ssim"] < 0.2
    # Over its floor, SSIM reads 0 at the floor and 1 for identical maps.
    pairs = _means(zip(noise, noise, strict=True), (16, 16), floor["ssim"])
    assert pairs["ssim_over_floor"] == pytest.approx(1.0)


def test_native_resolution_ranks_the_layers_cells_not_the_upsampled_pixels():
    """Two 2 x 2 maps that rank their cells in opposite orders, upsampled bilinearly:
    at the native grid the rank correlation is exactly -1."""
    a = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    b = torch.tensor([[[4.0, 3.0], [2.0, 1.0]]])
    up = [torch.nn.functional.interpolate(m[None], size=(8, 8), mode="nearest")[0] for m in (a, b)]
    assert torch.equal(_at(up[0], (2, 2)), a)
    found = _means([(up[0][0], up[1][0])], (2, 2), 0.0)
    assert found["spearman_native"] == pytest.approx(-1.0)
