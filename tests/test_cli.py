import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atlas.cli import cli, main
from atlas.config import ModelSpec
from atlas.models import load_model

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / "configs" / "demo.yaml")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_subcommand_has_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0 and "Usage: atlas " + command in out


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("atlas: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def test_bad_inputs_exit_2_with_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "layers", "--arch", "resnet81")
    assert_one_line_error(code, err, "unknown arch 'resnet81'", "resnet18")

    code, _, err = run(
        capsys, "layers", "--arch", "resnet18", "--weights", str(tmp_path / "missing.pt")
    )
    assert_one_line_error(code, err, "weights file not found")

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {arch: resnet18\n")
    code, _, err = run(capsys, "layers", "--config", str(bad))
    assert_one_line_error(code, err, "malformed YAML")

    code, _, err = run(capsys, "layers", "--config", DEMO_CONFIG, "-s", "train.epoch=2")
    assert_one_line_error(code, err, "unknown key train.epoch", "epochs")

    code, _, err = run(
        capsys,
        "train",
        "--config",
        DEMO_CONFIG,
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "m"),
    )
    assert_one_line_error(code, err, "image folder not found")


def test_mismatched_weights_exit_2_naming_keys(capsys, tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    code, _, err = run(capsys, "layers", "--arch", "resnet18", "--weights", str(path))
    assert_one_line_error(code, err, "do not fit resnet18", "missing keys: conv1.weight")


def test_layers_prints_the_summary(capsys):
    code, out, _ = run(capsys, "layers", "--arch", "resnet18", "--input-size", "64", "--depth", "0")
    assert code == 0
    assert "layer4  " in out and "512x2x2" in out and "layer4.0" not in out
    assert "Total params: 11,689,512" in out


def test_layers_of_one_layer_and_an_unknown_layer(capsys):
    code, out, _ = run(capsys, "layers", "--arch", "resnet18", "--layer", "layer4.1")
    assert code == 0 and "layer4.1.conv2" in out and "layer4.0" not in out and "layer3" not in out
    code, _, err = run(capsys, "layers", "--arch", "resnet18", "--layer", "layer4.1.conv3")
    assert_one_line_error(code, err, "unknown layer 'layer4.1.conv3'", "layer4.1.conv1")


def test_layers_json_follows_the_config_model(capsys):
    code, out, _ = run(capsys, "layers", "--config", DEMO_CONFIG, "--json")
    assert code == 0
    summary = json.loads(out)
    shapes = {row["name"]: row["output_shape"] for row in summary["layers"]}
    assert summary["input_shape"] == [3, 64, 64]
    assert (
        shapes["block3"] == [64, 16, 16]
        and shapes["block4"] == [128, 8, 8]
        and shapes["fc"] == [10]
    )


def test_mean_and_std_flags(capsys):
    code, out, _ = run(
        capsys,
        "layers",
        "--arch",
        "resnet18",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.1,0.2,0.3",
        "--input-size",
        "32",
    )
    assert code == 0 and "Input: 3x32x32" in out


def test_make_data_then_train_writes_a_self_describing_checkpoint(capsys, tmp_path):
    data, out = tmp_path / "data", tmp_path / "model"
    overrides = [
        "-s",
        "data.train_per_class=6",
        "-s",
        "data.test_per_class=3",
        "-s",
        "data.swapped_per_class=2",
        "-s",
        "data.image_size=32",
    ]
    code, _, _ = run(
        capsys,
        "make-data",
        "--config",
        DEMO_CONFIG,
        *overrides,
        "--out",
        str(data),
        "--workers",
        "1",
    )
    assert code == 0 and (data / "atlas-config.yaml").is_file()
    train_args = [
        "train",
        "--config",
        DEMO_CONFIG,
        "-s",
        "train.epochs=1",
        "-s",
        "model.input_size=32",
        "--data",
        str(data),
    ]
    code, stdout, _ = run(capsys, *train_args, "--out", str(out))
    assert code == 0, stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= {"train", "test", "test-swapped", "epochs", "final_loss"}
    assert metrics["test-swapped"]["count"] == 4
    assert set(metrics["test-swapped"]["per_class"]) == {"snow_leopard", "desert_leopard"}
    recorded = (out / "atlas-config.yaml").read_text()
    assert "epochs: 1" in recorded and "config hash" in recorded

    loaded = load_model(ModelSpec(weights=str(out / "model.pt")))
    assert loaded.spec.arch == "atlas.demo.net:DemoCNN" and loaded.preprocessing.input_size == 32
    assert sorted(loaded.class_names) == sorted(p.name for p in (data / "train").iterdir())

    # Same seed, same bytes: the checkpoint and the metrics DVC tracks do not change.
    again = tmp_path / "again"
    assert run(capsys, *train_args, "--out", str(again))[0] == 0
    for name in ("model.pt", "metrics.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_console_script_exit_codes():
    ok = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "--help"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "make-data" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "layers", "--arch", "nope"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "atlas.cli", "layers", "--bogus"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "No such option" in usage.stderr


def test_extract_without_a_section_or_with_a_bad_layer_exits_2(capsys, tiny_world, tmp_path):
    images, out = str(tiny_world / "test"), str(tmp_path / "s.zarr")
    code, _, err = run(capsys, "extract", "--arch", "resnet18", "--images", images, "--out", out)
    assert_one_line_error(code, err, "no extract section", "-s extract.layer=NAME")
    code, _, err = run(
        capsys,
        "extract",
        "--config",
        DEMO_CONFIG,
        "-s",
        "extract.layer=block9",
        "--images",
        images,
        "--out",
        out,
    )
    assert_one_line_error(code, err, "unknown layer 'block9'")
    code, _, err = run(
        capsys, "extract", "--config", DEMO_CONFIG, "--images", str(tmp_path / "none"), "--out", out
    )
    assert_one_line_error(code, err, "image source not found")


def test_extract_cli_writes_the_store_and_skipped_csv(capsys, tiny_world, tmp_path):
    out = tmp_path / "run" / "acts.zarr"
    args = [
        "extract",
        "--config",
        DEMO_CONFIG,
        "-s",
        "model.input_size=32",
        "-s",
        "extract.limit=6",
    ]
    code, stdout, _ = run(
        capsys,
        *args,
        "--images",
        str(tiny_world / "test"),
        "--out",
        str(out),
        "--scheduler",
        "inline",
    )
    assert code == 0 and "6 images" in stdout
    assert (tmp_path / "run" / "skipped.csv").read_text().strip() == "path,reason"
    code, stdout, _ = run(
        capsys,
        *args,
        "-s",
        "extract.seed=5",
        "--images",
        str(tiny_world / "test"),
        "--out",
        str(out),
    )
    assert code == 2
