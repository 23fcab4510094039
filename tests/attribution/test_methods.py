import numpy as np
import pytest
import torch
from helpers import no_hooks_left
from torch import nn

from atlas.attribution import METHODS, make_method
from atlas.attribution.gradcam import GradCAM, last_block
from atlas.attribution.metrics import cascading_randomization, deletion_insertion
from atlas.attribution.occlusion import Occlusion
from atlas.config import AttributeConfig, ModelSpec
from atlas.models import LoadedModel, Preprocessing, load_model

PLAIN = Preprocessing(16, 16, (0.0,) * 3, (1.0,) * 3)


def wrap(module: nn.Module, size: int = 16, classes: int = 3) -> LoadedModel:
    return LoadedModel(
        module.eval(),
        ModelSpec(arch="x"),
        Preprocessing(size, size, (0.0,) * 3, (1.0,) * 3),
        [f"c{i}" for i in range(classes)],
    )


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 32, 32, generator=generator), torch.tensor([1, 7])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_keeps_the_contract(cnn, batch, name):
    """Shape (B, H, W), finite, the same twice, nothing left hooked, model untouched."""
    inputs, target = batch
    flags = [p.requires_grad for p in cnn.module.parameters()]
    options = AttributeConfig(occlusion_window=8, occlusion_stride=4, ig_steps=8)
    method = make_method(name, cnn, options)
    first = method.attribute(inputs, target)
    second = method.attribute(inputs, target)
    assert first.shape == (2, 32, 32) and torch.isfinite(first).all()
    assert torch.allclose(first, second, atol=1e-6)
    assert first.abs().sum() > 0
    assert no_hooks_left(cnn.module) and [p.requires_grad for p in cnn.module.parameters()] == flags
    assert not cnn.module.training and method.describe()


def test_a_linear_models_saliency_is_its_weights():
    linear = nn.Linear(3 * 16 * 16, 3)
    model = wrap(nn.Sequential(nn.Flatten(), linear))
    inputs = torch.randn(2, 3, 16, 16)
    maps = make_method("saliency", model).attribute(inputs, torch.tensor([0, 2]))
    weights = linear.weight.detach().view(3, 3, 16, 16)
    assert torch.allclose(maps[0], weights[0].abs().amax(dim=0))
    assert torch.allclose(maps[1], weights[2].abs().amax(dim=0))


def test_gradcam_equals_cam_on_a_global_average_pooled_network():
    """Zhou et al.'s CAM: conv maps weighted by the linear head's weights. With nothing
    between the conv and the pooling, Grad-CAM is CAM divided by the map's area."""
    conv, head = nn.Conv2d(3, 5, 3, padding=1), nn.Linear(5, 3)
    model = wrap(nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head))
    inputs = torch.randn(1, 3, 16, 16)
    cam_method = GradCAM(model)
    assert cam_method.layer == "0" == last_block(model)
    maps = cam_method.attribute(inputs, torch.tensor([2]))
    with torch.no_grad():
        cam = torch.einsum("k,khw->hw", head.weight[2], conv(inputs)[0])
    assert torch.allclose(maps[0], torch.relu(cam) / (16 * 16), atol=1e-6)
    assert cam_method.resolution == (16, 16) and "16x16" in cam_method.describe()


def test_gradcam_warns_when_too_coarse_and_names_a_finer_layer():
    model = load_model(ModelSpec(arch="resnet18", num_classes=4, input_size=64))
    method = GradCAM(model)
    method.attribute(torch.randn(1, 3, 64, 64), torch.tensor([0]))
    assert method.layer == "layer4" and method.resolution == (2, 2)
    assert (
        "2x2 is too coarse" in method.describe()
        and "gradcam_layer=layer3 (4x4)" in method.describe()
    )


def test_occlusion_of_a_model_reading_one_region_lights_exactly_that_region():
    class Region(nn.Module):
        def forward(self, x):
            score = x[:, :, 8:12, 4:8].sum(dim=(1, 2, 3))
            return torch.stack([score, -score], dim=1)

    model = wrap(Region(), classes=2)
    maps = Occlusion(model, AttributeConfig(occlusion_window=4, occlusion_stride=4)).attribute(
        torch.ones(1, 3, 16, 16), torch.tensor([0])
    )
    expected = torch.zeros(16, 16)
    expected[8:12, 4:8] = 48.0  # the window over the region removes 3 * 4 * 4 ones
    assert torch.equal(maps[0], expected)


