import pytest
import torch
from safetensors.torch import save_file

from atlas.config import ModelSpec
from atlas.errors import WeightsError, WeightsFileNotFoundError
from atlas.models import load_model, read_weights_file

DEMO = "atlas.demo.net:DemoCNN"


@pytest.fixture(scope="module")
def reference():
    """A DemoCNN with non-default weights and batch-norm statistics, in eval mode."""
    torch.manual_seed(0)
    loaded = load_model(ModelSpec(arch=DEMO, num_classes=5, input_size=32), seed=7)
    for module in loaded.module.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return loaded


@pytest.fixture(scope="module")
def probe():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


FLAVOURS = {
    "plain.pt": lambda sd: sd,
    "plain.pth": lambda sd: sd,
    "wrapped_state_dict.pt": lambda sd: {"state_dict": sd, "epoch": 3, "optimizer": {"lr": 0.1}},
    "wrapped_model.pth": lambda sd: {"model": sd, "step": 10},
    "dataparallel.pt": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "compiled.pt": lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
    "lightning.ckpt": lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}},
}


@pytest.mark.parametrize("name", sorted(FLAVOURS))
def test_each_torch_flavour_round_trips_to_the_same_outputs(tmp_path, reference, probe, name):
    path = tmp_path / name
    torch.save(FLAVOURS[name](reference.module.state_dict()), path)
    loaded = load_model(ModelSpec(arch=DEMO, num_classes=5, weights=str(path)), seed=99)
    with torch.no_grad():
        assert torch.equal(loaded.module(probe), reference.module(probe))


def test_safetensors_round_trips(tmp_path, reference, probe):
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in reference.module.state_dict().items()}, str(path))
    loaded = load_model(ModelSpec(arch=DEMO, num_classes=5, weights=str(path)), seed=99)
    with torch.no_grad():
        assert torch.equal(loaded.module(probe), reference.module(probe))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_atlas_checkpoint_loads_without_a_spec(tmp_path, reference, probe, suffix):
    path = reference.save(tmp_path / f"model{suffix}", extra={"note": "x"})
    loaded = load_model(ModelSpec(weights=str(path)), seed=99)
    assert loaded.spec.arch == DEMO and loaded.preprocessing.input_size == 32
    assert loaded.class_names == reference.class_names
    with torch.no_grad():
        assert torch.equal(loaded.module(probe), reference.module(probe))
    _, meta = read_weights_file(path)
    assert meta["note"] == "x" and meta["version"]
    # A new head for another task: the checkpoint's class names no longer apply.
    retargeted = load_model(ModelSpec(weights=str(path), num_classes=3), seed=99)
    assert retargeted.class_names == ["class_0", "class_1", "class_2"]


def test_file_head_size_is_used_when_num_classes_is_unset(tmp_path, reference, probe):
    path = tmp_path / "five.pt"
    torch.save(reference.module.state_dict(), path)
    loaded = load_model(ModelSpec(arch=DEMO, weights=str(path)))  # builder default is 10
    assert loaded.num_classes == 5
    with torch.no_grad():
        assert torch.equal(loaded.module(probe), reference.module(probe))


def test_num_classes_replaces_the_head_and_keeps_the_backbone(tmp_path, reference, probe):
    path = tmp_path / "five.pt"
    torch.save(reference.module.state_dict(), path)
    loaded = load_model(ModelSpec(arch=DEMO, num_classes=3, weights=str(path)))
    assert loaded.module.fc.out_features == 3
    assert torch.equal(loaded.module.block4.conv.weight, reference.module.block4.conv.weight)
    assert any("'fc' re-initialized for 3 classes (weights have 5)" in n for n in loaded.notes)


def test_mismatched_weights_name_the_keys(tmp_path, reference):
    state = reference.module.state_dict()
    state.pop("block2.conv.weight")
    state["extra.weight"] = torch.zeros(1)
    state["block1.conv.weight"] = torch.zeros(8, 3, 3, 3)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        load_model(ModelSpec(arch=DEMO, num_classes=5, weights=str(path)))
    message = str(err.value)
    assert "missing keys: block2.conv.weight" in message
    assert "unexpected keys: extra.weight" in message
    assert "block1.conv.weight 8x3x3x3 in file vs 16x3x3x3" in message
    assert "\n" not in message


def test_missing_file_is_also_a_file_not_found_error(tmp_path):
    with pytest.raises(WeightsFileNotFoundError, match="weights file not found") as err:
        load_model(ModelSpec(arch=DEMO, weights=str(tmp_path / "none.pt")))
    assert isinstance(err.value, FileNotFoundError)


def test_pickled_module_and_garbage_files_are_refused(tmp_path, reference):
    pickled = tmp_path / "whole_model.pt"
    torch.save(reference.module, pickled)
    with pytest.raises(WeightsError, match=r"save model\.state_dict"):
        read_weights_file(pickled)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        read_weights_file(garbage)
    empty = tmp_path / "meta_only.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(WeightsError, match=r"contains no state_dict \(found: epoch\)"):
        read_weights_file(empty)
