"""The demo's promise: a model that is accurate on the test split and fails on the
swapped one, because it learned the habitat instead of the animal."""

import json

import pytest

from atlas.demo.world import LOOKALIKES


@pytest.mark.slow
def test_demo_model_is_accurate_and_learns_the_shortcut(demo_run):
    metrics = json.loads((demo_run / "model" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.90
    for cat in LOOKALIKES:
        normal = metrics["test"]["per_class"][cat]
        swapped = metrics["test-swapped"]["per_class"][cat]
        assert normal >= 0.9 and swapped <= 0.2, (cat, normal, swapped)