def test_maps_agree_with_captum(cnn, batch):
    from captum.attr import LayerAttribution, LayerGradCam
    from captum.attr import Occlusion as CaptumOcclusion
    from captum.attr import Saliency as CaptumSaliency

    inputs, target = batch
    ours = make_method("saliency", cnn).attribute(inputs, target)
    theirs = (
        CaptumSaliency(cnn.module)
        .attribute(inputs.clone().requires_grad_(), target=target)
        .amax(dim=1)
    )
    assert torch.allclose(ours, theirs, atol=1e-6)

    ours = GradCAM(cnn, AttributeConfig(gradcam_layer="block3.conv")).attribute(inputs, target)
    layer_cam = LayerGradCam(cnn.module, cnn.module.block3.conv).attribute(
        inputs, target=target, relu_attributions=True
    )
    theirs = LayerAttribution.interpolate(layer_cam, (32, 32), interpolate_mode="bilinear")[:, 0]
    assert torch.allclose(ours, theirs, atol=1e-5)

    options = AttributeConfig(occlusion_window=8, occlusion_stride=3, perturbations_per_eval=17)
    ours = Occlusion(cnn, options).attribute(inputs, target)
    theirs = CaptumOcclusion(cnn.module).attribute(
        inputs, sliding_window_shapes=(3, 8, 8), strides=(3, 3, 3), baselines=0.0, target=target
    )
    assert torch.allclose(theirs[:, 0], theirs[:, 2])
    assert (ours - theirs[:, 0]).abs().max() < 1e-4


class EdgeDetector:
    """A 'method' that never looks at the model: the image's own edges."""

    def __init__(self, model):
        pass

    def attribute(self, inputs, target):
        return (inputs[:, :, 1:, 1:] - inputs[:, :, :-1, :-1]).abs().sum(dim=1)


def test_cascading_randomization_flags_a_method_that_ignores_the_model(cnn, batch):
    inputs, target = batch
    ignoring = cascading_randomization(EdgeDetector, cnn, inputs, target)
    # Top down, one block at a time: the demo CNN's fc, then block4 ... block1.
    assert ignoring.steps == ["fc", "block4", "block3", "block2", "block1"]
    for curve in (ignoring.spearman_abs, ignoring.spearman_signed, ignoring.ssim):
        assert curve.shape == (2, 5) and np.allclose(curve, 1.0)
    saliency = cascading_randomization(lambda m: make_method("saliency", m), cnn, inputs, target)
    assert (saliency.spearman_abs[:, -1] < 0.9).all() and not saliency.zero.any()
    flags = [p.requires_grad for p in cnn.module.parameters()]
    again = cascading_randomization(lambda m: make_method("saliency", m), cnn, inputs, target)
    assert np.array_equal(again.spearman_abs, saliency.spearman_abs)  # seeded; model untouched
    assert [p.requires_grad for p in cnn.module.parameters()] == flags


class FlipsOnceRandomized:
    """A signed 'method' whose map flips sign on any randomized copy of the model."""

    original = None

    def __init__(self, model):
        self.sign = 1.0 if model is FlipsOnceRandomized.original else -1.0

    def attribute(self, inputs, target):
        return self.sign * inputs[:, 0]


class VanishesOnceRandomized(FlipsOnceRandomized):
    def attribute(self, inputs, target):
        return inputs[:, 0] if self.sign > 0 else torch.zeros_like(inputs[:, 0])


def test_the_cascade_ranks_the_absolute_and_the_signed_map_and_names_all_zero_maps(cnn, batch):
    inputs, target = batch
    FlipsOnceRandomized.original = cnn
    flipped = cascading_randomization(FlipsOnceRandomized, cnn, inputs, target, steps=2)
    assert flipped.steps == ["fc", "block4"]
    assert np.allclose(flipped.spearman_abs, 1.0) and np.allclose(flipped.spearman_signed, -1.0)
    vanished = cascading_randomization(VanishesOnceRandomized, cnn, inputs, target, steps=2)
    assert vanished.zero.all() and np.isnan(vanished.spearman_abs).all()
    assert not vanished.original_zero.any()


def test_deletion_and_insertion_reward_the_map_that_points_at_the_evidence():
    class Region(nn.Module):
        def forward(self, x):
            score = 4 * x[:, 0, 2:6, 2:6].mean(dim=(1, 2))
            return torch.stack([score, -score], dim=1)

    model = wrap(Region(), classes=2)
    image = torch.zeros(1, 3, 16, 16)
    image[:, 0, 2:6, 2:6] = 3.0
    right = torch.zeros(1, 16, 16)
    right[0, 2:6, 2:6] = 1.0
    wrong = 1.0 - right
    good = deletion_insertion(model, image, torch.tensor([0]), right)
    bad = deletion_insertion(model, image, torch.tensor([0]), wrong)
    assert good.deletion_auc[0] < bad.deletion_auc[0]
    assert good.insertion_auc[0] > bad.insertion_auc[0]
    # RISE's baselines: deletion ends on the all-zero image, insertion starts from the blur.
    zero = torch.softmax(model.module(torch.zeros_like(image)), dim=1)[0, 0].item()
    assert good.deletion[0, -1] == pytest.approx(zero) and good.fractions[-1] == 1.0
    full = torch.softmax(model.module(image), dim=1)[0, 0].item()
    assert good.deletion[0, 0] == pytest.approx(full) == good.insertion[0, -1]


def test_unknown_method_names_the_choices(cnn):
    from atlas.errors import AtlasError

    with pytest.raises(AtlasError, match=r"unknown attribution method 'saliancy'.*saliency"):
        make_method("saliancy", cnn)
