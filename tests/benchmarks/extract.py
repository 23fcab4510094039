"""Benchmark: the whole `atlas extract` path against the model's bare forward pass.

Same model, batch size and images in one run. The bare side decodes every image first
(untimed) and times only ``model(x)`` over batches with all cores; the atlas side times
``atlas.extract.extract`` end to end (listing, decoding, preprocessing, forward, Zarr
writes; class attribution off) on its default local Dask cluster. Optionally measures
peak memory for a small and a ten times larger image set (``--rss``).

    python tests/benchmarks/extract.py [--n 4000] [--resnet-n 600] [--rss 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ATLAS_PROGRESS", "0")

import torch
from PIL import Image

from atlas.config import ExtractConfig, ModelSpec
from atlas.data import list_images, read_pixels
from atlas.demo.world import CLASS_NAMES, make_world
from atlas.extract import extract
from atlas.models import load_model
from atlas.store import open_run

BATCH = 128


def demo_images(root: Path, n: int) -> Path:
    make_world(
        root,
        seed=0,
        image_size=64,
        train_per_class=max(1, n // len(CLASS_NAMES)),
        test_per_class=1,
        swapped_per_class=1,
    )
    return root / "train"


def jpeg_images(root: Path, source: Path, n: int, size: int = 256) -> Path:
    """Photos-like JPEGs: demo images upscaled to ``size`` px, quality 90."""
    out = root / "jpeg" / "all"
    out.mkdir(parents=True)
    paths = sorted(p for p in source.rglob("*.png"))
    for i in range(n):
        Image.open(paths[i % len(paths)]).resize((size, size), Image.Resampling.BICUBIC).save(
            out / f"{i:06d}.jpg", quality=90
        )
    return out.parent


def bare_forward(spec: ModelSpec, source: Path, n: int, batch: int) -> float:
    """Images per second of model(x) alone with all cores, inputs decoded beforehand: the
    better of the default (NCHW) and channels-last layouts, best of two passes each."""
    loaded = load_model(spec)
    torch.set_num_threads(os.cpu_count() or 1)
    records = list_images(source).records[:n]
    pixels = torch.stack([loaded.preprocessing.crop(read_pixels(r.path)) for r in records])
    inputs = loaded.preprocessing.normalize(pixels.float() / 255).contiguous()
    best = 0.0
    for layout in (torch.contiguous_format, torch.channels_last):
        model = loaded.module.to(memory_format=layout)
        x = inputs.contiguous(memory_format=layout)
        with torch.inference_mode():
            model(x[:batch])  # warm up
            for _ in range(2):
                start = time.perf_counter()
                for s in range(0, len(x), batch):
                    model(x[s : s + batch])
                best = max(best, len(x) / (time.perf_counter() - start))
    return best


def atlas_extract(
    spec: ModelSpec, source: Path, layer: str, n: int, batch: int, store: Path
) -> tuple[float, int]:
    options = ExtractConfig(layer=layer, attribution="off", batch_size=batch, limit=n)
    start = time.perf_counter()
    extract(str(source), str(store), spec, options)
    seconds = time.perf_counter() - start
    group = open_run(str(store)).layer()
    assert group["valid"][:].sum() == n
    return n / seconds, n


def peak_rss(spec: ModelSpec, image: Path, n: int, root: Path) -> tuple[float, float]:
    """Extract n copies of one image; returns (client max RSS, worker max RSS) in MiB."""
    folder = root / f"copies{n}" / "all"
    folder.mkdir(parents=True)
    data = image.read_bytes()
    for i in range(n):
        (folder / f"{i:07d}.png").write_bytes(data)
    store = root / f"rss{n}.zarr"
    extract(str(folder.parent), str(store), spec, ExtractConfig(layer="block3", attribution="off"))
    client = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    shutil.rmtree(folder.parent)
    return client, workers


def report(name: str, forward: float, ours: float) -> None:
    ratio = ours / forward
    print(
        f"{name}: forward {forward:.1f} img/s, atlas extract {ours:.1f} img/s, ratio {ratio:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=4000, help="demo images (64 px PNG)")
    parser.add_argument(
        "--resnet-n", type=int, default=600, help="ResNet-18 images (256 px JPEG, 224 crop)"
    )
    parser.add_argument(
        "--rss", type=int, default=0, help="also measure peak RSS at N and 10N images"
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    fields = {}
    try:
        demo_src = demo_images(root / "demo", args.n)
        demo = ModelSpec(
            arch="atlas.demo.net:DemoCNN",
            num_classes=10,
            input_size=64,
            mean=(0.5,) * 3,
            std=(0.25,) * 3,
        )
        forward = bare_forward(demo, demo_src, args.n, BATCH)
        ours, _ = atlas_extract(demo, demo_src, "block3", args.n, BATCH, root / "demo.zarr")
        fields.update(
            demo_n=args.n,
            demo_forward_ips=round(forward, 1),
            demo_extract_ips=round(ours, 1),
            demo_ratio=round(ours / forward, 3),
        )
        report("demo CNN 64 px", forward, ours)

        if args.resnet_n:
            jpegs = jpeg_images(root, demo_src, args.resnet_n)
            resnet = ModelSpec(arch="resnet18", num_classes=1000, input_size=224, resize_size=256)
            forward = bare_forward(resnet, jpegs, args.resnet_n, BATCH)
            ours, _ = atlas_extract(
                resnet, jpegs, "layer3", args.resnet_n, BATCH, root / "resnet.zarr"
            )
            fields.update(
                resnet_n=args.resnet_n,
                resnet_forward_ips=round(forward, 2),
                resnet_extract_ips=round(ours, 2),
                resnet_ratio=round(ours / forward, 3),
            )
            report("ResNet-18 224 px", forward, ours)

        if args.rss:
            one = next(demo_src.rglob("*.png"))
            small = peak_rss(demo, one, args.rss, root)
            large = peak_rss(demo, one, args.rss * 10, root)
            fields.update(
                rss_n=args.rss,
                client_rss_mib=f"{small[0]:.0f}/{large[0]:.0f}",
                worker_rss_mib=f"{small[1]:.0f}/{large[1]:.0f}",
            )
            print(
                f"peak RSS (MiB) at {args.rss} / {10 * args.rss} images: client {small[0]:.0f} / "
                f"{large[0]:.0f}, workers {small[1]:.0f} / {large[1]:.0f}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("BENCH extract " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
