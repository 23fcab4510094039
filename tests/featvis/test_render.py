import numpy as np
import pytest
import torch
from helpers import no_hooks_left
from lucent_ref import lucent_transform
from torch import nn

from atlas.config import ModelSpec, Recipe, RenderConfig
from atlas.featvis import objectives as obj
from atlas.featvis.render import render, transforms_for
from atlas.featvis.seeding import seeded
from atlas.models import LoadedModel, Preprocessing, load_model
from atlas.render import grey_share

PLAIN = Preprocessing(32, 32, (0.5,) * 3, (0.5,) * 3)
# Lucent's own recipe: its step size, constant, and its standard transforms.
LUCENT = Recipe(lr=0.05, lr_schedule="constant", transforms="standard")


@pytest.fixture(scope="module")
def cnn64():
    return load_model(
        ModelSpec(arch="atlas.demo.net:DemoCNN", num_classes=10, input_size=64), seed=0
    )


def test_objective_rises_and_beats_noise(cnn):
    objective = obj.channel("block3", [3, 7])
    result = render(
        cnn, objective, LUCENT.updated(icon_size=32, steps=48), seeds=[1, 2], record_every=8
    )
    assert (
        result.images.shape == (2, 32, 32, 3)
        and result.images.min() >= 0
        and result.images.max() <= 1
    )
    assert (result.history[-1] > result.history[0]).all()
    noise = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    from atlas.layers import capture

    with torch.no_grad(), capture(cnn.module, ["block3"]) as acts:
        noise_values = objective(acts, cnn.module(cnn.preprocessing.normalize(noise)))
    assert (result.values > 2 * noise_values.numpy()).all()


def test_a_batch_equals_single_renders_with_the_same_seeds(cnn):
    channels, seeds = [0, 5, 9], [11, 12, 13]
    recipe = LUCENT.updated(icon_size=32, steps=12)
    batch = render(cnn, obj.channel("block3", channels), recipe, seeds=seeds)
    for i, (c, s) in enumerate(zip(channels, seeds, strict=True)):
        single = render(cnn, obj.channel("block3", [c]), recipe, seeds=[s])
        assert np.abs(single.images[0] - batch.images[i]).mean() < 0.01
        assert single.values[0] == pytest.approx(batch.values[i], rel=0.05)


def test_same_seed_same_icon_and_hooks_are_removed(cnn):
    flags = [p.requires_grad for p in cnn.module.parameters()]
    recipe = LUCENT.updated(icon_size=32, steps=6)
    a = render(cnn, obj.channel("block2", [4]), recipe, seeds=[3])
    b = render(cnn, obj.channel("block2", [4]), recipe, seeds=[3])
    c = render(cnn, obj.channel("block2", [4]), recipe, seeds=[4])
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert no_hooks_left(cnn.module)
    assert [p.requires_grad for p in cnn.module.parameters()] == flags
    with pytest.raises(KeyError):
        render(cnn, obj.channel("no_such_layer", [0]), recipe, seeds=[0])
    assert no_hooks_left(cnn.module) and [p.requires_grad for p in cnn.module.parameters()] == flags


def test_channel_objective_on_a_known_filter_draws_its_pattern():
    """A single 3x3 filter that responds to vertical stripes (a bright column between dark
    ones, on all colors): maximizing its mean response must paint vertical stripes."""
    conv = nn.Conv2d(3, 1, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, :, 1] = 1.0
        conv.weight[0, :, :, 0] = -0.5
        conv.weight[0, :, :, 2] = -0.5
    net = nn.Sequential(conv, nn.ReLU()).eval()
    model = LoadedModel(net, ModelSpec(arch="x"), PLAIN, ["stripes"])
    recipe = Recipe(icon_size=32, steps=128, lr=0.1, lr_schedule="constant", transforms="none")
    result = render(model, obj.channel("1", [0]), recipe, seeds=[0])
    gray = result.images[0].mean(axis=2)
    across = np.abs(np.diff(gray, axis=1)).mean()  # changes from column to column
    along = np.abs(np.diff(gray, axis=0)).mean()  # changes down a column
    assert across > 2.5 * along


