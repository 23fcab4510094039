"""On the real network (the session fixtures of tests/conftest.py): the report's shared
cascade (one randomized copy per step for every method) gives each method's own cascade,
and a report of a real photo completes with its checks."""

import numpy as np
import torch

from atlas.attribution import make_method
from atlas.attribution.metrics import cascading_randomization, cascading_randomizations
from atlas.config import AttributeConfig
from atlas.data import list_images, read_pixels
from atlas.reports.attribution_report import attribute_images

METHODS = ["saliency", "guided_backprop", "gradcam"]


def first_photo(photos, model):
    return sorted(list_images(photos, model.class_names).records, key=lambda r: r.name)[:1]


def test_the_shared_cascade_equals_one_cascade_a_method_on_mobilenet_v2(mobilenet_v2, photos):
    model = mobilenet_v2
    record = first_photo(photos, model)[0]
    crop = model.preprocessing.crop(read_pixels(record.path))
    inputs = model.preprocessing.normalize(crop[None].float() / 255)
    with torch.no_grad():
        target = model.module(inputs).argmax(dim=1)
    methods = {name: make_method(name, model) for name in METHODS}
    shared = cascading_randomizations(
        {name: m.on for name, m in methods.items()}, model, inputs, target, steps=2
    )
    for name in METHODS:
        alone = cascading_randomization(
            lambda m, name=name: make_method(name, m), model, inputs, target, steps=2
        )
        np.testing.assert_allclose(shared[name].spearman_abs, alone.spearman_abs, atol=1e-6)
        np.testing.assert_allclose(shared[name].ssim, alone.ssim, atol=1e-6)


def test_a_report_of_a_real_photo_has_its_checks(mobilenet_v2, photos, tmp_path):
    options = AttributeConfig(methods=METHODS, randomize_layers=2, deletion_steps=4)
    (report,) = attribute_images(mobilenet_v2, first_photo(photos, mobilenet_v2), tmp_path, options)
    for name in METHODS:
        trust = report.trust[name]
        assert len(trust["cascade"]["steps"]) == 2 and trust["randomization"] is not None
        assert 0 <= trust["deletion"] <= 1 and len(trust["insertion_curve"]) == 5
