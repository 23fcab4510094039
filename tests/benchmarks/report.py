"""Benchmark: a full attribution report's cost per image on a real network, against the
same work done with Captum (and Quantus's randomisation metric), in one run.

MobileNetV2 with its ImageNet weights (torchvision's ``IMAGENET1K_V1``, from the torch hub
cache: set ``TORCH_HOME``) at 224 px, on ``--n`` real photographs. Ours:
``atlas.reports.attribution_report.attribute_images`` end to end with the default report
config (every default method; the cascading randomization check on every block, top
down; deletion and insertion curves; pages and pictures), with a breakdown of where its
time went. Captum's side does the same work with the library's own methods (``Saliency``,
``GuidedBackprop``, ``IntegratedGradients``, ``Occlusion``, ``LayerGradCam``), the same
settings (32 steps from the black image; 32 px windows every 16 px, 64 a pass; the last
block's output) and the same checks: one randomized copy per cascade step on which every
method is rebuilt, similarities by scipy and scikit-image, and RISE's curves one map at a
time. Quantus's ``MPRT`` (model parameter randomisation, cascading, top down) of the
saliency map is timed alone where Quantus is installed: it randomizes every module with
parameters (each BatchNorm is a step of its own), so its steps are counted and timed per step.

    python tests/benchmarks/report.py [--n 1] [--photos /work/data/photos] [--randomize-layers K]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
import warnings
from collections import defaultdict
from contextlib import contextmanager

os.environ.setdefault("ATLAS_PROGRESS", "0")

import numpy as np
import torch
from torch.nn import functional as F

from atlas.attribution import METHODS
from atlas.attribution.gradcam import last_block
from atlas.attribution.metrics import _blur, randomize
from atlas.config import AttributeConfig, ModelSpec
from atlas.data import list_images, read_pixels
from atlas.layers import blocks, get_layer
from atlas.models import LoadedModel, load_model
from atlas.reports import attribution_report


@contextmanager
def timing_methods(spent: dict[str, float]):
    """Within the block, the time every method's ``attribute`` and the report's deletion
    curves take is added up in ``spent`` (by name)."""
    originals = {cls: cls.attribute for cls in METHODS.values()}
    curves = attribution_report.deletion_insertion_of

    def timed(name, function):
        def run(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start

        return run

    for cls, attribute in originals.items():
        cls.attribute = timed(cls.name, attribute)
    attribution_report.deletion_insertion_of = timed("deletion", curves)
    try:
        yield
    finally:
        for cls, attribute in originals.items():
            cls.attribute = attribute
        attribution_report.deletion_insertion_of = curves


def ours(model: LoadedModel, records, options: AttributeConfig) -> tuple[float, dict]:
    spent: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as out, timing_methods(spent):
        start = time.perf_counter()
        attribution_report.attribute_images(model, records, out, options)
        total = time.perf_counter() - start
    spent["rest"] = total - sum(spent.values())
    return total, dict(spent)


class CaptumReport:
    """The report's maps and checks, done with Captum's methods and plain loops."""

    def __init__(self, model: LoadedModel, options: AttributeConfig) -> None:
        self.model, self.options = model, options
        self.layer = last_block(model)
        self.window, self.stride = options.occlusion_geometry(model.preprocessing.input_size)

    def maps(self, module, inputs, target) -> dict[str, torch.Tensor]:
        from captum.attr import (
            GuidedBackprop,
            IntegratedGradients,
            LayerAttribution,
            LayerGradCam,
            Occlusion,
            Saliency,
        )

        black = self.model.preprocessing.normalize(torch.zeros_like(inputs))
        grad = inputs.clone().requires_grad_(True)
        cam = LayerGradCam(module, get_layer(module, self.layer)).attribute(
            inputs, target=target, relu_attributions=True
        )
        side = (self.window, self.window)
        return {
            "saliency": Saliency(module).attribute(grad, target=target).amax(dim=1),
            "guided_backprop": GuidedBackprop(module)
            .attribute(grad, target=target)
            .abs()
            .amax(dim=1),
            "gradcam": LayerAttribution.interpolate(cam, inputs.shape[2:], "bilinear")[:, 0],
            "occlusion": Occlusion(module)
            .attribute(
                inputs,
                sliding_window_shapes=(3, *side),
                strides=(3, self.stride, self.stride),
                baselines=self.options.occlusion_baseline,
                target=target,
                perturbations_per_eval=self.options.perturbations_per_eval,
            )
            .sum(dim=1),
            "integrated_gradients": IntegratedGradients(module)
            .attribute(
                inputs,
                baselines=black,
                target=target,
                n_steps=self.options.ig_steps,
                internal_batch_size=self.options.internal_batch_size,
            )
            .sum(dim=1),
        }

    def run(self, inputs, target, steps: int | None) -> dict[str, float]:
        spent: dict[str, float] = defaultdict(float)
        start = time.perf_counter()
        before = self.maps(self.model.module, inputs, target)
        spent["maps"] = time.perf_counter() - start
        clone = copy.deepcopy(self.model.module).eval()
        for k, step in enumerate(blocks(clone)[::-1][:steps]):
            start = time.perf_counter()
            for name in step:
                randomize(get_layer(clone, name), k)
            after = self.maps(clone, inputs, target)
            spent["cascade maps"] += time.perf_counter() - start
            start = time.perf_counter()
            for name, maps in after.items():
                for a, b in zip(before[name], maps, strict=True):
                    similarities(a.detach().numpy(), b.detach().numpy())
            spent["similarities"] += time.perf_counter() - start
        start = time.perf_counter()
        for maps in before.values():
            deletion_insertion(self.model.module, inputs, target, maps.detach(), 16)
        spent["deletion"] = time.perf_counter() - start
        return dict(spent)


def similarities(a: np.ndarray, b: np.ndarray) -> None:
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    def unit(x):
        return (x - x.min()) / (x.max() - x.min()) if x.max() > x.min() else np.zeros_like(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spearmanr(np.abs(a).ravel(), np.abs(b).ravel())
        spearmanr(a.ravel(), b.ravel())
    structural_similarity(unit(np.abs(a)), unit(np.abs(b)), data_range=1.0)


def deletion_insertion(module, inputs, target, maps, steps: int) -> None:
    """RISE's two curves of each map, every frame through the model, 128 a pass."""
    for image, klass, attribution in zip(inputs, target, maps, strict=True):
        order = torch.argsort(attribution.flatten(), descending=True)
        counts = torch.linspace(0, order.numel(), steps + 1).round().long()
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel())
        shown = (rank[None] < counts[:, None]).view(steps + 1, 1, *image.shape[1:])
        frames = torch.cat(
            [
                torch.where(shown, 0.0, image[None]),
                torch.where(shown, image[None], _blur(image)[None]),
            ]
        )
        with torch.no_grad():
            F.softmax(module(frames), dim=1)[:, klass]


