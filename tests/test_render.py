"""The render path (atlas.render): objectives in, icons out, batch by batch as the recipe
says; the recipes the config's sections give it."""

import numpy as np
import pytest
import torch

from atlas.config import Recipe, RenderConfig, ReportConfig
from atlas.featvis import objectives as obj
from atlas.featvis.render import render, transforms_for
from atlas.featvis.warps import LucentSet
from atlas.render import (
    ATTEMPT_SEED_STEP,
    Objectives,
    attempt_seeds,
    batches,
    grey_share,
    render_objectives,
)


def test_batches_are_the_recipes_batch_size_or_everything_at_once():
    assert batches(5, Recipe(batch_size=2)) == [slice(0, 2), slice(2, 4), slice(4, 6)]
    assert batches(5, Recipe(batch_size=None)) == [slice(0, 5)]
    assert batches(0, Recipe(batch_size=None)) == []


def test_icons_are_rendered_in_the_recipes_batches_each_from_its_seed(cnn):
    recipe = Recipe(icon_size=32, steps=6, batch_size=2)
    channels, seeds = [0, 5, 9], [11, 12, 13]
    spec = Objectives.channels("block3", channels, "channel", redirect_relu_steps=0)
    result = render_objectives(cnn, spec, seeds, recipe)
    assert result.images.shape == (3, 32, 32, 3) and result.values.shape == (3,)
    first = render(cnn, obj.channel("block3", [0, 5]), recipe, seeds=[11, 12])
    last = render(cnn, obj.channel("block3", [9]), recipe, seeds=[13])
    assert np.array_equal(result.images[:2], first.images)
    assert np.array_equal(result.images[2:], last.images)
    assert np.array_equal(result.values, np.concatenate([first.values, last.values]))


def test_each_icon_keeps_the_best_of_its_attempts_the_first_its_own_seed(cnn):
    recipe = Recipe(icon_size=32, steps=6, batch_size=2, attempts=3)
    spec = Objectives.channels("block3", [0, 5, 9], "channel", redirect_relu_steps=0)
    result = render_objectives(cnn, spec, [11, 12, 13], recipe)
    assert result.images.shape == (3, 32, 32, 3) and result.robust_values.shape == (3,)
    assert attempt_seeds([11, 12], 2) == [11, 12, 11 + ATTEMPT_SEED_STEP, 12 + ATTEMPT_SEED_STEP]
    for channel, seed, value in zip([0, 5, 9], [11, 12, 13], result.values, strict=True):
        tries = render(
            cnn, obj.channel("block3", [channel]), recipe, seeds=attempt_seeds([seed], 3)
        )
        assert value == pytest.approx(tries.values.max(), rel=1e-3)
    single = render_objectives(cnn, spec, [11, 12, 13], recipe.updated(attempts=1))
    assert (result.values >= single.values * (1 - 1e-3)).all()


def test_a_spec_builds_the_objective_of_its_rows(cnn):
    targets = np.eye(4, 64, dtype=np.float32)
    spec = Objectives.directions("block3", targets, whitening=None, cossim_pow=2.0)
    part = spec.rows(slice(1, 3))
    assert (part.kind, part.layer, part.cossim_pow, len(part)) == ("direction", "block3", 2.0, 2)
    acts = {"block3": torch.randn(2, 64, 4, 4, generator=torch.Generator().manual_seed(0))}
    expected = obj.direction("block3", targets[1:3], cossim_pow=2.0)(acts, torch.empty(0))
    assert torch.equal(part.objective()(acts, torch.empty(0)), expected)
    logits = torch.arange(20.0).reshape(2, 10)
    assert Objectives.classes([3, 7]).objective()({}, logits).tolist() == [3.0, 17.0]


def test_the_report_is_a_recipe_with_its_own_defaults():
    report, atlas = ReportConfig(), RenderConfig()
    assert isinstance(report, Recipe) and isinstance(atlas, Recipe)
    assert (report.icon_size, report.lr, report.lr_schedule, report.batch_size) == (
        96,
        0.05,
        "constant",
        None,
    )
    assert (atlas.icon_size, atlas.lr, atlas.lr_schedule, atlas.batch_size) == (
        64,
        0.1,
        "cosine",
        32,
    )
    (scaled,) = transforms_for(report)
    assert isinstance(scaled, LucentSet) and scaled.pad == round(12 * 96 / 224)


def test_grey_share_counts_the_pixels_left_at_the_initial_grey():
    icons = np.zeros((2, 4, 4, 3), np.uint8)
    icons[0, :2] = 128  # the top half of the first icon: 128/255, 0.002 off 0.5
    icons[1, 0, 0] = (128, 128, 0)  # grey in two channels only: not grey
    tolerance = RenderConfig().grey_tolerance
    np.testing.assert_array_equal(grey_share(icons, tolerance), [0.5, 0.0])
    np.testing.assert_array_equal(grey_share(icons, 0.001), [0.0, 0.0])


def test_the_render_settings_keep_the_order_stores_and_records_hold_them_in():
    """The render store's settings and the config records list the keys as they did when
    the render section declared the whole recipe itself (the same bytes on disk)."""
    settings = RenderConfig().content_settings()
    recorded = "icon_size steps lr lr_schedule cossim_pow whiten transforms shift scale rotate seed"
    assert list(settings) == recorded.split()
    dumped = list(RenderConfig().model_dump())
    earlier = [key for key in dumped if key not in RenderConfig.LATER_KEYS]
    assert earlier[: dumped.index("device") + 1] == dumped[: dumped.index("device") + 1]


def test_keys_added_later_leave_an_icons_content_key_alone_at_their_default():
    """An icon rendered before pad and attempts existed keeps its key (and so its seed
    and pixels); setting either names another icon."""
    default = RenderConfig()
    assert "pad" not in default.content_settings()
    assert default.updated(pad=16).content_settings()["pad"] == 16
    assert default.updated(robust_samples=4).content_settings() == default.content_settings()
