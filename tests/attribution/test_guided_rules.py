"""Guided backprop's rule on every activation torchvision and timm networks use: exact
values on hand-built nets for ReLU6 and hardtanh (at and beyond the clamp bounds), the
leaky rectifiers' rule, and the refusal (or the page's warning) for smooth activations."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from atlas.attribution import make_method
from atlas.attribution.guided_backprop import GuidedBackprop, guided_relus
from atlas.config import ModelSpec
from atlas.errors import AtlasError, MethodNotDefinedError
from atlas.models import RELU_GATES, LoadedModel, Preprocessing


class Pointwise(nn.Module):
    """logit_k = sum_i w[k, i] * act(x_i): one activation between the input and a linear
    read-out, so the guided gradient is w[k, i] clipped at 0 times act'(x_i)."""

    def __init__(self, act, weights: torch.Tensor):
        super().__init__()
        self.act = act
        self.read = nn.Linear(weights.shape[1], weights.shape[0], bias=False)
        with torch.no_grad():
            self.read.weight.copy_(weights)

    def forward(self, x):
        return self.read(self.act(x.clone()).flatten(1))  # a copy: in-place forms may write


def wrap(module: nn.Module, size: int = 2) -> LoadedModel:
    return LoadedModel(
        module.eval(), ModelSpec(arch="x"), Preprocessing(size, size, (0,) * 3, (1,) * 3), ["a"] * 2
    )


def guided_gradient(act, x: torch.Tensor, weights: torch.Tensor, klass: int = 0):
    """The guided input gradient (B, 3, H, W), before the max over colours."""
    net = Pointwise(act, weights)
    inputs = x.clone().requires_grad_(True)
    with guided_relus():
        logit = net(inputs)[:, klass].sum()
    (grad,) = torch.autograd.grad(logit, inputs)
    return grad


# Values at and beyond both of ReLU6's bounds, and inside them; 12 = 3 colours x 2 x 2.
X = torch.tensor([-7.0, -1.0, 0.0, 0.5, 3.0, 5.999, 6.0, 6.5, 100.0, 2.0, 4.0, -0.5]).view(
    1, 3, 2, 2
)
W = torch.tensor([[1.0, 1.0, 1.0, 2.0, -1.0, 3.0, 1.0, 1.0, 1.0, -2.0, 0.5, 1.0]] * 2)


@pytest.mark.parametrize(
    "act",
    [
        nn.ReLU6(),
        nn.ReLU6(inplace=True),
        F.relu6,
        lambda h: F.hardtanh(h, 0.0, 6.0),
        nn.Hardtanh(0, 6),
    ],
    ids=["ReLU6", "ReLU6 in place", "F.relu6", "F.hardtanh(0, 6)", "Hardtanh(0, 6)"],
)
def test_relu6_passes_only_positive_gradients_strictly_inside_its_bounds(act):
    """d/dx of ReLU6 is 1 on (0, 6) only: at 0, at 6 and beyond, nothing passes back; and
    of the gradients inside, only the positive ones (w = -1 at x = 3, -2 at x = 2 do not)."""
    grad = guided_gradient(act, X, W).flatten()
    expected = torch.tensor([0, 0, 0, 2.0, 0, 3.0, 0, 0, 0, 0, 0.5, 0])
    assert torch.equal(grad, expected)


def test_hardtanh_with_another_lower_bound_is_no_gate_and_a_network_of_them_is_refused():
    """hardtanh(-1, 1) squashes like tanh: not a rectifier, so the net has no gate."""
    net = wrap(Pointwise(nn.Hardtanh(-1.0, 1.0), W))
    with pytest.raises(MethodNotDefinedError, match="not defined for x") as caught:
        make_method("guided_backprop", net)
    assert isinstance(caught.value, AtlasError) and isinstance(caught.value, ValueError)
    assert RELU_GATES.kind(F.hardtanh, (X, -1.0, 1.0)) == ""
    assert RELU_GATES.kind(F.hardtanh, (X,), {"min_val": 0.0}) == "gate"


