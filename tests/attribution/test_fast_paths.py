"""The report's shared and batched paths give the numbers of the plain ones: every method
rebuilt on its own randomized copy of the model, similarities by scipy and scikit-image,
deletion and insertion one map at a time."""

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from atlas.attribution import METHODS, make_method
from atlas.attribution.metrics import (
    _blur,
    _Ranked,
    _similarities,
    cascading_randomization,
    cascading_randomizations,
    deletion_insertion,
    deletion_insertion_of,
    randomize,
)
from atlas.config import AttributeConfig
from atlas.layers import blocks, get_layer

OPTIONS = AttributeConfig(occlusion_window=8, occlusion_stride=4, ig_steps=4)
CHEAP = ["saliency", "guided_backprop", "gradcam", "occlusion", "integrated_gradients"]


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(2, 3, 32, 32, generator=generator), torch.tensor([4, 1])


def plain_cascade(name, model, inputs, target, steps):
    """The cascade as it was first written: one copy of the model per method, the method
    built anew by name on it after every step, similarities by scipy and scikit-image."""
    before = make_method(name, model, OPTIONS).attribute(inputs, target)
    clone = copy.deepcopy(model.module).eval()
    randomized = model.with_module(clone)
    chosen = blocks(clone)[::-1][:steps]
    curves = np.full((4, len(before), len(chosen)), np.nan)
    for k, step in enumerate(chosen):
        for layer in step:
            randomize(get_layer(clone, layer), k)
        after = make_method(name, randomized, OPTIONS).attribute(inputs, target)
        for i, (a, b) in enumerate(zip(before, after, strict=True)):
            curves[:, i, k] = _similarities(a.numpy(), b.numpy())
    return curves


def test_one_copy_for_every_method_gives_each_methods_own_cascade(cnn, batch):
    inputs, target = batch
    methods = {name: make_method(name, cnn, OPTIONS) for name in CHEAP}
    originals = {name: m.attribute(inputs, target) for name, m in methods.items()}
    shared = cascading_randomizations(
        {name: m.on for name, m in methods.items()}, cnn, inputs, target, originals=originals
    )
    for name in CHEAP:
        expected = plain_cascade(name, cnn, inputs, target, None)
        got = shared[name]
        assert got.steps == ["fc", "block4", "block3", "block2", "block1"]
        for row, curve in enumerate((got.spearman_abs, got.spearman_signed, got.ssim)):
            np.testing.assert_allclose(curve, expected[row], atol=1e-6, err_msg=name)
        assert np.array_equal(got.zero, expected[3] > 0)
    # the single-method face is the same cascade
    alone = cascading_randomization(
        lambda m: make_method("saliency", m, OPTIONS), cnn, inputs, target, steps=3
    )
    np.testing.assert_allclose(alone.spearman_abs, shared["saliency"].spearman_abs[:, :3])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_moved_onto_another_network_equals_one_built_there(cnn, batch, name):
    inputs, target = batch
    clone = copy.deepcopy(cnn.module)
    randomize(clone.fc, 5)
    other = cnn.with_module(clone.eval())
    moved = make_method(name, cnn, OPTIONS).on(other)
    assert moved.model is other
    built = make_method(name, other, OPTIONS)
    torch.testing.assert_close(moved.attribute(inputs, target), built.attribute(inputs, target))


def test_similarities_to_a_ranked_map_are_scipys_and_scikit_images():
    generator = np.random.default_rng(0)
    a = generator.normal(size=(20, 20)).astype(np.float32)
    ties = np.round(a * 2) / 2  # many equal values: ranks averaged
    flat = np.full((20, 20), 0.5, np.float32)  # constant: Spearman undefined
    for first in (a, ties, -a, np.zeros_like(a), flat):
        for second in (a + generator.normal(size=a.shape), ties, np.zeros_like(a), flat, -ties):
            np.testing.assert_allclose(
                _Ranked(first).similarities(second), _similarities(first, second), atol=1e-9
            )


def plain_deletion_insertion(model, inputs, target, maps, steps):
    """One map at a time, every frame of both curves through the model."""
    deletion, insertion = [], []
    for image, klass, attribution in zip(inputs, target, maps, strict=True):
        order = torch.argsort(attribution.flatten(), descending=True)
        counts = torch.linspace(0, order.numel(), steps + 1).round().long()
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel())
        shown = (rank[None] < counts[:, None]).view(steps + 1, 1, *image.shape[1:])
        blurred = _blur(image)
        for frames, out in (
            (torch.where(shown, 0.0, image[None]), deletion),
            (torch.where(shown, image[None], blurred[None]), insertion),
        ):
            with torch.no_grad():
                out.append(F.softmax(model.module(frames), dim=1)[:, klass].numpy())
    return np.array(deletion), np.array(insertion)


@pytest.mark.parametrize("steps", [1, 5, 16])
def test_deletion_of_many_maps_at_once_equals_one_map_at_a_time(cnn, batch, steps):
    inputs, target = batch
    maps = {
        "random": torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(1)),
        "ties": torch.randint(0, 3, (2, 32, 32), generator=torch.Generator().manual_seed(2)),
        "saliency": make_method("saliency", cnn).attribute(inputs, target),
    }
    together = deletion_insertion_of(cnn, inputs, target, maps, steps=steps, batch=7)
    for name, values in maps.items():
        deletion, insertion = plain_deletion_insertion(cnn, inputs, target, values, steps)
        np.testing.assert_allclose(together[name].deletion, deletion, atol=1e-6)
        np.testing.assert_allclose(together[name].insertion, insertion, atol=1e-6)
        alone = deletion_insertion(cnn, inputs, target, values, steps=steps)
        np.testing.assert_allclose(alone.deletion_auc, together[name].deletion_auc, atol=1e-6)


def test_incremental_occlusion_follows_mobilenets_inverted_residual_blocks():
    """Pointwise convolutions (no halo), depthwise ones, ReLU6, residual sums: the traced,
    incremental maps equal whole occluded images run through the network."""
    from atlas.attribution.occlusion import Occlusion
    from atlas.config import ModelSpec
    from atlas.models import load_model

    model = load_model(ModelSpec(arch="mobilenet_v2", num_classes=5, input_size=48), seed=0)
    # torchvision's initialization leaves a random network's output flat: let BatchNorm
    # learn its statistics from a few random images, so every layer has a say
    for part in model.module.modules():
        if isinstance(part, torch.nn.BatchNorm2d):
            part.momentum = None
    model.module.train()(torch.randn(8, 3, 48, 48, generator=torch.Generator().manual_seed(1)))
    model.module.eval()
    head = model.module.classifier[1].weight
    head.data = torch.randn(head.shape, generator=torch.Generator().manual_seed(2))
    inputs = torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    options = AttributeConfig(occlusion_window=10, occlusion_stride=5, perturbations_per_eval=16)
    fast = Occlusion(model, options)
    assert fast.incremental
    maps = fast.attribute(inputs, torch.tensor([2]))
    whole = Occlusion(model, options, incremental=False).attribute(inputs, torch.tensor([2]))
    assert whole.abs().max() > 1e-3
    # BatchNorm folded into the convolutions rounds differently; a score drop is a small
    # difference of large logits (in float64 the maps agree to float32's last digit)
    assert (maps - whole).abs().max() <= 1e-4 * max(1.0, float(whole.abs().max()))
