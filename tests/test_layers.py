import pytest
import torch
from helpers import no_hooks_left
from torch import nn
from torchvision.models import resnet18

from atlas.errors import AtlasError
from atlas.layers import Hooks, capture, format_summary, get_layer, layer_names, summarize


@pytest.fixture(scope="module")
def resnet():
    return resnet18(num_classes=10).eval()


def test_get_layer_by_dotted_name(resnet):
    assert get_layer(resnet, "layer3.1.conv2") is resnet.layer3[1].conv2
    assert "layer4.0.downsample.0" in layer_names(resnet)


def test_unknown_layer_is_a_key_error_with_close_matches(resnet):
    with pytest.raises(KeyError) as err:
        get_layer(resnet, "layer3.1.conv3")
    assert isinstance(err.value, AtlasError)
    message = str(err.value)
    assert message.startswith("unknown layer 'layer3.1.conv3'")
    assert "layer3.1.conv1" in message and "atlas layers" in message


def test_capture_records_layer_outputs_and_removes_its_hooks(resnet):
    x = torch.randn(2, 3, 64, 64)
    with capture(resnet, ["layer2", "avgpool"]) as outputs:
        logits = resnet(x)
    stem = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
    assert torch.allclose(outputs["layer2"], resnet.layer2(resnet.layer1(stem)))
    assert torch.allclose(
        outputs["avgpool"].flatten(1) @ resnet.fc.weight.T + resnet.fc.bias, logits, atol=1e-5
    )
    assert not outputs["layer2"].requires_grad
    assert no_hooks_left(resnet)


def test_capture_keeps_the_graph_when_asked(resnet):
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    with capture(resnet, ["layer4"], detach=False) as outputs:
        resnet(x)
    outputs["layer4"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_hooks_are_removed_even_when_the_block_raises(resnet):
    with pytest.raises(RuntimeError), capture(resnet, ["layer1"]):
        resnet(torch.randn(1, 5, 64, 64))  # wrong channel count
    assert no_hooks_left(resnet)
    hooks = Hooks()
    hooks.forward(resnet.fc, lambda *a: None)
    hooks.forward(resnet.layer1, lambda *a: None)
    assert not no_hooks_left(resnet)
    hooks.release()
    assert no_hooks_left(resnet)


def test_summary_matches_real_shapes_and_parameter_counts(resnet):
    summary = summarize(resnet, 64)
    rows = {row.name: row for row in summary.rows}
    # Real shapes from running the stages by hand.
    x = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        stem = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
        l1 = resnet.layer1(stem)
        l4 = resnet.layer4(resnet.layer3(resnet.layer2(l1)))
    assert rows["maxpool"].output_shape == tuple(stem.shape[1:]) == (64, 16, 16)
    assert rows["layer4"].output_shape == tuple(l4.shape[1:]) == (512, 2, 2)
    assert rows["fc"].output_shape == (10,)
    for name, module in resnet.named_modules():
        if name:
            assert rows[name].params == sum(p.numel() for p in module.parameters())
            assert rows[name].type == type(module).__name__
    assert summary.total_params == sum(p.numel() for p in resnet.parameters()) == 11_181_642
    assert summary.trainable_params == summary.total_params
    assert rows["relu"].calls == 1 and rows["layer1.0.relu"].calls == 2  # reused within a block
    assert no_hooks_left(resnet)


def test_summary_reports_frozen_and_partially_frozen_layers():
    model = resnet18(num_classes=4)
    for p in model.layer1.parameters():
        p.requires_grad_(False)
    model.layer2[0].conv1.weight.requires_grad_(False)
    summary = summarize(model, 32)
    rows = {row.name: row for row in summary.rows}
    assert rows["layer1"].trainable == "no"
    assert rows["layer2"].trainable == "partial"
    assert rows["fc"].trainable == "yes" and rows["relu"].trainable == ""
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    assert summary.total_params - summary.trainable_params == frozen
    text = format_summary(summary, max_depth=0)
    assert "layer1.0" not in text and "layer4" in text
    assert f"Non-trainable params: {frozen:,}" in text
    assert "(x2 calls)" in format_summary(summary)


def test_capture_is_not_changed_by_a_later_inplace_operation():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(inplace=True))
    with torch.no_grad():
        model[0].weight.fill_(-1.0)
    x = torch.ones(1, 1, 2, 2)
    with capture(model, ["0"]) as outputs:
        y = model(x)
    assert (outputs["0"] < 0).all() and (y == 0).all()
    with capture(model, ["0"], detach=False) as outputs:
        model(x.requires_grad_()).sum().backward()  # no "modified by an inplace operation"
    assert outputs["0"].requires_grad
