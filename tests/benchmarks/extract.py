"""Benchmark: the whole `atlas extract` path against the model's bare forward pass.

Same model, batch size and images in one run. The bare side decodes every image first
(untimed) and times only ``model(x)`` over batches with all cores: as a plain loop runs it
(NCHW, ``no_grad``) and at its best (channels-last), measured before and after the
extraction and averaged, since the machine is shared. The atlas side times
``atlas.extract.extract`` end to end (listing, decoding, preprocessing, forward, Zarr
writes; class attribution off) on its default local Dask cluster, and also over its task
time alone (the steady state a long run approaches). ``--rss N`` also measures the peak
memory of fresh processes extracting N and 10N images.

    python tests/benchmarks/extract.py [--n 8000] [--resnet-n 400] [--rss 10000]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ATLAS_PROGRESS", "0")

import torch
from PIL import Image

from atlas.config import ExtractConfig, ModelSpec
from atlas.data import list_images, read_pixels
from atlas.demo.world import CLASS_NAMES, make_world
from atlas.models import load_model
from atlas.stages.extract import extract_store
from atlas.store import open_run

BATCH = 128
DEMO = ModelSpec(
    arch="atlas.demo.net:DemoCNN", num_classes=10, input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3
)
RESNET = ModelSpec(arch="resnet18", num_classes=1000, input_size=224, resize_size=256)


def demo_images(root: Path, n: int) -> Path:
    per_class = max(1, n // len(CLASS_NAMES))
    make_world(
        root,
        seed=0,
        image_size=64,
        train_per_class=per_class,
        test_per_class=1,
        swapped_per_class=1,
    )
    return root / "train"


def jpeg_images(root: Path, source: Path, n: int, size: int = 256) -> Path:
    """Photo-like JPEGs: demo images upscaled to ``size`` px, quality 90."""
    out = root / "jpeg" / "all"
    out.mkdir(parents=True)
    paths = sorted(source.rglob("*.png"))
    for i in range(n):
        image = Image.open(paths[i % len(paths)]).resize((size, size), Image.Resampling.BICUBIC)
        image.save(out / f"{i:06d}.jpg", quality=90)
    return out.parent


def bare_forward(spec: ModelSpec, source: Path, n: int) -> tuple[float, float]:
    """Images per second of ``model(x)`` alone: plain (NCHW) and channels-last."""
    loaded = load_model(spec)
    torch.set_num_threads(os.cpu_count() or 1)
    records = list_images(source).records[:n]
    pixels = torch.stack([loaded.preprocessing.crop(read_pixels(r.path)) for r in records])
    inputs = loaded.preprocessing.normalize(pixels.float() / 255).contiguous()
    rates = []
    for layout in (torch.contiguous_format, torch.channels_last):
        model = loaded.module.to(memory_format=layout)
        x = inputs.contiguous(memory_format=layout)
        with torch.no_grad():
            model(x[:BATCH])  # warm up
            start = time.perf_counter()
            for s in range(0, len(x), BATCH):
                model(x[s : s + BATCH])
        rates.append(len(x) / (time.perf_counter() - start))
    return rates[0], rates[1]


def atlas_extract(
    spec: ModelSpec, source: Path, layer: str, n: int, store: Path
) -> tuple[float, float]:
    """Images per second of ``atlas extract``: end to end, and over its task time."""
    options = ExtractConfig(layer=layer, attribution="off", batch_size=BATCH, limit=n)
    summary = extract_store(str(source), str(store), spec, options)
    assert open_run(str(store)).read_layer().valid[:].sum() == n
    workers = os.cpu_count() or 1
    return n / summary.seconds, n / (summary.task_seconds / workers)


def measure(
    name: str, key: str, spec: ModelSpec, source: Path, layer: str, n: int, store: Path
) -> dict:
    plain_a, best_a = bare_forward(spec, source, n)
    ours, steady = atlas_extract(spec, source, layer, n, store)
    plain_b, best_b = bare_forward(spec, source, n)
    plain, best = (plain_a + plain_b) / 2, (best_a + best_b) / 2
    print(
        f"{name}: model(x) {plain:.1f} img/s (channels-last {best:.1f}); atlas extract "
        f"{ours:.1f} img/s end to end, {steady:.1f} over task time; ratio {ours / plain:.2f}",
        flush=True,
    )
    return {
        f"{key}_n": n,
        f"{key}_forward_ips": round(plain, 1),
        f"{key}_forward_cl_ips": round(best, 1),
        f"{key}_extract_ips": round(ours, 1),
        f"{key}_steady_ips": round(steady, 1),
        f"{key}_ratio": round(ours / plain, 3),
        f"{key}_ratio_vs_cl": round(ours / best, 3),
    }


def peak_rss(image: Path, n: int, root: Path) -> float:
    """Peak RSS (MiB) of a fresh process extracting ``n`` copies of one image."""
    folder = root / f"copies{n}" / "all"
    folder.mkdir(parents=True)
    data = image.read_bytes()
    for i in range(n):
        (folder / f"{i:07d}.png").write_bytes(data)
    store = root / f"rss{n}.zarr"
    command = [
        sys.executable,
        __file__,
        "--rss-child",
        str(folder.parent),
        "--rss-store",
        str(store),
    ]
    child = subprocess.run(command, check=True, capture_output=True, text=True)
    shutil.rmtree(folder.parent)
    shutil.rmtree(store)
    return float(child.stdout.strip().splitlines()[-1])


def rss_child(source: str, store: str) -> None:
    extract_store(source, store, DEMO, ExtractConfig(layer="block3", attribution="off"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=8000, help="demo images (64 px PNG)")
    parser.add_argument(
        "--resnet-n", type=int, default=400, help="ResNet-18 images (256 px JPEG, 224 crop)"
    )
    parser.add_argument(
        "--rss", type=int, default=0, help="also measure peak RSS at N and 10N images"
    )
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--rss-store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        return rss_child(args.rss_child, args.rss_store)
    root = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    fields: dict = {}
    try:
        demo_src = demo_images(root / "demo", args.n)
        fields.update(
            measure("demo CNN 64 px", "demo", DEMO, demo_src, "block3", args.n, root / "demo.zarr")
        )
        if args.resnet_n:
            jpegs = jpeg_images(root, demo_src, args.resnet_n)
            fields.update(
                measure(
                    "ResNet-18 224 px",
                    "resnet",
                    RESNET,
                    jpegs,
                    "layer3",
                    args.resnet_n,
                    root / "r.zarr",
                )
            )
        if args.rss:
            one = next(demo_src.rglob("*.png"))
            small, large = peak_rss(one, args.rss, root), peak_rss(one, 10 * args.rss, root)
            fields.update(rss_n=f"{args.rss}/{10 * args.rss}", rss_mib=f"{small:.0f}/{large:.0f}")
            print(f"peak RSS: {small:.0f} MiB at {args.rss} images, {large:.0f} at {10 * args.rss}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("BENCH extract " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
