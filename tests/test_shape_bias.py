import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from atlas.cli import main
from atlas.config import ReportConfig, ShapeBiasConfig
from atlas.errors import DataError
from atlas.models import wrap_model
from atlas.shape_bias import (
    CueConflictImage,
    cue_categories,
    read_cue_conflict,
    score,
    shape_bias,
)
from atlas.stages.report_model import report_model
from atlas.stages.shape_bias import shape_bias_report

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


def colour_model(routing, class_names=("red", "green", "blue", "grey")):
    """A model that reads an image's mean colour: channel c votes for class routing[c]."""
    linear = nn.Linear(3, len(class_names), bias=False)
    with torch.no_grad():
        linear.weight.zero_()
        for channel, klass in enumerate(routing):
            linear.weight[klass, channel] = 1.0
    module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear)
    return wrap_model(module, input_size=8, mean=(0, 0, 0), std=(1, 1, 1), class_names=class_names)


def colour_world(folder, per_pair=2, *, shape_of=lambda texture: "grey"):
    """Images filled with the colour of their texture class (their "texture"), listed with
    the class ``shape_of`` names as their shape."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for texture, rgb in COLOURS.items():
        for k in range(per_pair):
            name = f"{texture}-{k}.png"
            Image.new("RGB", (8, 8), rgb).save(folder / name)
            rows.append([name, shape_of(texture), texture])
    with open(folder / "list.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "shape", "texture"])
        writer.writerows(rows)
    return folder / "list.csv"


def test_a_model_that_follows_texture_has_shape_bias_zero(tmp_path):
    listed = colour_world(
        tmp_path, shape_of=lambda t: {"red": "green", "green": "blue"}.get(t, "red")
    )
    result = shape_bias(colour_model([0, 1, 2]), read_cue_conflict(listed))
    assert result.shape_bias == 0.0
    assert result.counts == {"shape": 0, "texture": 6, "other": 0}
    assert [d.predicted for d in result.decisions] == ["red"] * 2 + ["green"] * 2 + ["blue"] * 2


def test_a_model_that_follows_shape_has_shape_bias_one_and_neither_is_other(tmp_path):
    shape_of = {"red": "green", "green": "blue", "blue": "red"}.get
    listed = colour_world(tmp_path, shape_of=shape_of)
    follows_shape = colour_model([1, 2, 0])  # red -> green, green -> blue, blue -> red
    result = shape_bias(follows_shape, read_cue_conflict(listed), batch_size=4)
    assert result.shape_bias == 1.0 and result.counts == {"shape": 6, "texture": 0, "other": 0}
    assert result.per_shape["green"] == {"shape": 2, "texture": 0, "other": 0, "shape_bias": 1.0}

    neither = colour_model([3, 3, 3])  # everything is grey
    result = shape_bias(neither, read_cue_conflict(listed))
    assert result.shape_bias is None and result.counts == {"shape": 0, "texture": 0, "other": 6}


def test_hand_made_decisions_give_the_expected_share_with_grouped_classes():
    names = ["snow_leopard", "desert_leopard", "star", "checkered_box", "striped_fish"]
    category_of = cue_categories(names, {"leopard": ["snow_leopard", "desert_leopard"]})
    images = [
        CueConflictImage("a.png", "leopard", "checkered_box"),
        CueConflictImage("b.png", "leopard", "striped_fish"),
        CueConflictImage("c.png", "star", "leopard"),
        CueConflictImage("d.png", "star", "leopard"),
        CueConflictImage("e.png", "star", "checkered_box"),
        CueConflictImage("f.png", "snow_leopard", "desert_leopard"),  # one category: left out
    ]
    predicted = ["desert_leopard", "snow_leopard", "snow_leopard", "star", "striped_fish", "star"]
    result = score(images, predicted, category_of, examples=1)
    # shape: a, b (either leopard follows the cat shape), d; texture: c; other: e.
    assert result.counts == {"shape": 3, "texture": 1, "other": 1}
    assert result.shape_bias == 0.75 and result.excluded == 1
    assert result.per_shape["leopard"]["shape_bias"] == 1.0
    assert result.per_shape["star"] == {"shape": 1, "texture": 1, "other": 1, "shape_bias": 0.5}
    assert result.per_texture["leopard"] == {
        "shape": 1,
        "texture": 1,
        "other": 0,
        "shape_bias": 0.5,
    }
    assert result.examples == {"shape": [0], "texture": [2], "other": [4]}


def test_examples_take_each_shape_in_turn():
    category_of = cue_categories(["a", "b", "c"])
    images = [CueConflictImage(f"{i}.png", s, "c") for i, s in enumerate("aaab")]
    result = score(images, ["a", "a", "a", "b"], category_of, examples=3)
    assert result.examples["shape"] == [0, 3, 1]


def test_batched_equals_one_by_one_and_repeats_exactly(tmp_path):
    listed = colour_world(tmp_path, per_pair=3, shape_of=lambda t: "grey")
    model = colour_model([0, 3, 2])
    images = read_cue_conflict(listed)
    one = shape_bias(model, images, batch_size=1).as_dict()
    assert shape_bias(model, images, batch_size=64).as_dict() == one
    assert shape_bias(model, images, batch_size=5).as_dict() == one
    assert one["counts"] == {"shape": 3, "texture": 6, "other": 0}


def test_bad_categories_and_names_are_one_line_errors(tmp_path):
    names = ["a", "b", "c"]
    with pytest.raises(DataError, match="unknown class 'd'"):
        cue_categories(names, {"ab": ["a", "d"]})
    with pytest.raises(DataError, match="class 'a' is in two cue categories"):
        cue_categories(names, {"x": ["a", "b"], "y": ["a"]})
    with pytest.raises(DataError, match="'a' is also the name of a class"):
        cue_categories(names, {"a": ["b", "c"]})
    listed = colour_world(tmp_path, shape_of=lambda t: "gery")
    with pytest.raises(DataError, match=r"unknown shape class 'gery' \(did you mean grey\?"):
        shape_bias(colour_model([0, 1, 2]), read_cue_conflict(listed))
    (tmp_path / "bad.csv").write_text("file,shape,texture\nx.png,red,green\n")
    with pytest.raises(DataError, match="no column 'path'"):
        read_cue_conflict(tmp_path / "bad.csv")


def test_the_cli_refuses_an_unknown_class_in_one_line(tmp_path, capsys):
    from atlas.demo.world import CLASS_NAMES

    listed = tmp_path / "list.csv"
    Image.new("RGB", (32, 32), (9, 9, 9)).save(tmp_path / "x.png")
    listed.write_text("path,shape,texture\nx.png,stra,checkered_box\n")
    code = main(
        [
            "shape-bias",
            "--arch",
            "atlas.demo.net:DemoCNN",
            "--num-classes",
            "10",
            "--input-size",
            "32",
            "-s",
            f"model.class_names=[{','.join(CLASS_NAMES)}]",
            "--cue-conflict",
            str(listed),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "unknown shape class 'stra'" in err and "did you mean star" in err


def test_the_stage_writes_its_result_and_the_report_states_it(tmp_path):
    names = ("red", "green", "blue", "<b>grey</b>")
    listed = colour_world(tmp_path / "world", shape_of=lambda t: "<b>grey</b>")
    model = colour_model([0, 1, 3], class_names=names)  # blue reads as the grey shape
    metrics = tmp_path / "metrics.json"
    out = tmp_path / "bias"
    result = shape_bias_report(model, listed, out, ShapeBiasConfig(examples=1), metrics=metrics)
    assert result.shape_bias == pytest.approx(1 / 3, abs=1e-4)
    written = json.loads((out / "shape-bias.json").read_text())
    assert written["counts"] == {"shape": 2, "texture": 4, "other": 0}
    assert written["decisions"][0]["path"] == "red-0.png"  # relative to the list
    assert [e["file"] for e in written["examples"]["shape"]] == ["examples/shape-0.png"]
    assert written["examples"]["other"] == []
    shown = np.asarray(Image.open(out / "examples" / "shape-0.png"))
    assert shown.shape == (8, 8, 3) and tuple(shown[0, 0]) == COLOURS["blue"]
    assert json.loads(metrics.read_text())["shape_bias"] == pytest.approx(0.3333)

    report = tmp_path / "report"
    options = ReportConfig(classes=["red"], steps=2, icon_size=8)
    page = report_model(model, report, options, shape_bias=out).read_text()
    assert 'Shape bias <b class="measure">0.33</b>' in page
    assert "&lt;b&gt;grey&lt;/b&gt;" in page and "<b>grey</b>" not in page
    assert (report / "shape-bias" / "shape-0.png").is_file()
    plain = report_model(model, tmp_path / "plain", options).read_text()
    assert "Shape or texture" not in plain
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        "Shape or texture"
        not in report_model(model, tmp_path / "p2", options, shape_bias=empty).read_text()
    )
