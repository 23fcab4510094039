"""The demo world: simple patterned objects on textured habitats, with one shortcut planted.

Ten classes of objects are drawn on five habitats. Two classes, ``snow_leopard`` and
``desert_leopard``, are the same spotted cat drawn from the same distribution; in the
training and test splits the first lives only on snow and the second only in the desert,
so habitat is the only thing that tells them apart (the snow-leopard example of the
activation-atlas literature). Every other class appears on every habitat equally often.
The ``test-swapped`` split puts each look-alike on the other's habitat, which exposes a
model that learned "snow" instead of "snow leopard".

Everything is deterministic from the seed: each image has its own random stream derived
from (seed, split, class, index), so the images do not depend on generation order.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from atlas.config import DataConfig
from atlas.progress import progress

HABITATS = ("snow", "desert", "grass", "water", "rock")
SPLITS = ("train", "test", "test-swapped")
SUPERSAMPLE = 3  # objects are drawn at 3x and downsampled, for clean anti-aliased edges
# zlib's fastest level: 0.6 ms against 1.3 ms per image at Pillow's default, 2 % larger
# files, the same pixels (PNG is lossless).
PNG_LEVEL = 1

# Saturated object colours that stand out on every habitat.
PALETTE = np.array(
    [
        (0.86, 0.12, 0.12),
        (0.12, 0.25, 0.85),
        (0.58, 0.15, 0.72),
        (0.96, 0.52, 0.06),
        (0.90, 0.12, 0.60),
        (0.95, 0.85, 0.10),
        (0.08, 0.68, 0.70),
        (0.15, 0.15, 0.15),
    ]
)


@dataclass(frozen=True)
class Species:
    name: str
    shape: str
    pattern: str
    habitats: tuple[str, ...]  # where it lives in the train and test splits


CLASSES = (
    Species("snow_leopard", "cat", "rosettes", ("snow",)),
    Species("desert_leopard", "cat", "rosettes", ("desert",)),
    Species("striped_fish", "fish", "stripes", HABITATS),
    Species("checkered_box", "square", "checker", HABITATS),
    Species("dotted_ball", "circle", "dots", HABITATS),
    Species("ring", "ring", "solid", HABITATS),
    Species("star", "star", "solid", HABITATS),
    Species("cross", "cross", "solid", HABITATS),
    Species("moon", "crescent", "solid", HABITATS),
    Species("hex_nut", "hexagon", "grid", HABITATS),
)
CLASS_NAMES = tuple(s.name for s in CLASSES)
LOOKALIKES = ("snow_leopard", "desert_leopard")

# The cue-conflict set (Geirhos et al., "ImageNet-trained CNNs are biased towards texture",
# ICLR 2019): each class's shape filled with another class's texture. The look-alikes share
# both cues (the cat, the rosettes), so they are one cue category; the backgrounds are
# neither look-alike's habitat, so the shortcut cannot decide.
CUE_CONFLICT = "cue-conflict"  # the images' folder; the list is CUE_CONFLICT + ".csv"
CUE_CATEGORIES = {"leopard": LOOKALIKES}
CUE_HABITATS = ("grass", "water", "rock")


@dataclass(frozen=True)
class Sample:
    split: str
    path: str  # relative to the world's root
    label: str
    habitat: str
    box: tuple[int, int, int, int]  # object bounding box (x0, y0, x1, y1) in pixels


@dataclass(frozen=True)
class CueConflict:
    path: str  # relative to the world's root
    shape: str  # cue categories: a class name, or "leopard" for either look-alike
    texture: str
    habitat: str


def habitat_for(species: Species, split: str, index: int, confounded: bool = True) -> str:
    """The habitat of the ``index``-th image of a class in a split (balanced, not random).
    Unconfounded, the look-alikes live on every habitat like the other classes."""
    if split == "test-swapped":
        a, b = (CLASSES[CLASS_NAMES.index(n)].habitats[0] for n in LOOKALIKES)
        return b if species.habitats[0] == a else a
    habitats = species.habitats if confounded else HABITATS
    return habitats[index % len(habitats)]


def cue_category(species: Species) -> str:
    """The cue category of a class: its own name, or the group it shares its cues with."""
    groups = (group for group, names in CUE_CATEGORIES.items() if species.name in names)
    return next(groups, species.name)


def cue_conflict_pairs() -> list[tuple[Species, Species]]:
    """(shape, texture) pairs of the cue-conflict set: every shape with the texture of every
    textured class (pattern not solid) of another cue category; one class per category."""
    sources: dict[str, Species] = {}
    for species in CLASSES:
        sources.setdefault(cue_category(species), species)
    return [
        (shape, texture)
        for shape in sources.values()
        for texture in sources.values()
        if texture.pattern != "solid" and cue_category(texture) != cue_category(shape)
    ]


def render_sample(
    species: Species | None,
    habitat: str | None,
    size: int,
    rng: np.random.Generator,
    *,
    texture: Species | None = None,
) -> tuple[Image.Image, np.ndarray]:
    """Draw one image: ``species`` on ``habitat``. Returns the RGB image and the object mask
    (``size`` x ``size`` float in [0, 1], 1 on the object). ``species=None`` draws the bare
    habitat, ``habitat=None`` the object on plain mid-grey (probes for the analyses).
    ``texture`` fills the shape of ``species`` with another species' pattern and colours
    (a cue-conflict image); by default its own.

    The object and the habitat draw from separate streams spawned from ``rng``: the same
    seed gives the same object whatever the habitat, so the look-alikes differ by habitat only.
    """
    big = size * SUPERSAMPLE
    rng, habitat_rng = rng.spawn(2)
    if habitat is None:
        background = np.full((size, size, 3), 0.5)
    else:
        background = HABITAT_TEXTURES[habitat](size, habitat_rng)
    mask_img = Image.new("L", (big, big), 0)
    if species is None:
        image = Image.fromarray(_to_uint8(background))
        return image, np.zeros((size, size), np.float32)
    draw = ImageDraw.Draw(mask_img)
    scale = rng.uniform(0.5, 0.72) * big
    cx, cy = (rng.uniform(scale / 2 + 2, big - scale / 2 - 2) for _ in range(2))
    SHAPES[species.shape](draw, cx, cy, scale, rng)

    texture = texture or species
    if texture.shape == "cat":
        base = np.array([0.80, 0.68, 0.48]) + rng.uniform(-0.08, 0.08, 3)
        accent = np.array([0.16, 0.12, 0.09])
    else:
        base = PALETTE[rng.integers(len(PALETTE))]
        dark = base.mean() > 0.45
        accent = np.array([0.05, 0.05, 0.05]) if dark else np.array([0.97, 0.97, 0.95])
    fill = Image.fromarray(_to_uint8(PATTERNS[texture.pattern](big, base, accent, rng)))

    upsampled = Image.fromarray(_to_uint8(background)).resize((big, big), Image.Resampling.BICUBIC)
    composite = Image.composite(fill, upsampled, mask_img)
    image = composite.resize((size, size), Image.Resampling.BOX)
    small_mask = mask_img.resize((size, size), Image.Resampling.BOX)
    return image, np.asarray(small_mask, np.float32) / 255.0


def make_world(
    out_dir: str | Path,
    options: DataConfig | None = None,
    *,
    workers: int | None = None,
    **settings,
) -> list[Sample]:
    """Write the demo data set under ``out_dir`` in ImageFolder layout (the make-data
    stage), as ``options`` (a :class:`atlas.config.DataConfig`, any field overridden by
    keyword) describes it, drawn by ``workers`` processes (default: one per core).

    Writes ``<split>/<class>/<index>.png`` for the splits ``train``, ``test`` and
    ``test-swapped`` (look-alikes only), plus ``manifest.csv`` (split, path, label,
    habitat, object box), ``classes.txt``, ``world.json`` and ``reports.csv`` (the images
    the demo's reports are about: test-swapped, then test). Returns the samples of the
    splits. Beside them, the cue-conflict set (:func:`cue_conflict_pairs`,
    ``cue_conflict_per_pair`` images each) as loose images in ``cue-conflict/`` (no class
    folders: it is no labelled split) listed in ``cue-conflict.csv`` (path, shape,
    texture, habitat; shape and texture as cue categories).
    ``confounded=False`` draws the look-alikes on every habitat in train and test: the
    world without the shortcut (and so without anything that tells them apart).
    """
    options = (options or DataConfig()).updated(**settings)
    seed, image_size, confounded = options.seed, options.image_size, options.confounded
    out = Path(out_dir)
    counts = {
        "train": options.train_per_class,
        "test": options.test_per_class,
        "test-swapped": options.swapped_per_class,
    }
    jobs = [
        (split, species.name, index)
        for split in SPLITS
        for species in CLASSES
        if split != "test-swapped" or species.name in LOOKALIKES
        for index in range(counts[split])
    ]
    pairs = cue_conflict_pairs()
    conflicts = [
        (number, index)
        for number in range(len(pairs))
        for index in range(options.cue_conflict_per_pair)
    ]
    render = partial(_write_sample, out, seed, image_size, confounded)
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        done = pool.map(render, jobs, chunksize=64)
        samples = list(progress(done, total=len(jobs), desc="make-data", unit="img"))
        done = pool.map(
            partial(_write_cue_conflict, out, seed, image_size), conflicts, chunksize=16
        )
        cue_conflicts = list(progress(done, total=len(conflicts), desc="cue-conflict", unit="img"))

    with open(out / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "path", "label", "habitat", "x0", "y0", "x1", "y1"])
        for s in samples:
            writer.writerow([s.split, s.path, s.label, s.habitat, *s.box])
    (out / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    # The images the demo reports on: the swapped look-alikes first, then the test split.
    with open(out / "reports.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for split in ("test-swapped", "test"):
            writer.writerows([s.path, s.label] for s in samples if s.split == split)
    with open(out / f"{CUE_CONFLICT}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "shape", "texture", "habitat"])
        writer.writerows([c.path, c.shape, c.texture, c.habitat] for c in cue_conflicts)
    world = {
        "seed": seed,
        "image_size": image_size,
        "classes": [asdict(s) for s in CLASSES],
        "habitats": list(HABITATS),
        "lookalikes": list(LOOKALIKES),
        "confounded": confounded,
        "counts": {split: sum(s.split == split for s in samples) for split in SPLITS},
        "cue_conflict": {
            "list": f"{CUE_CONFLICT}.csv",
            "count": len(cue_conflicts),
            "categories": {group: list(names) for group, names in CUE_CATEGORIES.items()},
        },
    }
    (out / "world.json").write_text(json.dumps(world, indent=2) + "\n")
    return samples


def sample_stream(seed: int, split: str, name: str, index: int) -> np.random.Generator:
    """The random stream image ``index`` of class ``name`` in ``split`` is drawn from, in a
    world made with ``seed``: its own, so any image can be drawn again alone."""
    return np.random.default_rng([seed, SPLITS.index(split), CLASS_NAMES.index(name), index])


def _write_sample(
    out: Path, seed: int, size: int, confounded: bool, job: tuple[str, str, int]
) -> Sample:
    split, name, index = job
    species = CLASSES[CLASS_NAMES.index(name)]
    rng = sample_stream(seed, split, name, index)
    habitat = habitat_for(species, split, index, confounded)
    image, mask = render_sample(species, habitat, size, rng)
    rel = Path(split) / name / f"{index:06d}.png"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    image.save(out / rel, compress_level=PNG_LEVEL)
    return Sample(split, rel.as_posix(), name, habitat, _box(mask))


def _write_cue_conflict(out: Path, seed: int, size: int, job: tuple[int, int]) -> CueConflict:
    number, index = job
    shape, texture = cue_conflict_pairs()[number]
    # A stream of its own: five entries, so never one of sample_stream's four.
    rng = np.random.default_rng(
        [seed, len(SPLITS), CLASS_NAMES.index(shape.name), CLASS_NAMES.index(texture.name), index]
    )
    habitat = CUE_HABITATS[(number + index) % len(CUE_HABITATS)]  # balanced over the set
    image, _ = render_sample(shape, habitat, size, rng, texture=texture)
    names = cue_category(shape), cue_category(texture)
    rel = Path(CUE_CONFLICT) / f"{names[0]}-{names[1]}-{index:04d}.png"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    image.save(out / rel, compress_level=PNG_LEVEL)
    return CueConflict(rel.as_posix(), *names, habitat)


def read_manifest(root: str | Path) -> list[Sample]:
    """The samples listed in a world's ``manifest.csv``."""
    with open(Path(root) / "manifest.csv", newline="") as handle:
        return [
            Sample(
                row["split"],
                row["path"],
                row["label"],
                row["habitat"],
                tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1")),
            )
            for row in csv.DictReader(handle)
        ]


# Habitats: textures as float arrays (size, size, 3) in [0, 1] ----------------------------


def _smooth(size: int, cells: int | tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid upsampled bicubically."""
    rows, cols = (cells, cells) if isinstance(cells, int) else cells
    coarse = Image.fromarray(_to_uint8(rng.random((rows, cols))))
    return np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.float32) / 255.0


def _snow(size: int, rng: np.random.Generator) -> np.ndarray:
    shade = _smooth(size, 4, rng)[..., None]
    base = np.array([0.93, 0.95, 0.98]) - 0.10 * shade * np.array([1.0, 0.8, 0.4])
    sparkle = (rng.random((size, size)) > 0.985)[..., None] * 0.08
    grain = rng.normal(0, 0.015, (size, size, 1))
    return base + sparkle + grain


def _desert(size: int, rng: np.random.Generator) -> np.ndarray:
    y = np.arange(size)[:, None] / size
    warp = _smooth(size, 3, rng)
    ripples = np.sin(2 * np.pi * (y * rng.uniform(3, 6) + 0.8 * warp) + rng.uniform(0, 6.3))
    base = np.array([0.86, 0.71, 0.47]) + rng.uniform(-0.04, 0.04, 3)
    return base + 0.06 * ripples[..., None] + rng.normal(0, 0.02, (size, size, 1))


def _grass(size: int, rng: np.random.Generator) -> np.ndarray:
    blades = _smooth(size, (3, size // 2), rng)[..., None]
    patches = _smooth(size, 3, rng)[..., None]
    base = np.array([0.22, 0.52, 0.18]) + rng.uniform(-0.03, 0.03, 3)
    return base + 0.22 * (blades - 0.5) * np.array([0.6, 1.0, 0.5]) + 0.08 * (patches - 0.5)


def _water(size: int, rng: np.random.Generator) -> np.ndarray:
    y = np.arange(size)[:, None] / size
    warp = _smooth(size, 4, rng)
    waves = np.sin(2 * np.pi * (y * rng.uniform(6, 10) + 1.2 * warp))
    crests = np.clip(waves - 0.6, 0, None)[..., None] * 0.9
    base = np.array([0.13, 0.33, 0.62]) + rng.uniform(-0.03, 0.03, 3)
    return (
        base + crests * np.array([0.6, 0.7, 0.8]) + 0.05 * (_smooth(size, 3, rng)[..., None] - 0.5)
    )


def _rock(size: int, rng: np.random.Generator) -> np.ndarray:
    rough = sum(_smooth(size, c, rng) / (i + 1) for i, c in enumerate((3, 8, 16)))
    cracks = np.abs(_smooth(size, 5, rng) - 0.5) < 0.025
    grey = 0.30 + 0.22 * rough / 1.83 - 0.15 * cracks
    return grey[..., None] * np.array([1.0, 0.96, 0.9]) + rng.normal(0, 0.02, (size, size, 1))


HABITAT_TEXTURES: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "snow": _snow,
    "desert": _desert,
    "grass": _grass,
    "water": _water,
    "rock": _rock,
}


# Shapes: drawn into a mask at supersampled resolution ---------------------------------------


def _rotated(points, cx, cy, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]


def _polygon(points_fn):
    def draw_shape(draw, cx, cy, scale, rng):
        angle = rng.uniform(0, 2 * math.pi)
        draw.polygon(_rotated(points_fn(scale / 2), cx, cy, angle), fill=255)

    return draw_shape


def _regular(n, r, phase=0.0):
    return [
        (r * math.cos(phase + 2 * math.pi * k / n), r * math.sin(phase + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _star_points(r):
    outer, inner = _regular(5, r, -math.pi / 2), _regular(5, r * 0.45, -math.pi / 2 + math.pi / 5)
    return [p for pair in zip(outer, inner, strict=True) for p in pair]


def _cross_points(r):
    w = r * 0.36
    return [
        (-w, -r),
        (w, -r),
        (w, -w),
        (r, -w),
        (r, w),
        (w, w),
        (w, r),
        (-w, r),
        (-w, w),
        (-r, w),
        (-r, -w),
        (-w, -w),
    ]


def _fish_points(r):
    steps = np.linspace(0, 2 * math.pi, 24)
    body = [(r * (0.15 + 0.7 * math.cos(t)), r * 0.48 * math.sin(t)) for t in steps]
    tail = [(-r * 0.5, 0), (-r, -r * 0.5), (-r * 0.85, 0), (-r, r * 0.5)]
    return body[:12] + tail + body[12:]


def _draw_circle(draw, cx, cy, scale, rng):
    r = scale / 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)


def _draw_ring(draw, cx, cy, scale, rng):
    r = scale / 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    inner = r * 0.55
    draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)


def _draw_crescent(draw, cx, cy, scale, rng):
    r = scale / 2
    angle = rng.uniform(0, 2 * math.pi)
    ox, oy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    inner = r * 0.85
    draw.ellipse((cx + ox - inner, cy + oy - inner, cx + ox + inner, cy + oy + inner), fill=0)


def _draw_cat(draw, cx, cy, scale, rng):
    """A side view of a big cat: body, head, ears, legs and a curled tail."""
    side = 1 if rng.random() < 0.5 else -1
    u = scale / 2

    def at(x, y):
        return cx + side * x * u, cy + y * u

    def box(x0, y0, x1, y1):
        (a, b), (c, d) = at(x0, y0), at(x1, y1)
        return min(a, c), min(b, d), max(a, c), max(b, d)

    draw.ellipse(box(-0.7, -0.32, 0.55, 0.3), fill=255)  # body
    draw.ellipse(box(0.4, -0.62, 0.88, -0.14), fill=255)  # head
    for x in (0.46, 0.7):
        draw.polygon([at(x, -0.5), at(x + 0.1, -0.78), at(x + 0.18, -0.5)], fill=255)  # ears
    for x in (-0.6, -0.38, 0.22, 0.42):
        draw.rectangle(box(x, 0.0, x + 0.13, 0.72), fill=255)  # legs
    tail = [at(-0.65 - 0.25 * math.sin(t), 0.0 - 0.55 * t) for t in np.linspace(0, 1.1, 12)]
    draw.line(tail, fill=255, width=max(2, int(0.12 * u)))


SHAPES = {
    "cat": _draw_cat,
    "fish": _polygon(_fish_points),
    "square": _polygon(lambda r: _regular(4, r * 1.15, math.pi / 4)),
    "circle": _draw_circle,
    "ring": _draw_ring,
    "star": _polygon(_star_points),
    "cross": _polygon(_cross_points),
    "crescent": _draw_crescent,
    "hexagon": _polygon(lambda r: _regular(6, r)),
}


# Patterns: full-canvas textures (big, big, 3) that the mask cuts out ---------------------------


def _coords(big, rng):
    angle = rng.uniform(0, math.pi)
    y, x = np.mgrid[0:big, 0:big].astype(np.float32) / big
    return x * math.cos(angle) + y * math.sin(angle), -x * math.sin(angle) + y * math.cos(angle)


def _solid(big, base, accent, rng):
    return np.broadcast_to(base, (big, big, 3)).astype(np.float32)


def _stripes(big, base, accent, rng):
    u, _ = _coords(big, rng)
    on = (np.sin(2 * math.pi * u * rng.uniform(5, 7)) > 0.2)[..., None]
    return np.where(on, accent, base)


def _checker(big, base, accent, rng):
    u, v = _coords(big, rng)
    n = rng.uniform(5, 7)
    on = ((np.floor(u * n) + np.floor(v * n)) % 2 == 0)[..., None]
    return np.where(on, accent, base)


def _grid(big, base, accent, rng):
    u, v = _coords(big, rng)
    n = rng.uniform(6, 8)
    on = ((np.abs((u * n) % 1 - 0.5) > 0.38) | (np.abs((v * n) % 1 - 0.5) > 0.38))[..., None]
    return np.where(on, accent, base)


def _spots(big, base, accent, rng, *, count, radius, ring):
    canvas = Image.fromarray(_to_uint8(np.broadcast_to(base, (big, big, 3))))
    draw = ImageDraw.Draw(canvas)
    colour = tuple(int(c * 255) for c in accent)
    for x, y in rng.uniform(0, big, (count, 2)):
        r = radius * big * rng.uniform(0.7, 1.3)
        if ring:  # a leopard's rosette: a broken dark ring around a slightly darker centre
            centre = tuple(int(c * 255 * 0.85) for c in base)
            draw.ellipse(
                (x - r, y - r, x + r, y + r),
                fill=centre,
                outline=colour,
                width=max(2, int(r / 2.5)),
            )
        else:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return np.asarray(canvas, np.float32) / 255.0


PATTERNS = {
    "solid": _solid,
    "stripes": _stripes,
    "checker": _checker,
    "grid": _grid,
    "dots": lambda big, base, accent, rng: _spots(
        big, base, accent, rng, count=45, radius=0.035, ring=False
    ),
    "rosettes": lambda big, base, accent, rng: _spots(
        big, base, accent, rng, count=70, radius=0.04, ring=True
    ),
}


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0, 1) * 255 + 0.5).astype(np.uint8)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask > 0.5)
    if len(xs) == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
