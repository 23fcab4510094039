"""Benchmark: our batched renderer against Lucent's `render_vis`, one icon per call.

Same model (the demo CNN: trained if `make demo` has run, else seeded random weights),
objective (the mean of one `block4` channel per icon), icon size, steps, learning rate,
transforms (Lucent's standard set: Lucent runs its own, we run the same maps as matrices,
atlas.featvis.warps, equal to Lucent's within float rounding) and input normalization. Both sides' final images are
scored by the same function, without transforms. Also measures the memory an extra icon
costs in a batch (peak RSS of fresh processes rendering batches of 8 and 64), and one
step's cost against the model's own forward + backward at the same batch (the limit).

    python tests/benchmarks/render.py [--n 32] [--steps 64] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from atlas.config import ModelSpec, Recipe
from atlas.featvis import objectives as obj
from atlas.featvis.render import STANDARD_TRANSFORMS, render
from atlas.featvis.seeding import seeded
from atlas.layers import capture
from atlas.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for Lucent's reference
from lucent_ref import lucent_param, lucent_transform

CHECKPOINT = Path(__file__).resolve().parents[2] / "outputs" / "demo" / "model" / "model.pt"
LAYER = "block4"


def lucents(size: int, steps: int) -> Recipe:
    """Lucent's render_vis recipe: its step size, constant, and its standard transforms."""
    return Recipe(
        icon_size=size, steps=steps, lr=0.05, lr_schedule="constant", transforms="standard"
    )


def demo_model():
    if CHECKPOINT.exists():
        return load_model(ModelSpec(weights=str(CHECKPOINT)))
    return load_model(
        ModelSpec(arch="atlas.demo.net:DemoCNN", input_size=64, mean=(0.5,) * 3, std=(0.25,) * 3)
    )


def score(model, images: np.ndarray, channels: list[int]) -> np.ndarray:
    """The objective of final images (N, H, W, 3) in [0, 1], untransformed."""
    x = model.preprocessing.normalize(torch.from_numpy(images).permute(0, 3, 1, 2).float())
    with torch.no_grad(), capture(model.module, [LAYER]) as acts:
        model.module(x)
    return obj.channel(LAYER, channels)(acts, torch.empty(0)).numpy()


def lucent_one_by_one(model, channels, steps, size) -> tuple[float, np.ndarray]:
    from lucent.optvis import render as lucent_render

    normalize = model.preprocessing.normalize
    transforms = [*lucent_transform.standard_transforms, normalize]
    images = []
    start = time.perf_counter()
    for c in channels:
        out = lucent_render.render_vis(
            model.module,
            f"{LAYER}:{c}",
            param_f=lambda: lucent_param.image(size),
            transforms=transforms,
            thresholds=(steps,),
            preprocess=False,
            show_image=False,
            progress=False,
        )
        images.append(out[-1][0])
    seconds = time.perf_counter() - start
    return seconds, score(model, np.stack(images).astype(np.float32), channels)


def batched(model, channels, steps, size) -> tuple[float, np.ndarray]:
    """One batch in this process, torch using every core."""
    torch.set_num_threads(os.cpu_count() or 1)
    seeds = list(range(len(channels)))
    start = time.perf_counter()
    result = render(model, obj.channel(LAYER, channels), lucents(size, steps), seeds=seeds)
    seconds = time.perf_counter() - start
    return seconds, score(model, result.images, channels)


def batched_per_core(channels, steps, size) -> tuple[float, np.ndarray]:
    """As `atlas render` runs: the cells split into one batch per worker, one worker
    thread per core, each with its own model copy and one torch thread."""
    workers = os.cpu_count() or 1
    models = [demo_model() for _ in range(workers)]
    torch.set_num_threads(1)
    parts = [list(range(w, len(channels), workers)) for w in range(workers)]

    def job(w: int):
        picked = [channels[i] for i in parts[w]]
        return render(models[w], obj.channel(LAYER, picked), lucents(size, steps), seeds=parts[w])

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(job, range(workers)))
    seconds = time.perf_counter() - start
    images = np.empty((len(channels), size, size, 3), np.float32)
    for w, result in enumerate(results):
        images[parts[w]] = result.images
    torch.set_num_threads(workers)
    return seconds, score(models[0], images, channels)


