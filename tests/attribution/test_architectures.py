"""Attribution that stays right whatever form the network takes: functional ReLUs,
residual blocks, inception modules; and the CAM family against the grad-cam package."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from atlas.attribution import make_method
from atlas.attribution.gradcam import GradCAM, last_block
from atlas.config import AttributeConfig, ModelSpec
from atlas.layers import blocks
from atlas.models import LoadedModel, Preprocessing, load_model

RELU_FORMS = {
    "module": lambda h: nn.ReLU()(h),
    "module in place": lambda h: nn.ReLU(inplace=True)(h),
    "F.relu": F.relu,
    "F.relu in place": lambda h: F.relu(h, inplace=True),
    "torch.relu": torch.relu,
    "Tensor.relu_": lambda h: h.relu_(),
    "torch.relu_": torch.relu_,
}


class TwoLayers(nn.Module):
    """x -> relu(W1 x) -> relu(W2 .) -> W3 ., with the ReLU written in one of its forms."""

    def __init__(self, relu):
        super().__init__()
        self.relu = relu
        self.one, self.two, self.three = nn.Linear(12, 10), nn.Linear(10, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = self.relu(self.one(x.flatten(1)))
        return self.three(self.relu(self.two(h)))


def wrap(module, size=2):
    return LoadedModel(
        module.eval(), ModelSpec(arch="x"), Preprocessing(size, size, (0,) * 3, (1,) * 3), ["a"] * 3
    )


def guided_by_hand(net: TwoLayers, x: torch.Tensor, klass: int) -> torch.Tensor:
    """Guided backprop written out: each ReLU passes back max(gradient, 0) where its input
    was positive."""
    with torch.no_grad():
        a1 = net.one(x.flatten(1))
        a2 = net.two(a1.clamp(min=0))
        g = net.three.weight[klass].expand(len(x), -1)  # d logit / d relu(a2)
        g = g.clamp(min=0) * (a2 > 0)
        g = (g @ net.two.weight).clamp(min=0) * (a1 > 0)
        return (g @ net.one.weight).view_as(x)


@pytest.mark.parametrize("form", sorted(RELU_FORMS))
def test_guided_backprop_equals_the_hand_computed_rule_for_every_relu_form(form):
    torch.manual_seed(0)
    net = TwoLayers(RELU_FORMS[form])
    x = torch.randn(4, 3, 2, 2)
    expected = guided_by_hand(net, x, 1).abs().amax(dim=1)
    model = wrap(net)
    guided = make_method("guided_backprop", model).attribute(x, torch.tensor([1] * 4))
    assert torch.allclose(guided, expected, atol=1e-6)
    saliency = make_method("saliency", model).attribute(x, torch.tensor([1] * 4))
    assert not torch.allclose(guided, saliency, atol=1e-4)


def test_guided_backprop_agrees_with_captum_where_relus_are_modules(cnn):
    from captum.attr import GuidedBackprop as CaptumGuided

    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([3, 8])
    ours = make_method("guided_backprop", cnn).attribute(inputs, target)
    theirs = CaptumGuided(cnn.module).attribute(inputs.clone().requires_grad_(), target=target)
    assert torch.allclose(ours, theirs.abs().amax(dim=1), atol=1e-6)


def test_guided_backprop_on_googlenet_is_not_the_gradient():
    """torchvision's GoogLeNet applies F.relu(x, inplace=True): hooks on nn.ReLU modules
    (Captum's guided backprop) see none of them and return the plain gradient."""
    from captum.attr import GuidedBackprop as CaptumGuided

    model = load_model(ModelSpec(arch="googlenet", num_classes=10, input_size=64), seed=0)
    inputs = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([4])
    guided = make_method("guided_backprop", model).attribute(inputs, target)
    saliency = make_method("saliency", model).attribute(inputs, target)
    captum = CaptumGuided(model.module).attribute(inputs.clone().requires_grad_(), target=target)
    assert torch.allclose(captum.abs().amax(dim=1), saliency, rtol=1e-5, atol=0)  # the bug
    relative = (guided - saliency).abs().max() / saliency.abs().max()
    assert relative > 0.1


@pytest.mark.parametrize(
    ("arch", "layer"),
    [
        ("resnet18", "layer4"),
        ("vgg11", "features"),
        ("googlenet", "inception5b"),
        ("convnext_tiny", "features"),
        ("mobilenet_v3_small", "features"),
        ("atlas.demo.net:DemoCNN", "block4"),
    ],
)
def test_the_default_cam_layer_is_the_last_blocks_output(arch, layer):
    model = load_model(ModelSpec(arch=arch, num_classes=5, input_size=96), seed=0)
    assert last_block(model) == layer


def test_gradcam_equals_the_grad_cam_package_on_the_same_layer():
    from pytorch_grad_cam import GradCAM as Reference
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = load_model(ModelSpec(arch="resnet18", num_classes=6, input_size=96), seed=0)
    inputs = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([0, 3, 5])
    ours = GradCAM(model).attribute(inputs, target)
    with Reference(model=model.module, target_layers=[model.module.layer4]) as reference:
        theirs = reference(
            input_tensor=inputs, targets=[ClassifierOutputTarget(int(t)) for t in target]
        )
    low = ours.flatten(1).min(dim=1).values[:, None, None]
    high = ours.flatten(1).max(dim=1).values[:, None, None]
    scaled = ((ours - low) / (1e-7 + high - low)).numpy()  # the package's own scaling
    assert np.abs(scaled - theirs).max() < 1e-5
    for parameter in model.module.parameters():
        parameter.grad = None


@pytest.mark.parametrize("name", ["gradcam_pp", "scorecam", "layercam", "eigencam"])
def test_the_cam_family_comes_from_the_grad_cam_package_through_our_face(cnn, name):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    method = make_method(name, cnn)
    inputs = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([1, 6])
    ours = method.attribute(inputs, target)
    assert all(p.grad is None for p in cnn.module.parameters())  # nothing left on the model
    library = getattr(pytorch_grad_cam, type(method).library_class)
    with library(model=cnn.module, target_layers=[cnn.module.block4]) as reference:
        theirs = reference(
            input_tensor=inputs.clone(), targets=[ClassifierOutputTarget(int(t)) for t in target]
        )
    assert method.layer == "block4" and method.resolution == (4, 4)
    assert np.abs(ours.numpy() - theirs).max() < 1e-5
    for parameter in cnn.module.parameters():
        parameter.grad = None


def test_blocks_are_what_a_person_calls_layers():
    model = load_model(ModelSpec(arch="resnet18", num_classes=5), seed=0)
    found = blocks(model.module)
    assert found[0] == ["conv1", "bn1"] and found[-1] == ["fc"]
    assert found[1:-1] == [[f"layer{i}.{j}"] for i in range(1, 5) for j in (0, 1)]
    assert not any(name.startswith("bn") for step in found for name in step[:1])


@pytest.mark.parametrize(("size", "window", "stride"), [(64, 9, 4), (224, 32, 16)])
def test_occlusion_defaults_scale_with_the_input(size, window, stride):
    model = wrap(nn.Sequential(nn.Flatten(), nn.LazyLinear(3)), size=size)
    method = make_method("occlusion", model, AttributeConfig())
    assert (method.window, method.stride) == (window, stride)
    explicit = make_method("occlusion", model, AttributeConfig(occlusion_window=5))
    assert (explicit.window, explicit.stride) == (5, 2)


@pytest.mark.parametrize(
    "arch", ["resnet18", "vgg11", "googlenet", "mobilenet_v3_small", "atlas.demo.net:DemoCNN"]
)
def test_incremental_occlusion_equals_captum_on_every_kind_of_network(arch):
    """Residual sums, inception concatenations, ceil-mode pooling, squeeze-and-excitation:
    the incremental maps are Captum's (windows clipped at the border included)."""
    from captum.attr import Occlusion as CaptumOcclusion

    from atlas.attribution.occlusion import Occlusion

    # GoogLeNet's own initialization (std 0.01) leaves a random network's output constant.
    kwargs = {"init_weights": False} if arch == "googlenet" else {}
    model = load_model(ModelSpec(arch=arch, num_classes=7, input_size=61, kwargs=kwargs), seed=0)
    inputs = torch.randn(2, 3, 61, 61, generator=torch.Generator().manual_seed(4))
    target = torch.tensor([2, 5])
    ours = Occlusion(
        model,
        AttributeConfig(occlusion_window=13, occlusion_stride=6, perturbations_per_eval=16),
    )
    assert ours.incremental
    maps = ours.attribute(inputs, target)
    theirs = CaptumOcclusion(model.module).attribute(
        inputs, sliding_window_shapes=(3, 13, 13), strides=(3, 6, 6), baselines=0.0, target=target
    )[:, 0]
    assert (maps - theirs).abs().max() <= 1e-4 * max(1.0, float(theirs.abs().max()))
    assert theirs.abs().max() > 0


def test_occlusion_recomputes_whole_images_where_the_network_cannot_be_traced():
    from atlas.attribution.occlusion import Occlusion

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(3, 4, 3), nn.Linear(4, 2)

        def forward(self, x):
            features = self.conv(x).mean(dim=(2, 3))
            if features.sum() > 0:  # data-dependent control flow: torch.fx cannot trace it
                features = features * 2
            return self.head(features)

    torch.manual_seed(0)
    model = wrap(Branchy(), size=12)
    options = AttributeConfig(occlusion_window=4, occlusion_stride=4)
    method = Occlusion(model, options)
    assert not method.incremental
    reference = Occlusion(model, options, incremental=False)
    inputs = torch.randn(1, 3, 12, 12)
    assert torch.equal(
        method.attribute(inputs, torch.tensor([1])), reference.attribute(inputs, torch.tensor([1]))
    )