def shaken(transforms, size, seed):
    """Where a bright dot at the centre of a ``size`` px image lands after the transforms,
    relative to the centre of what comes out."""
    image = torch.full((1, 3, size, size), 0.5)  # the padding colour
    image[:, :, size // 2, size // 2] = 1.0
    out = seeded(transforms, seed)(image)[0].sum(0)
    y, x = divmod(int(out.argmax()), out.shape[1])
    return y - out.shape[0] // 2, x - out.shape[1] // 2


def test_scaled_transforms_are_lucents_at_224_and_shake_small_icons_less():
    image = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ours = seeded(transforms_for(Recipe(icon_size=224, transforms="scaled")), 5)(image)
    lucent = seeded(list(lucent_transform.standard_transforms), 5)(image)
    # Lucent computes its sampling positions in float32, off by up to ~1e-5 px at 248 px.
    torch.testing.assert_close(ours, lucent, rtol=0, atol=1e-4)
    assert transforms_for(Recipe(transforms="none")) == []
    standard = transforms_for(Recipe(icon_size=64, transforms="standard"))
    scaled = transforms_for(Recipe(icon_size=64, transforms="scaled"))
    standard_shifts = [max(map(abs, shaken(standard, 64, s))) for s in range(40)]
    scaled_shifts = [max(map(abs, shaken(scaled, 64, s))) for s in range(40)]
    assert max(scaled_shifts) <= 4 < max(standard_shifts)
    with pytest.raises(ValueError, match="transforms"):
        Recipe(transforms="wobbly")


def test_scaled_transforms_reach_more_of_a_direction_on_small_icons(cnn64):
    """The atlas objective on a late layer of a 64 px model: with Lucent's 224 px jitter
    the central position keeps losing the pattern; scaled, the icons drive it further."""
    directions = np.abs(np.random.default_rng(0).normal(size=(6, 128))).astype(np.float32)
    objective = obj.direction("block4", directions, cossim_pow=4.0)
    kinds = {}
    for kind in ("standard", "scaled"):
        recipe = LUCENT.updated(icon_size=64, steps=48, transforms=kind)
        kinds[kind] = render(cnn64, objective, recipe, seeds=range(6)).values
    assert np.median(kinds["scaled"]) > 1.5 * np.median(kinds["standard"])


def test_the_affine_warp_is_one_exact_shift_zoom_and_turn_with_grey_coming_in():
    from atlas.featvis.warps import RandomAffine as random_affine

    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    still = seeded([random_affine(0, (1.0, 1.0), 0.0)], 0)(image)
    torch.testing.assert_close(still, image, atol=1e-5, rtol=0)
    # A pure shift: the same draws as the transform makes, then the image moved by them.
    shifted = seeded([random_affine(3, (1.0, 1.0), 0.0)], 6)(image)
    draws = np.random.RandomState(6)
    draws.uniform(1.0, 1.0), draws.uniform(0, 0)
    dx, dy = draws.randint(-3, 4, 2)
    assert dx != 0 and dy != 0
    expected = torch.full_like(image, 0.5)
    expected[..., max(dy, 0) : 16 + min(dy, 0), max(dx, 0) : 16 + min(dx, 0)] = image[
        ..., max(-dy, 0) : 16 + min(-dy, 0), max(-dx, 0) : 16 + min(-dx, 0)
    ]
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=0)
    # A turn about the centre: the middle of the left edge moves along the circle through
    # it, by the drawn angle (the output samples the input turned the other way; y down).
    turned = seeded([random_affine(0, (1.0, 1.0), 90.0)], 0)
    draws = np.random.RandomState(0)
    draws.uniform(1, 1)
    angle = draws.uniform(-90, 90)
    corner = torch.full((1, 1, 9, 9), 0.5)
    corner[..., 4, 0] = 1.0  # the middle of the left edge
    out = turned(corner)[0, 0]
    y, x = divmod(int(out.argmax()), 9)
    expected_y = round(4 + 4 * np.sin(np.deg2rad(angle)))
    expected_x = round(4 - 4 * np.cos(np.deg2rad(angle)))
    assert abs(y - expected_y) <= 1 and abs(x - expected_x) <= 1
    (affine,) = transforms_for(Recipe(shift=2, scale=(0.9, 1.1), rotate=7.0))
    assert (affine.shift, affine.scale, affine.degrees) == (2, (0.9, 1.1), 7.0)