def quantus_mprt(model: LoadedModel, inputs, target) -> tuple[float, int]:
    """Seconds and steps of Quantus's MPRT of Captum's saliency map, or (nan, 0) where
    Quantus is not installed."""
    try:
        import quantus
    except ImportError:
        return float("nan"), 0
    metric = quantus.MPRT(disable_warnings=True, return_last_correlation=True)
    module = copy.deepcopy(model.module)
    # Quantus randomizes every module that has reset_parameters (a BatchNorm included)
    steps = sum(1 for m in module.modules() if hasattr(m, "reset_parameters"))
    start = time.perf_counter()
    metric(
        model=module,
        x_batch=inputs.numpy(),
        y_batch=target.numpy(),
        a_batch=None,
        explain_func=quantus.explain,
        explain_func_kwargs={"method": "Saliency"},
        device="cpu",
    )
    return time.perf_counter() - start, steps


def photos(root: str, model: LoadedModel, n: int):
    records = sorted(list_images(root, model.class_names).records, key=lambda r: r.name)
    step = max(1, len(records) // n)
    return records[::step][:n]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1, help="photos (one batch of the report)")
    parser.add_argument("--photos", default="/work/data/photos")
    parser.add_argument(
        "--randomize-layers", type=int, default=None, help="cascade steps (default: all)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-quantus", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(ModelSpec(arch="mobilenet_v2", weights="IMAGENET1K_V1"))
    records = photos(args.photos, model, args.n)
    options = AttributeConfig(randomize_layers=args.randomize_layers)
    pixels = [model.preprocessing.crop(read_pixels(r.path)) for r in records]
    inputs = model.preprocessing.normalize(torch.stack(pixels).float() / 255)
    with torch.no_grad():
        target = model.module(inputs).argmax(dim=1)
    load = os.getloadavg()[0]
    t_ours, breakdown = ours(model, records, options)
    print(
        f"ours: {t_ours:.1f} s for {len(records)} photo(s): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in breakdown.items()),
        flush=True,
    )
    start = time.perf_counter()
    peer = CaptumReport(model, options).run(inputs, target, args.randomize_layers)
    t_captum = time.perf_counter() - start
    print(
        f"captum: {t_captum:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in peer.items()),
        flush=True,
    )
    t_quantus, q_steps = (
        (float("nan"), 0) if args.no_quantus else quantus_mprt(model, inputs, target)
    )
    n = len(records)
    fields = {
        "n": n,
        "steps": len(blocks(model.module))
        if args.randomize_layers is None
        else args.randomize_layers,
        "ours_s_per_image": round(t_ours / n, 1),
        "captum_s_per_image": round(t_captum / n, 1),
        "speedup": round(t_captum / t_ours, 2),
        **{f"ours_{k}_s": round(v / n, 1) for k, v in breakdown.items()},
        "quantus_mprt_saliency_s_per_image": round(t_quantus / n, 1),
        "quantus_steps": q_steps,
        "load": round((load + os.getloadavg()[0]) / 2, 1),
    }
    print("BENCH report " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
