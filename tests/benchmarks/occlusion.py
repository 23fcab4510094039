"""Benchmark: our occlusion against Captum's `Occlusion` on the same maps.

ResNet-18 (seeded random weights: no download here) at 224 px, window 32, stride 8,
baseline 0, the same images and targets, in one run: Captum with its defaults
(one perturbation per forward pass), Captum with its fastest `perturbations_per_eval`
among those tried, and ours. Prints the time ratios and the largest difference between
the maps (they must agree to 1e-4).

    python tests/benchmarks/occlusion.py [--images 2] [--size 224]
"""

from __future__ import annotations

import argparse
import time

import torch
from captum.attr import Occlusion as CaptumOcclusion

from atlas.attribution.occlusion import Occlusion
from atlas.config import ModelSpec
from atlas.models import load_model

WINDOW, STRIDE = 32, 8


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument(
        "--batches", default="16,64,128", help="Captum perturbations_per_eval to try"
    )
    args = parser.parse_args()
    model = load_model(ModelSpec(arch="resnet18", num_classes=1000, input_size=args.size))
    inputs = torch.randn(
        args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        target = model.module(inputs).argmax(dim=1)
    captum = CaptumOcclusion(model.module)

    def run_captum(per_eval: int):
        return captum.attribute(
            inputs,
            sliding_window_shapes=(3, WINDOW, WINDOW),
            strides=(3, STRIDE, STRIDE),
            baselines=0.0,
            target=target,
            perturbations_per_eval=per_eval,
        )[:, 0]

    t_default, reference = timed(lambda: run_captum(1))
    best_batch, t_best = 1, t_default
    for per_eval in (int(b) for b in args.batches.split(",")):
        seconds, maps = timed(lambda per_eval=per_eval: run_captum(per_eval))
        assert (maps - reference).abs().max() < 1e-3
        if seconds < t_best:
            best_batch, t_best = per_eval, seconds
    ours = Occlusion(model, window=WINDOW, stride=STRIDE, baseline=0.0, perturbations_per_eval=64)
    t_ours, maps = timed(lambda: ours.attribute(inputs, target))
    difference = float((maps - reference).abs().max())
    windows = len(ours.positions(args.size, args.size))
    print(f"{args.images} images, {windows} windows each:")
    print(f"  Captum defaults {t_default:.1f} s; Captum, {best_batch} per eval, {t_best:.1f} s")
    print(f"  ours {t_ours:.1f} s; largest difference between the maps {difference:.2e}")
    fields = {
        "images": args.images,
        "size": args.size,
        "captum_default_s": round(t_default, 2),
        "captum_best_s": round(t_best, 2),
        "captum_best_batch": best_batch,
        "ours_s": round(t_ours, 2),
        "speedup_vs_default": round(t_default / t_ours, 2),
        "speedup_vs_best": round(t_best / t_ours, 2),
        "max_abs_diff": f"{difference:.2e}",
    }
    print("BENCH occlusion " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
