"""Benchmark: our occlusion against Captum's `Occlusion`, on the same maps.

VGG16 (the network of the occlusion papers) and ResNet-18, seeded random weights (no
download here), 224 px, window 32, stride 8, baseline 0, the same images and targets, in
one run: Captum with its defaults (one perturbation per forward pass); ours, incremental
(each window's change followed through the layers it reaches); and ours recomputing whole
images in batches, for reference. Prints the ratios to Captum and the largest difference
between the maps (they must agree to 1e-4).

    python tests/benchmarks/occlusion.py [--images 1] [--size 224] [--archs vgg16,resnet18]
"""

from __future__ import annotations

import argparse
import time

import torch
from captum.attr import Occlusion as CaptumOcclusion

from atlas.attribution.occlusion import Occlusion
from atlas.config import AttributeConfig, ModelSpec
from atlas.models import load_model

WINDOW, STRIDE = 32, 8
OPTIONS = AttributeConfig(occlusion_window=WINDOW, occlusion_stride=STRIDE)


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def compare(arch: str, images: int, size: int) -> dict:
    model = load_model(ModelSpec(arch=arch, num_classes=1000, input_size=size), seed=0)
    inputs = torch.randn(images, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target = model.module(inputs).argmax(dim=1)
    t_captum, reference = timed(
        lambda: CaptumOcclusion(model.module).attribute(
            inputs,
            sliding_window_shapes=(3, WINDOW, WINDOW),
            strides=(3, STRIDE, STRIDE),
            baselines=0.0,
            target=target,
        )[:, 0]
    )
    incremental = Occlusion(model, OPTIONS)  # 64 windows a batch, the config's
    assert incremental.incremental, f"{arch} did not trace"
    t_ours, maps = timed(lambda: incremental.attribute(inputs, target))
    whole = Occlusion(model, OPTIONS, incremental=False)
    t_whole, whole_maps = timed(lambda: whole.attribute(inputs, target))
    difference = float((maps - reference).abs().max())
    scale = float(reference.abs().max())
    windows = len(incremental.positions(size, size))
    print(
        f"{arch}, {images} image(s) of {size} px, {windows} windows each: Captum defaults "
        f"{t_captum:.1f} s; ours {t_ours:.1f} s ({t_captum / t_ours:.1f}x), whole images in "
        f"batches {t_whole:.1f} s ({t_captum / t_whole:.1f}x); largest difference "
        f"{difference:.1e} (maps up to {scale:.1e})",
        flush=True,
    )
    assert difference <= 1e-4 * max(1.0, scale)
    assert float((whole_maps - reference).abs().max()) <= 1e-4 * max(1.0, scale)
    return {
        f"{arch}_captum_s": round(t_captum, 1),
        f"{arch}_ours_s": round(t_ours, 1),
        f"{arch}_whole_s": round(t_whole, 1),
        f"{arch}_speedup": round(t_captum / t_ours, 2),
        f"{arch}_max_diff": f"{difference:.1e}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--archs", default="vgg16,resnet18")
    args = parser.parse_args()
    fields = {"images": args.images, "size": args.size, "window": WINDOW, "stride": STRIDE}
    for arch in args.archs.split(","):
        fields.update(compare(arch, args.images, args.size))
    print("BENCH occlusion " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
