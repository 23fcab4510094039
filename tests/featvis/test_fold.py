"""Batch norms folded into their convolutions for rendering: the same network."""

import torch
from torch import nn

from atlas.demo.net import DemoCNN
from atlas.featvis.fold import fold_batchnorm
from atlas.layers import capture


def trained_looking(model):
    """Batch norms with statistics and affine parameters far from their defaults."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            c = module.num_features
            module.running_mean = torch.randn(c, generator=generator)
            module.running_var = torch.rand(c, generator=generator) + 0.5
            module.weight.data = torch.randn(c, generator=generator)
            module.bias.data = torch.randn(c, generator=generator)
    return model.eval()


def test_folding_keeps_every_read_layer_and_the_output():
    model = trained_looking(DemoCNN())
    folded, count = fold_batchnorm(model, ["block2", "block4.bn"])
    assert count == 4 and folded is not model
    assert isinstance(folded.block4.bn, nn.Identity) and isinstance(model.block4.bn, nn.BatchNorm2d)
    x = torch.rand(3, 3, 64, 64)
    layers = ["block2", "block4.bn", "block3.relu"]
    with torch.no_grad(), capture(model, layers) as a, capture(folded, layers) as b:
        torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-4)
    for name in layers:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-4)


def test_a_convolution_whose_own_output_is_read_is_not_folded():
    model = trained_looking(DemoCNN())
    folded, count = fold_batchnorm(model, ["block3.conv"])
    assert count == 3 and isinstance(folded.block3.bn, nn.BatchNorm2d)
    x = torch.rand(2, 3, 64, 64)
    with (
        torch.no_grad(),
        capture(model, ["block3.conv"]) as a,
        capture(folded, ["block3.conv"]) as b,
    ):
        folded(x), model(x)
    torch.testing.assert_close(b["block3.conv"], a["block3.conv"])


def test_pairs_outside_a_sequential_are_left_alone():
    class Block(nn.Module):  # forward might use the conv's output elsewhere too
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    block = Block().eval()
    assert fold_batchnorm(block) == (block, 0)
