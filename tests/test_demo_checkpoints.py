import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from atlas.cli import main
from atlas.demo.checkpoints import (
    Checkpoint,
    checkpoint_table,
    compare_checkpoints,
    object_share,
    probe_images,
)
from atlas.demo.scenes import Scenes
from atlas.demo.shortcut import habitat_shares, sample_share
from atlas.models import wrap_model
from atlas.store.shape_bias import write_shape_bias


def red_detector():
    """A network whose last block is the input's red channel (rectified) and whose class 0
    is its mean: Grad-CAM for class 0 is the red channel itself."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
        head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    module = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    return wrap_model(module, input_size=8, mean=(0, 0, 0), std=(1, 1, 1))


def test_object_share_is_the_part_of_the_map_on_the_object():
    masks = np.zeros((3, 8, 8), np.float32)
    masks[:, :, :4] = 1  # the object: the left half
    pixels = np.zeros((3, 8, 8, 3), np.uint8)
    pixels[0, :, :4, 0] = 200  # red on the object only
    pixels[1, :, 4:, 0] = 200  # red on the background only
    pixels[2, :, :, 0] = 100  # red everywhere, twice as strong on the object
    pixels[2, :, :4, 0] = 200
    shares = object_share(red_detector(), pixels, masks, batch=2)
    assert shares == pytest.approx([1.0, 0.0, 2 / 3], abs=1e-6)


def test_scenes_redraw_the_worlds_images_exactly(tiny_world):
    scenes = Scenes(tiny_world)
    pixels, masks, labels = probe_images(scenes, "test-swapped", per_class=3)
    assert labels == ["snow_leopard"] * 3 + ["desert_leopard"] * 3
    chosen = [s for s in scenes.samples if s.split == "test-swapped"]
    chosen = [s for s in chosen if int(s.path[-10:-4]) < 3]
    for drawn, mask, sample in zip(pixels, masks, chosen, strict=True):
        assert np.array_equal(drawn, np.asarray(Image.open(tiny_world / sample.path)))
        # The same habitat from the same stream (drawn images are resampled once more).
        difference = np.abs(scenes.bare(sample).astype(int) - drawn)
        assert difference[mask == 0].mean() < 3 and difference[mask == 1].mean() > 20
    assert scenes.sample(tiny_world / "test" / "star" / "000000.png").label == "star"
    assert scenes.sample(tiny_world / "elsewhere.png") is None


def test_sample_share_is_habitat_shares_sample_share():
    rng = np.random.default_rng(0)
    strength = rng.normal(size=200)
    surviving = np.where(rng.random(200) < 0.1, np.nan, rng.random(200))
    cells = rng.integers(0, 9, 200)
    expected = habitat_shares(strength, surviving, cells, 9)["sample_share"]
    assert sample_share(strength, surviving) == pytest.approx(expected, rel=1e-12)


def test_the_comparison_reads_each_checkpoint_and_marks_what_is_missing(tiny_world, tmp_path):
    metrics = tmp_path / "train.json"
    metrics.write_text(json.dumps({"test": {"accuracy": 0.9}, "test-swapped": {"accuracy": 0.1}}))
    bias = tmp_path / "bias"
    write_shape_bias(bias, {"shape_bias": 0.25, "counts": {}}, {})
    torch.manual_seed(0)
    model = wrap_model(  # four classes: the mean of each rectified channel
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        input_size=32,
    )
    checkpoints = [
        Checkpoint("plain", store="s", train_metrics=metrics, shape_bias=bias),
        Checkpoint("bare"),
    ]
    shares = {"plain": {"snow_leopard": 0.5}}
    result = compare_checkpoints(
        checkpoints, {"plain": model}, Scenes(tiny_world), shares, per_class=2, per_swapped=2
    )
    plain, bare = result.rows["plain"], result.rows["bare"]
    assert plain["test accuracy"] == 0.9 and plain["test-swapped accuracy"] == 0.1
    assert plain["habitat share of snow_leopard"] == 0.5 and plain["shape bias"] == 0.25
    for split in ("test", "test-swapped"):
        assert 0 <= plain[f"Grad-CAM on the object, {split}"] <= 1
    assert set(bare.values()) == {None}
    assert result.probes == {"test": 20, "test-swapped": 4}
    assert 0 < result.object_area["test"] < 1
    table = checkpoint_table(result)
    assert table["header"][0] == "checkpoint" and len(table["rows"]) == 2
    assert table["rows"][0][1:3] == ["0.90", "0.10"] and set(table["rows"][1][1:]) == {"-"}
    assert "20 test images" in table["note"]


def test_a_malformed_checkpoint_flag_is_refused(tmp_path, capsys):
    code = main(
        [
            "demo-shortcut",
            "--classes",
            str(tmp_path),
            "--world",
            str(tmp_path),
            "--out",
            str(tmp_path / "m.json"),
            "--store",
            "no-name-here",
        ]
    )
    assert code == 2 and "is not NAME=PATH" in capsys.readouterr().err