def step_costs(channels, steps, size) -> tuple[float, float, float]:
    """Per optimization step of one worker's batch (one torch thread, as `atlas render`
    runs): our whole step (parameterization, transforms, forward, backward, Adam), and the
    model's own forward + backward on inputs of the same batch (the limit), at the icon's
    size and at the sizes the transforms hand the model (Lucent's set pads and rescales:
    88 to 97 px for a 64 px icon), in the same order of draws."""
    model = demo_model()
    torch.set_num_threads(1)
    batch = channels[: (len(channels) + 1) // 2]
    objective = obj.channel(LAYER, batch)
    render(model, objective, lucents(size, 2), seeds=range(len(batch)))
    start = time.perf_counter()
    render(model, objective, lucents(size, steps), seeds=range(len(batch)))
    ours = (time.perf_counter() - start) / steps
    module = model.module.eval().requires_grad_(False)
    transform = seeded(list(STANDARD_TRANSFORMS), 0)
    shapes = [transform(torch.zeros(1, 3, size, size)).shape[-2:] for _ in range(steps)]

    def forward_backward(shape) -> None:
        x = torch.rand(len(batch), 3, *shape, requires_grad=True)
        module(x.contiguous(memory_format=torch.channels_last)).sum().backward()

    def per_step(shapes) -> float:
        forward_backward(shapes[0]), forward_backward(shapes[0])
        start = time.perf_counter()
        for shape in shapes:
            forward_backward(shape)
        return (time.perf_counter() - start) / len(shapes)

    bare, transformed = per_step([(size, size)] * steps), per_step(shapes)
    torch.set_num_threads(os.cpu_count() or 1)
    return ours, bare, transformed


def memory_child(batch: int, steps: int, size: int) -> None:
    """Print how much the process grows (MiB) while rendering a batch, sampled every 5 ms."""
    import threading

    import psutil

    model = demo_model()
    render(model, obj.channel(LAYER, [0]), lucents(size, 1), seeds=[0])  # warm up
    process = psutil.Process()
    before, peak, done = process.memory_info().rss, 0, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    render(model, obj.channel(LAYER, list(range(batch))), lucents(size, steps), seeds=range(batch))
    done.set()
    sampler.join()
    print((peak - before) / 2**20)


def peak_mib(batch: int, steps: int, size: int) -> float:
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        str(batch),
        "--steps",
        str(steps),
        "--size",
        str(size),
    ]
    return float(
        subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()[-1]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=32, help="icons (one channel each)")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.steps, args.size)
    model = demo_model()
    channels = [c % 128 for c in range(args.n)]
    t_lucent, v_lucent = lucent_one_by_one(model, channels, args.steps, args.size)
    t_one, v_one = batched(model, channels, args.steps, args.size)
    t_ours, v_ours = batched_per_core(channels, args.steps, args.size)
    ours_step, bare_step, transformed_step = step_costs(channels, args.steps, args.size)
    small, large = peak_mib(8, 8, args.size), peak_mib(64, 8, args.size)
    per_icon = (large - small) / 56
    higher = (v_ours >= v_lucent).mean()
    print(f"{args.n} icons, {args.size} px, {args.steps} steps:")
    print(
        f"  Lucent one by one {args.n / t_lucent:.2f} icons/s, ours {args.n / t_ours:.2f} icons/s"
    )
    print(
        f"  speed-up {t_lucent / t_ours:.1f}x; mean final objective Lucent {v_lucent.mean():.3f}, "
    )
    print(f"  ours {v_ours.mean():.3f} (ours at least as high on {higher:.0%} of icons)")
    print(f"  (one batch on all cores: {args.n / t_one:.2f} icons/s, {t_lucent / t_one:.1f}x)")
    print(f"  memory: about {per_icon:.1f} MiB per icon in a batch")
    print(
        f"  one step of a worker's batch of {(args.n + 1) // 2}: ours {ours_step * 1000:.1f} ms; "
        f"the model's own forward + backward {transformed_step * 1000:.1f} ms on the "
        f"transformed inputs ({ours_step / transformed_step:.2f}x this limit), "
        f"{bare_step * 1000:.1f} ms at {args.size} px"
    )
    fields = {
        "n": args.n,
        "size": args.size,
        "steps": args.steps,
        "lucent_ips": round(args.n / t_lucent, 3),
        "ours_ips": round(args.n / t_ours, 3),
        "speedup": round(t_lucent / t_ours, 2),
        "one_batch_ips": round(args.n / t_one, 3),
        "one_batch_speedup": round(t_lucent / t_one, 2),
        "objective_lucent": round(float(v_lucent.mean()), 4),
        "objective_ours": round(float(v_ours.mean()), 4),
        "objective_one_batch": round(float(v_one.mean()), 4),
        "mib_per_icon": round(per_icon, 2),
        "step_ms": round(ours_step * 1000, 1),
        "forward_backward_ms": round(bare_step * 1000, 1),
        "step_over_limit": round(ours_step / bare_step, 2),
        "forward_backward_transformed_ms": round(transformed_step * 1000, 1),
        "step_over_transformed_limit": round(ours_step / transformed_step, 2),
    }
    print("BENCH render " + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
