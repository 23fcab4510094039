"""Models beyond torchvision's CNNs, random weights, small inputs: a timm CNN, a timm ViT,
torchvision's Swin, a Hugging Face classifier; and a network handed over in memory.
Layers, extraction, rendering, Grad-CAM and the reports' layer grids work on each."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from atlas.attribution import make_method
from atlas.attribution.gradcam import last_block
from atlas.cli import main
from atlas.config import AttributeConfig, ExtractConfig, ModelSpec
from atlas.errors import MethodNotDefinedError
from atlas.featvis import objectives
from atlas.featvis.render import render
from atlas.layers import LayerOutputError, MapView
from atlas.models import (
    FAMILIES,
    Gates,
    family_of,
    load_model,
    weights_digest,
    wrap_model,
)
from atlas.models.callable import CallableFamily
from atlas.models.hf import HuggingFaceFamily
from atlas.models.timm import TimmFamily
from atlas.models.torchvision import TorchvisionFamily
from atlas.stages.attribute import attribute_store
from atlas.stages.extract import extract_store
from atlas.store import open_run


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny Hugging Face ViT classifier saved as a folder: config, weights, processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    folder = tmp_path_factory.mktemp("hf-vit")
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "fox"},
        label2id={"cat": 0, "dog": 1, "fox": 2},
    )
    torch.manual_seed(0)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.4] * 3, image_std=[0.2] * 3
    ).save_pretrained(folder)
    return folder


# (spec, a layer to extract, its view, the default CAM layer)
MODELS = {
    "timm CNN": (
        dict(arch="timm:resnet18", num_classes=3, input_size=64),
        "layer3",
        "maps",
        "layer4",
    ),
    "timm ViT": (
        dict(
            arch="timm:vit_tiny_patch16_224",
            num_classes=3,
            kwargs={"img_size": 32, "patch_size": 8, "depth": 3},
        ),
        "blocks.1",
        "tokens",
        "blocks.1",  # the class token is all the head reads after the last block
    ),
    "torchvision Swin": (
        dict(arch="swin_t", num_classes=3, input_size=64),
        "features.5",
        "channels_last",
        "norm",  # the last stage's normalized channels-last map
    ),
}


@pytest.fixture(scope="module", params=[*MODELS, "Hugging Face ViT"])
def family(request, hf_folder):
    if request.param == "Hugging Face ViT":
        spec = dict(arch=f"hf:{hf_folder}")
        return (
            request.param,
            load_model(ModelSpec(**spec), seed=0),
            "vit.layers.0",
            "tokens",
            "vit.layers.0",
            spec,
        )
    spec, layer, layout, cam_layer = MODELS[request.param]
    return request.param, load_model(ModelSpec(**spec), seed=0), layer, layout, cam_layer, spec


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for klass in ("cat", "dog", "fox"):
        (root / klass).mkdir()
        for i in range(4):
            pixels = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / klass / f"{i}.png")
    return root


def test_layers_are_read_as_maps_whatever_their_layout(family):
    name, model, layer, layout, _, _ = family
    view = model.view(layer)
    assert view.layout == layout, name
    size = model.preprocessing.input_size
    with torch.no_grad(), model.capture([layer]) as outputs:
        model.module(torch.randn(2, 3, size, size))
    maps = outputs[layer]
    assert maps.dim() == 4 and maps.shape[0] == 2 and maps.shape[2] == maps.shape[3] > 1


def test_extraction_stores_a_vector_per_position(family, images, tmp_path):
    _, model, layer, _, _, spec = family
    url = str(tmp_path / "acts.zarr")
    options = ExtractConfig(layer=layer, sampling="all", max_positions=4, chunk_size=6)
    extract_store(str(images), url, ModelSpec(**spec), options, scheduler="inline")
    run = open_run(url)
    geometry = run.geometry(layer)
    stored = run.read_layer(layer)
    assert stored.acts.shape == (12 * 4, geometry.channels) and stored.valid[:].all()
    # The first image's first position equals a direct forward pass through the view.
    image = torch.from_numpy(np.array(Image.open(images / "cat" / "0.png"))).permute(2, 0, 1)
    inputs = model.preprocessing.normalize(model.preprocessing.crop(image)[None].float() / 255)
    with torch.no_grad(), model.capture([layer]) as outputs:
        model.module(inputs)
    y, x = stored.pos[0]
    np.testing.assert_allclose(stored.acts[0], outputs[layer][0, :, y, x].numpy(), atol=1e-4)


def test_rendering_raises_a_direction_in_the_layer(family):
    _, model, layer, _, _, _ = family
    size = model.preprocessing.input_size
    with torch.no_grad(), model.capture([layer]) as outputs:
        model.module(torch.randn(1, 3, size, size))
    target = outputs[layer][0, :, 1, 1][None]
    from atlas.config import Recipe  # Lucent's recipe: its step size, its standard set

    recipe = Recipe(
        icon_size=size, steps=12, lr=0.05, lr_schedule="constant", transforms="standard"
    )
    result = render(model, objectives.direction(layer, target), recipe, seeds=[0], record_every=11)
    assert result.images.shape == (1, size, size, 3)
    assert result.history[-1, 0] > result.history[0, 0]


def test_gradcam_and_the_cam_family_on_the_last_block(family):
    name, model, _, _, cam_layer, _ = family
    assert last_block(model) == cam_layer, name
    size = model.preprocessing.input_size
    inputs = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    for method in ("gradcam", "layercam"):
        maps = make_method(method, model).attribute(inputs, torch.tensor([0, 2]))
        assert maps.shape == (2, size, size) and torch.isfinite(maps).all(), (name, method)
        assert maps.abs().sum() > 0, (name, method)


def test_reports_with_layer_grids(family, images, tmp_path):
    _, model, layer, _, _, _ = family
    options = AttributeConfig(
        methods=["saliency", "gradcam"], layers=[layer], deletion_steps=2, randomize_layers=1
    )
    reports = attribute_store(model, [str(images)], tmp_path, options.updated(limit=2))
    assert len(reports) == 2
    grid = next(tmp_path.glob(f"*.layer-{layer}.png"))
    assert Image.open(grid).size[0] > 0
    assert "<table>" in reports._repr_html_()


def test_family_preprocessing_and_class_names(hf_folder):
    hf = load_model(ModelSpec(arch=f"hf:{hf_folder}"))
    assert hf.class_names == ["cat", "dog", "fox"]  # the config's labels
    assert hf.preprocessing.input_size == 32 and hf.preprocessing.mean == (0.4, 0.4, 0.4)
    pretrained = load_model(ModelSpec(arch=f"hf:{hf_folder}", weights="pretrained"), seed=5)
    from transformers import ViTForImageClassification

    reference = ViTForImageClassification.from_pretrained(hf_folder).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(pretrained.module(x), reference(pixel_values=x).logits)
    vit = load_model(
        ModelSpec(arch="timm:vit_tiny_patch16_224", kwargs={"img_size": 32, "patch_size": 8})
    )
    assert vit.preprocessing.input_size == 32 and vit.preprocessing.mean == (0.5, 0.5, 0.5)
    assert vit.prefix_tokens == 1


def test_timm_weights_file_round_trip(tmp_path):
    import timm

    reference = timm.create_model("resnet18", num_classes=4).eval()
    torch.save(reference.state_dict(), tmp_path / "r18.pth")
    loaded = load_model(ModelSpec(arch="timm:resnet18", weights=str(tmp_path / "r18.pth")))
    weights = reference.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in loaded.module.state_dict().items())
    # load_model leaves a CPU model channels-last: the same layout computes the same bits.
    reference.to(memory_format=torch.channels_last)
    assert loaded.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), reference(x)) and loaded.num_classes == 4


def test_unsupported_layer_outputs_are_one_line_errors(capsys, images, tmp_path):
    with pytest.raises(LayerOutputError, match=r"layer 'odd' outputs 2x3x5 per image"):
        MapView.of("odd", (2, 3, 5))
    code = main(
        [
            "extract",
            "--arch",
            "timm:resnet18",
            "--input-size",
            "64",
            "-s",
            "extract.layer=global_pool.flatten",
            "-s",
            "extract.attribution=off",
            "--images",
            str(images),
            "--out",
            str(tmp_path / "s.zarr"),
            "--scheduler",
            "inline",
        ]
    )
    assert code == 0  # a vector layer is fine
    code = main(
        [
            "layers",
            "--arch",
            "timm:vit_tiny_patch16_224",
            "-s",
            "model.kwargs={img_size: 32, patch_size: 8, depth: 2}",
            "--layer",
            "blocks.1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "blocks.1.attn" in out and "17x192" in out


class Small(nn.Module):
    """A network of the notebook's own, returning a structure that holds its logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        features = torch.relu(self.conv(x))
        return {"logits": self.head(features.mean(dim=(2, 3))), "features": features}


