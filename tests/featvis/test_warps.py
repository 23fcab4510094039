"""The transforms as matrices (atlas.featvis.warps) against the warps they replace:
Lucent's standard set (kornia and torch resampling pixel by pixel) and grid_sample."""

import numpy as np
import pytest
import torch
from lucent_ref import lucent_transform

from atlas.config import Recipe
from atlas.featvis.render import transforms_for
from atlas.featvis.seeding import seeded
from atlas.featvis.warps import LucentSet
from atlas.featvis.warps import RandomAffine as random_affine


def outputs_and_gradients(transforms, image, seed, cotangent_seed=1):
    """The transformed batch, the gradient of a random linear function of it with respect
    to the input, and the NumPy generator state the draws left behind."""
    image = image.clone().requires_grad_(True)
    state = np.random.RandomState(seed)
    saved = np.random.get_state()
    np.random.set_state(state.get_state())
    try:
        out = image
        for transform in transforms:
            out = transform(out)
        after = np.random.get_state()[1].copy()
    finally:
        np.random.set_state(saved)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(cotangent_seed))
    (grad,) = torch.autograd.grad((out * weights).sum(), image)
    return out.detach(), grad, after


@pytest.mark.parametrize("seed", range(8))
def test_lucent_set_is_lucents_standard_transforms_and_draws_alike(seed):
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    ours, our_grad, our_state = outputs_and_gradients([LucentSet()], image, seed)
    theirs, their_grad, their_state = outputs_and_gradients(
        lucent_transform.standard_transforms, image, seed
    )
    assert ours.shape == theirs.shape  # sizes from 88 to 96 px, as the scale draws them
    torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)
    torch.testing.assert_close(our_grad, their_grad, rtol=0, atol=2e-4)
    assert np.array_equal(our_state, their_state)  # the same draws, in the same order


def test_a_set_without_pad_or_jitter_leaves_them_out_draws_and_all():
    """At 64 px the scaled set pads 3 px, jitters by up to 1 px and drops the last jitter
    (under 2 px): Lucent's list with those transforms alone."""
    (ours,) = transforms_for(Recipe(icon_size=64, transforms="scaled"))
    assert (ours.pad, ours.first_jitter, ours.last_jitter) == (3, 2, 1)
    theirs = [
        lucent_transform.pad(3, mode="constant", constant_value=0.5),
        lucent_transform.jitter(2),
        lucent_transform.random_scale(list(ours.scales)),
        lucent_transform.random_rotate(list(ours.angles)),
    ]
    image = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for seed in range(6):
        a, a_grad, a_state = outputs_and_gradients([ours], image, seed)
        b, b_grad, b_state = outputs_and_gradients(theirs, image, seed)
        torch.testing.assert_close(a, b, rtol=0, atol=2e-5)
        torch.testing.assert_close(a_grad, b_grad, rtol=0, atol=2e-4)
        assert np.array_equal(a_state, b_state)


def test_the_affine_warp_is_grid_sample_of_its_draws_with_grey_coming_in():
    """random_affine against grid_sample on the grid its own draws describe."""
    image = torch.rand(4, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    for seed in range(5):
        ours, our_grad, _ = outputs_and_gradients([random_affine(3, (0.8, 1.2), 20.0)], image, seed)
        draws = np.random.RandomState(seed)
        zoom = draws.uniform(0.8, 1.2)
        angle = np.deg2rad(draws.uniform(-20.0, 20.0))
        dx, dy = draws.randint(-3, 4, 2)
        h, w = image.shape[-2:]
        cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
        matrix = np.array([[cos, -sin * h / w], [sin * w / h, cos]])
        theta = np.concatenate(
            [matrix, -(matrix @ np.array([2 * dx / w, 2 * dy / h]))[:, None]], axis=1
        )

        def reference(x, theta=theta):
            grid = torch.nn.functional.affine_grid(
                torch.as_tensor(theta, dtype=x.dtype).expand(len(x), 2, 3),
                list(x.shape),
                align_corners=False,
            )
            return torch.nn.functional.grid_sample(x - 0.5, grid, align_corners=False) + 0.5

        theirs, their_grad, _ = outputs_and_gradients([reference], image, seed)
        torch.testing.assert_close(ours, theirs, rtol=0, atol=2e-5)
        torch.testing.assert_close(our_grad, their_grad, rtol=0, atol=2e-4)


def test_warped_batches_keep_their_elements_apart_and_their_layout_free():
    """Each image is warped alone (the map acts on every plane the same way), and a
    channels-last input gives what a contiguous one does."""
    image = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    whole = seeded([LucentSet()], 3)(image)
    parts = torch.cat([seeded([LucentSet()], 3)(image[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(whole, parts, rtol=0, atol=1e-6)
    last = seeded([LucentSet()], 3)(image.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(whole, last, rtol=0, atol=1e-6)