def test_icons_at_the_receptive_field_reach_the_direction_with_the_default_recipe(cnn64):
    """The defaults (one mild warp, cosine steps) against Lucent's scaled set: at the
    layer's receptive field (block4 sees 38 px) the icons drive the direction further and
    leave almost nothing grey."""
    directions = np.abs(np.random.default_rng(0).normal(size=(4, 128))).astype(np.float32)
    objective = obj.direction("block4", directions, cossim_pow=4.0)
    options = RenderConfig(icon_size=40, steps=40)
    ours = render(cnn64, objective, options, seeds=range(4))
    before = render(
        cnn64,
        objective,
        LUCENT.updated(icon_size=64, steps=40, transforms="scaled"),
        seeds=range(4),
    )
    assert np.median(ours.values) > 2 * np.median(before.values)
    icons = (np.clip(ours.images, 0, 1) * 255).astype(np.uint8)
    assert np.median(grey_share(icons, options.grey_tolerance)) < 0.1


def test_a_padded_warp_frames_the_image_in_grey_and_moves_it_within_the_frame():
    from atlas.featvis.warps import RandomAffine as random_affine

    image = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    framed = seeded([random_affine(0, (1.0, 1.0), 0.0, pad=4)], 0)(image)
    expected = torch.full((2, 3, 20, 20), 0.5)
    expected[..., 4:16, 4:16] = image
    torch.testing.assert_close(framed, expected, atol=1e-5, rtol=0)
    # Shifted by up to the pad, nothing of the image leaves the frame.
    moved = seeded([random_affine(4, (1.0, 1.0), 0.0, pad=4)], 6)(image)
    assert moved.shape == (2, 3, 20, 20)
    assert moved.sum().item() == pytest.approx(expected.sum().item(), rel=1e-5)


def test_the_robust_objective_is_the_objective_under_no_warp_and_apart_from_it_under_warps(cnn):
    objective = obj.direction("block3", np.random.default_rng(0).standard_normal((3, 64)))
    recipe = LUCENT.updated(icon_size=32, steps=24)
    still = render(
        cnn,
        objective,
        recipe.updated(robust_samples=3, robust_shift=0, robust_scale=(1, 1), robust_rotate=0),
        seeds=[1, 2, 3],
    )
    np.testing.assert_allclose(still.robust_values, still.values, rtol=1e-4)
    strong = render(cnn, objective, recipe, seeds=[1, 2, 3])
    np.testing.assert_array_equal(strong.values, still.values)  # the icons themselves alike
    assert np.isfinite(strong.robust_values).all()
    assert not np.allclose(strong.robust_values, strong.values, rtol=1e-2)
    off = render(cnn, objective, recipe.updated(robust_samples=0), seeds=[1, 2, 3])
    assert np.isnan(off.robust_values).all()


def test_stopping_the_forward_after_the_objectives_layer_changes_nothing(cnn):
    """An objective that reads block2 only stops the network there; one that also reads
    the output (with weight 0) runs it whole: the same icons either way."""
    objective = obj.channel("block2", [1, 4])
    whole = objective + 0.0 * obj.class_logit([0, 0])
    assert whole.uses_output and not objective.uses_output
    recipe = LUCENT.updated(icon_size=32, steps=8)
    stopped = render(cnn, objective, recipe, seeds=[5, 6])
    full = render(cnn, whole, recipe, seeds=[5, 6])
    np.testing.assert_allclose(stopped.images, full.images, atol=1e-5)
    np.testing.assert_allclose(stopped.values, full.values, rtol=1e-5)
    assert no_hooks_left(cnn.module)