def test_a_model_in_memory_goes_through_the_stages(images, tmp_path):
    from dask.distributed import Client

    torch.manual_seed(0)
    model = wrap_model(
        Small(), input_size=32, mean=(0.5,) * 3, std=(0.25,) * 3, class_names=["cat", "dog", "fox"]
    )
    assert model.spec.arch == "memory:Small" and model.num_classes == 3
    with Client(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as client:
        summary = extract_store(
            str(images),
            str(tmp_path / "acts.zarr"),
            model,
            ExtractConfig(layer="conv", chunk_size=4),
            scheduler=client,
        )
        assert summary.images == 12 and client.status == "running"  # the client stays open
    run = open_run(str(tmp_path / "acts.zarr"))
    assert run.meta["identity"]["weights_digest"] and run.read_layer().valid[:].all()
    with pytest.raises(Exception, match="cannot be rebuilt from its spec"):
        run.load_model()
    reports = attribute_store(
        model,
        [str(images)],
        tmp_path / "reports",
        AttributeConfig(methods=["saliency"], limit=1, deletion_steps=2, randomize_layers=1),
    )
    assert (
        json.loads((tmp_path / "reports" / "reports.json").read_text())[0]["image"] == "cat/0.png"
    )
    assert len(reports) == 1


# The families' one face, on a tiny random network of each: (spec, its family, the
# smooth activation functions guided backprop has no rule for; a network with nothing
# else is refused).
CONTRACT = {
    "torchvision": (
        dict(arch="mobilenet_v2", num_classes=3, input_size=32, kwargs={"width_mult": 0.25}),
        TorchvisionFamily,
        set(),  # ReLU6: gates
    ),
    "timm": (dict(arch="timm:resnet18", num_classes=3, input_size=32), TimmFamily, set()),
    "timm ViT": (
        dict(
            arch="timm:vit_tiny_patch16_224",
            num_classes=3,
            kwargs={"img_size": 32, "patch_size": 8, "depth": 2},
        ),
        TimmFamily,
        {"gelu"},
    ),
    "Hugging Face": (None, HuggingFaceFamily, {"gelu"}),
    "callable": (
        dict(arch="atlas.demo.net:DemoCNN", num_classes=3, input_size=32),
        CallableFamily,
        set(),
    ),
}


@pytest.fixture(scope="module", params=sorted(CONTRACT))
def member(request, hf_folder):
    spec, family, ungated = CONTRACT[request.param]
    spec = ModelSpec(**(spec or dict(arch=f"hf:{hf_folder}")))
    return request.param, spec, family, ungated


def test_every_family_keeps_the_contract(member):
    """The registry picks the family; its network returns (B, classes) logits at the
    resolved input size, the same under the same seed; a CPU model is channels-last; the
    default CAM layer is a map; guided backprop refuses a network of smooth activations
    only (the ViTs' GELU), naming them."""
    name, spec, family, ungated = member
    assert isinstance(family_of(spec.arch), family), name
    loaded = load_model(spec, seed=3)
    assert isinstance(loaded.family, family) and loaded.num_classes == 3, name
    assert weights_digest(load_model(spec, seed=3).module) == weights_digest(loaded.module)
    size = loaded.preprocessing.input_size
    inputs = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = loaded.module(inputs)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 3), name
    convs = [m.weight for m in loaded.module.modules() if isinstance(m, nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs), name
    layer = last_block(loaded)
    assert loaded.view(layer).layout != "vector", name
    if ungated:
        with pytest.raises(MethodNotDefinedError, match=" x".join(sorted(ungated)) + " x"):
            make_method("guided_backprop", loaded)
        return
    guided = make_method("guided_backprop", loaded).attribute(inputs, torch.tensor([0, 2]))
    assert guided.shape == (2, size, size) and torch.isfinite(guided).all()


def test_guided_backprop_rectifies_the_gates_the_family_declares(cnn):
    """The demo CNN's ReLUs are its family's gates: guided backprop is not the gradient.
    A family that declared none is refused, rather than given the plain gradient."""
    inputs = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([1])
    saliency = make_method("saliency", cnn).attribute(inputs, target)
    guided = make_method("guided_backprop", cnn).attribute(inputs, target)
    assert not torch.allclose(guided, saliency, atol=1e-4)

    class NoGates(CallableFamily):
        gates = Gates(rectifiers=frozenset())

    with pytest.raises(MethodNotDefinedError, match="it calls no rectifier"):
        make_method("guided_backprop", replace(cnn, family=NoGates()))


def test_the_registry_orders_prefixes_before_callables_before_names():
    assert [type(f) for f in FAMILIES] == [
        TimmFamily,
        HuggingFaceFamily,
        CallableFamily,
        TorchvisionFamily,
    ]
    assert isinstance(family_of("timm:resnet18"), TimmFamily)
    assert isinstance(family_of("timm.models:resnet18"), CallableFamily)
    assert isinstance(family_of("hf:/some/folder"), HuggingFaceFamily)
    assert isinstance(family_of("resnet18"), TorchvisionFamily)