@pytest.mark.parametrize(
    ("act", "derivative"),
    [
        (nn.LeakyReLU(0.1), lambda x: torch.where(x > 0, 1.0, 0.1)),
        (nn.ELU(), lambda x: torch.where(x > 0, 1.0, torch.exp(x))),
        (nn.SELU(), lambda x: 1.0507 * torch.where(x > 0, 1.0, 1.6733 * torch.exp(x))),
    ],
    ids=["LeakyReLU", "ELU", "SELU"],
)
def test_leaky_rectifiers_pass_the_positive_gradient_through_their_own_derivative(act, derivative):
    x = torch.tensor([-2.0, -0.5, 0.5, 3.0] * 3).view(1, 3, 2, 2)
    w = torch.tensor([[1.0, -1.0, 2.0, -3.0] * 3] * 2)
    grad = guided_gradient(act, x, w).flatten()
    expected = w[0].clamp(min=0) * derivative(x.flatten())
    assert torch.allclose(grad, expected, atol=1e-3)
    assert (grad >= 0).all()


class Smooth(nn.Module):
    """conv -> act -> conv -> act -> pool -> linear; ``act`` per block."""

    def __init__(self, first, second):
        super().__init__()
        self.one, self.two = nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 3, padding=1)
        self.first, self.second = first, second
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        h = self.second(self.two(self.first(self.one(x))))
        return self.head(h.mean(dim=(2, 3)))


@pytest.mark.parametrize("act", [nn.SiLU, nn.GELU, nn.Hardswish, nn.Mish])
def test_a_network_of_smooth_activations_is_refused_with_their_names(act):
    torch.manual_seed(0)
    net = wrap(Smooth(act(), act()), size=8)
    name = act.__name__.lower().replace("gelu", "gelu")
    with pytest.raises(MethodNotDefinedError, match=rf"smooth \({name} x2\)"):
        make_method("guided_backprop", net)


def test_a_network_with_some_gates_is_guided_there_and_its_page_names_the_rest(caplog):
    """ReLU then SiLU (as MobileNetV3 mixes ReLU and Hardswish): the ReLU is rectified, so
    the map is not the gradient, and the description on the report page warns."""
    torch.manual_seed(0)
    net = wrap(Smooth(nn.ReLU(), nn.SiLU()), size=8)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1])
    method = make_method("guided_backprop", net)
    with caplog.at_level("WARNING", logger="atlas.attribution.guided_backprop"):
        guided = method.attribute(x, target)
    saliency = make_method("saliency", net).attribute(x, target)
    assert not torch.allclose(guided, saliency, atol=1e-5)
    assert "silu x1" in method.describe() and "relu" not in method.describe().split(":")[-1]
    assert "silu x1" in caplog.text


def test_guided_backprop_on_a_tiny_mobilenet_v2_is_not_the_gradient():
    """Random-weight MobileNetV2 (ReLU6 only): rectified everywhere, no warning."""
    from atlas.models import load_model

    model = load_model(
        ModelSpec(arch="mobilenet_v2", num_classes=3, input_size=32, kwargs={"width_mult": 0.25}),
        seed=0,
    )
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 2])
    method = make_method("guided_backprop", model)
    assert isinstance(method, GuidedBackprop) and method.describe() == method.paper
    assert set(method.coverage.gated) == {"hardtanh"} and not method.coverage.smooth
    guided = method.attribute(x, target)
    saliency = make_method("saliency", model).attribute(x, target)
    relative = (guided - saliency).abs().max() / saliency.abs().max()
    assert relative > 0.1
    # Captum hooks nn.ReLU modules only: on MobileNetV2 its guided backprop is the gradient.
    from captum.attr import GuidedBackprop as CaptumGuided

    theirs = CaptumGuided(model.module).attribute(x.clone().requires_grad_(), target=target)
    assert torch.allclose(theirs.abs().amax(dim=1), saliency, atol=1e-6)


def test_a_report_on_a_network_without_gates_shows_guided_backprop_as_not_defined(tmp_path):
    """The other methods run; the pages say why guided backprop did not."""
    import numpy as np
    from PIL import Image

    from atlas.config import AttributeConfig
    from atlas.data import list_images
    from atlas.reports.attribution_report import attribute_images

    torch.manual_seed(0)
    net = wrap(Smooth(nn.GELU(), nn.GELU()), size=8)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.full((8, 8, 3), 90, dtype=np.uint8)).save(tmp_path / "in" / "one.png")
    options = AttributeConfig(methods=["saliency", "guided_backprop"], deletion_steps=0)
    records = list_images(tmp_path / "in").records
    attribute_images(net, records, tmp_path / "out", options)
    assert (tmp_path / "out" / "one.saliency.npy").exists()
    assert not (tmp_path / "out" / "one.guided_backprop.npy").exists()
    for page in ("index.html", "one.html"):
        text = (tmp_path / "out" / page).read_text()
        assert "guided_backprop: not defined for this network" in text
        assert "its activations are smooth (gelu x2)" in text
