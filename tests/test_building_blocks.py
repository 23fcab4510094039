"""The Building Blocks views (atlas.building_blocks): exact answers on tiny models, the
factorization's reconstruction, and attributions that sum to the layer's total."""

import numpy as np
import pytest
import torch
from torch import nn

from atlas.building_blocks import (
    group_attributions,
    layer_attribution,
    neuron_groups,
    semantic_dictionary,
)
from atlas.models import wrap_model


class PooledLinear(nn.Module):
    """A 1x1 convolution (the layer ``conv``), global average pooling and a linear head:
    the gradient of logit j at ``conv`` is ``head.weight[j] / (H W)`` at every position."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 1)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def pooled():
    return wrap_model(PooledLinear().eval(), input_size=8, class_names=list("abcd"))


def test_the_layer_gradient_of_a_pooled_linear_head_is_its_weight(pooled):
    image = torch.randn(3, 8, 8)
    found = layer_attribution(pooled, image, "conv", 2)
    weight = pooled.module.head.weight[2].detach().numpy() / 64
    np.testing.assert_allclose(
        found.gradient, np.broadcast_to(weight[:, None, None], (5, 8, 8)), rtol=1e-5
    )
    with torch.no_grad():
        expected = pooled.module.conv(image[None])[0].numpy()
    np.testing.assert_allclose(found.activation, expected, rtol=1e-5, atol=1e-6)
    # The logit is linear in the layer: the attribution sums to the logit minus the bias.
    with torch.no_grad():
        logit = pooled.module(image[None])[0, 2].item()
    assert found.total == pytest.approx(logit - pooled.module.head.bias[2].item(), rel=1e-4)
    assert found.spatial.shape == (8, 8)
    assert found.spatial.sum() == pytest.approx(found.total, rel=1e-5)


def test_groups_rebuild_a_map_made_of_that_many_groups():
    rng = np.random.default_rng(0)
    maps = rng.random((3, 6, 6)) * (rng.random((3, 6, 6)) > 0.5)
    directions = rng.random((3, 10))
    activation = np.einsum("khw,kc->chw", maps, directions).astype(np.float32)
    groups = neuron_groups(activation, k=3)
    assert groups.relative_error < 1e-3
    assert groups.maps.shape == (3, 6, 6) and (groups.maps >= 0).all()
    # Fewer groups than the map holds cannot rebuild it.
    assert neuron_groups(activation, k=1).relative_error > 0.05


def test_a_signed_map_is_rebuilt_from_its_positive_and_negative_parts():
    rng = np.random.default_rng(1)
    maps = rng.random((2, 5, 5))
    directions = rng.normal(size=(2, 8))  # signed channel weights
    activation = np.einsum("khw,kc->chw", maps, directions).astype(np.float32)
    groups = neuron_groups(activation, k=4)
    assert groups.relative_error < 0.05
    assert (groups.directions < 0).any()


def test_group_attributions_and_the_remainder_sum_to_the_layer_total(pooled):
    torch.manual_seed(3)
    found = layer_attribution(pooled, torch.randn(3, 8, 8), "conv", 1)
    groups = neuron_groups(found.activation, k=2)
    shares, rest = group_attributions(groups, found.gradient)
    assert shares.shape == (2,)
    assert shares.sum() + rest == pytest.approx(found.total, rel=1e-4, abs=1e-6)
    np.testing.assert_allclose(
        groups.reconstruction() + groups.remainder, found.activation, atol=1e-5
    )


def test_the_semantic_dictionary_lists_each_positions_strongest_channels():
    values = np.zeros((4, 2, 2), np.float32)
    values[:, 0, 0] = [0.1, 0.9, 0.5, 0.0]
    values[:, 1, 1] = [3.0, 1.0, 2.0, 4.0]
    channels, strengths = semantic_dictionary(values, top=2)
    assert channels[:, 0, 0].tolist() == [1, 2] and channels[:, 1, 1].tolist() == [3, 0]
    assert strengths[:, 1, 1].tolist() == [4.0, 3.0]


def test_the_report_section_tells_classes_of_the_same_name_apart(tiny_world, tmp_path):
    """ImageNet names two classes ``crane``: the section's classes go by index, so both
    can be shown, each with its own attributions."""
    from atlas.attribution.sanity import select_photos
    from atlas.config import AttributeConfig, Recipe
    from atlas.reports.attribution_report import attribute_images

    net = PooledLinear().eval()
    with torch.no_grad():  # logits ranked x, x, y, z whatever the image
        net.head.weight.mul_(0.01)
        net.head.bias.copy_(torch.tensor([3.0, 2.0, 1.0, 0.0]))
    model = wrap_model(net, input_size=8, class_names=["x", "x", "y", "z"])
    options = AttributeConfig(
        methods=["saliency"],
        randomize_methods=[],
        deletion_steps=0,
        blocks_layer="conv",
        blocks_groups=2,
        blocks_icon_steps=0,
    )
    (report,) = attribute_images(
        model, select_photos(tiny_world / "test", 1), tmp_path, options, Recipe()
    )
    blocks = report.blocks
    assert len(blocks["classes"]) == 3
    columns = {tuple(round(g["attribution"][k], 6) for g in blocks["groups"]) for k in range(3)}
    assert len(columns) == 3  # three different classes, not one counted twice
