import pytest
import torch
from torch import nn

from atlas.config import ModelSpec
from atlas.errors import AtlasError, ModelSpecError, WeightsError
from atlas.models import (
    Preprocessing,
    build_architecture,
    find_head,
    load_model,
    resolve_weights_enum,
)

DEMO = "atlas.demo.net:DemoCNN"


def test_torchvision_arch_by_name_with_num_classes():
    loaded = load_model(ModelSpec(arch="resnet18", num_classes=7))
    assert loaded.module(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
    assert loaded.class_names == [f"class_{i}" for i in range(7)]
    assert not loaded.module.training


def test_unknown_arch_suggests_close_names():
    with pytest.raises(ModelSpecError, match=r"unknown arch 'resnet81'.*resnet18"):
        load_model(ModelSpec(arch="resnet81"))


def test_module_callable_arch_and_its_errors():
    loaded = load_model(ModelSpec(arch=DEMO, num_classes=4, input_size=64))
    assert loaded.module(torch.zeros(2, 3, 64, 64)).shape == (2, 4)
    with pytest.raises(
        ModelSpecError, match=r"cannot import 'nosuchpkg\.mod'.*No module named 'nosuchpkg'"
    ):
        build_architecture("nosuchpkg.mod:Net", None, {})
    with pytest.raises(ModelSpecError, match=r"has no callable 'DemoCNX'.*DemoCNN"):
        build_architecture("atlas.demo.net:DemoCNX", None, {})
    with pytest.raises(ModelSpecError, match="does not accept depth"):
        build_architecture(DEMO, None, {"depth": 3})


def test_same_seed_gives_same_random_init():
    a = load_model(ModelSpec(arch=DEMO), seed=1).module.state_dict()
    b = load_model(ModelSpec(arch=DEMO), seed=1).module.state_dict()
    c = load_model(ModelSpec(arch=DEMO), seed=2).module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])


def test_preprocessing_defaults_and_overrides():
    default = load_model(ModelSpec(arch=DEMO)).preprocessing
    assert default == Preprocessing(224, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    custom = load_model(ModelSpec(arch=DEMO, input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3))
    assert custom.preprocessing.input_size == 64 and custom.spec.resize_size == 64
    assert custom.spec.mean == (0.5, 0.5, 0.5)


def test_normalize_uses_each_channels_mean_and_std():
    prep = Preprocessing(8, 8, (0.4, 0.5, 0.6), (0.2, 0.3, 0.4))
    images = torch.rand(2, 3, 8, 8)
    normalized = prep.normalize(images)
    for channel, (mean, std) in enumerate(zip(prep.mean, prep.std, strict=True)):
        assert torch.allclose(normalized[:, channel], (images[:, channel] - mean) / std)


def test_class_names_from_list_file_and_count_check(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n\nfox\n")
    loaded = load_model(ModelSpec(arch=DEMO, num_classes=3, class_names=str(names)))
    assert loaded.class_names == ["cat", "dog", "fox"]
    with pytest.raises(ModelSpecError, match="2 class names given for a model with 3 classes"):
        load_model(ModelSpec(arch=DEMO, num_classes=3, class_names=["a", "b"]))


def test_find_head_is_the_last_linear():
    name, head = find_head(build_architecture("vgg11", 5))
    assert name == "classifier.6" and isinstance(head, nn.Linear) and head.out_features == 5
    name, _ = find_head(build_architecture("squeezenet1_0", 5))
    assert name == "classifier.1"  # no Linear: the 1x1 conv classifier


def test_weights_enum_resolution_names_valid_choices():
    assert resolve_weights_enum("resnet18", "DEFAULT").name == "IMAGENET1K_V1"
    assert (
        resolve_weights_enum("resnet18", "ResNet18_Weights.IMAGENET1K_V1").name == "IMAGENET1K_V1"
    )
    with pytest.raises(
        WeightsError, match=r"IMAGENET1K_V2.*weights names: DEFAULT, IMAGENET1K_V1\)"
    ):
        resolve_weights_enum("resnet18", "IMAGENET1K_V2")


def test_weights_enum_loads_from_the_torch_hub_cache(tmp_path, monkeypatch):
    """With the file torchvision would download already cached, no network is needed, and
    preprocessing and class names come from the weights' metadata."""
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    reference = resnet18()
    torch.save(reference.state_dict(), cached)

    loaded = load_model(ModelSpec(arch="resnet18", weights="IMAGENET1K_V1"))
    assert loaded.preprocessing == Preprocessing(
        224, 256, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    )
    assert loaded.class_names[0] == "tench" and loaded.num_classes == 1000
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(loaded.module(x), reference.eval()(x), atol=1e-5)

    finetune = load_model(ModelSpec(arch="resnet18", weights="DEFAULT", num_classes=3))
    assert finetune.module.fc.out_features == 3 and finetune.class_names == [
        "class_0",
        "class_1",
        "class_2",
    ]
    assert any("re-initialized for 3 classes" in note for note in finetune.notes)
    assert torch.equal(finetune.module.conv1.weight, reference.conv1.weight)


def test_weights_enum_without_cache_or_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(
        AtlasError, match=r"cannot download ResNet18_Weights.IMAGENET1K_V1.*local weights file"
    ):
        load_model(ModelSpec(arch="resnet18", weights="IMAGENET1K_V1"))
