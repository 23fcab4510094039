"""Image sources and decoding.

Images are decoded by content with Pillow and converted to RGB the way a person looking
at them would expect: EXIF orientation applied, transparency composited on white,
palette, CMYK, grayscale and 16-bit images mapped to 8-bit RGB.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageOps

from atlas.errors import DataError, choices_hint
from atlas.progress import progress

IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)


@dataclass(frozen=True)
class ImageRecord:
    path: str
    label: int | None = None  # index into the model's class names, if known


def image_folder(
    root: str | Path, class_names: Sequence[str] | None = None
) -> tuple[list[ImageRecord], list[str]]:
    """List an ImageFolder tree: ``root/<class>/<image>``, sorted by class then file name.

    With ``class_names`` (the model's), folder names must be among them and labels are
    their indices there; otherwise the sorted folder names define the classes.
    Returns the records and the class names used.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root} has no class subfolders (expected {root}/<class>/<image>)")
    names = list(class_names) if class_names is not None else folders
    records = []
    for folder in folders:
        if folder not in names:
            raise DataError(
                f"{root}/{folder}: folder is not a class of the model "
                + choices_hint(folder, names, label="classes")
            )
        label = names.index(folder)
        for path in sorted((root / folder).rglob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith("."):
                records.append(ImageRecord(str(path), label))
    if not records:
        raise DataError(f"{root} contains no images with extensions {', '.join(IMAGE_EXTENSIONS)}")
    return records, names


def open_rgb(source: str | Path | IO[bytes]) -> Image.Image:
    """Decode an image by content and return it as 8-bit RGB (see module docstring)."""
    with Image.open(source) as image:
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        image = Image.fromarray((np.clip(values / top, 0, 1) * 255 + 0.5).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_images(
    records: Sequence[ImageRecord],
    geometry: Callable[[Image.Image], Image.Image],
    *,
    max_bytes: float = float("inf"),
    desc: str = "decode",
) -> torch.Tensor:
    """Decode all images into one uint8 tensor (N, 3, H, W), after ``geometry`` (resize, crop).

    Refuses (``DataError``) when the result would exceed ``max_bytes``.
    """
    if not records:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    first = np.asarray(geometry(open_rgb(records[0].path)))
    need = len(records) * first.nbytes
    if need > max_bytes:
        raise DataError(
            f"{len(records)} images need {need / 2**30:.1f} GiB decoded, over the limit of "
            f"{max_bytes / 2**30:.1f} GiB (raise train.max_memory_gb or use fewer images)"
        )
    out = torch.empty(
        (len(records), first.shape[2], first.shape[0], first.shape[1]), dtype=torch.uint8
    )

    def decode(index: int) -> int:
        try:
            pixels = np.asarray(geometry(open_rgb(records[index].path)))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot decode {records[index].path}: {err}") from None
        out[index] = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
        return index

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for _ in progress(
            pool.map(decode, range(len(records))),
            total=len(records),
            desc=desc,
            unit="img",
        ):
            pass
    return out
