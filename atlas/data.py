"""Image sources and decoding.

A source is an ImageFolder tree (``root/<class>/<image>``, labels from folder names), a
flat folder, or a list file (``.csv`` with a ``path`` column and optional ``label``, or
``.txt`` with one path per line), on the local disk or at any fsspec URL (``s3://``,
``file://``, ``memory://``, ...).

Images are decoded by content with Pillow, whatever their extension, and converted to RGB
the way a person looking at them would expect: EXIF orientation applied, transparency
composited on white, palette, CMYK, grayscale and 16-bit images mapped to 8-bit RGB.
A file that cannot be used raises :class:`UnusableImage` with a short reason (empty,
truncated, not an image, decompression bomb, ...), never decoding a bomb's pixels.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import posixpath
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import fsspec
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from atlas.credits import CREDITS
from atlas.errors import DataError, choices_hint
from atlas.progress import progress

if TYPE_CHECKING:
    import torch  # imported where the pixels become a tensor: stages that only list images skip it

log = logging.getLogger(__name__)

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
LIST_SUFFIXES = (".csv", ".txt", ".lst")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own bomb threshold
ORIENTATION = 0x0112  # the EXIF tag


@dataclass(frozen=True)
class ImageRecord:
    """One image: where to read it, its label, and its name: the path relative to the
    image source's root (``source``, as the user gave it), which is how outputs record and
    show it (default: ``path``)."""

    path: str  # where to read it: a local path or an fsspec URL
    label: int | None = None  # index into the model's class names, if known
    name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.path)


@dataclass(frozen=True)
class ImageList:
    records: list[ImageRecord]
    class_names: list[str] | None  # the classes labels refer to, if any
    kind: str  # "folder", "flat" or "list"
    root: str  # the source's root as given: the folder, or a list file's folder


def locate(root: str, name: str) -> str:
    """Where an image named ``name`` (relative to the source ``root``) is read from; a name
    that is already absolute or a URL stands alone."""
    if "://" in name or os.path.isabs(name) or not root:
        return name
    if "://" in root:
        return f"{root.rstrip('/')}/{name}"
    return os.path.join(root, *name.split("/"))


def absolute_root(root: str) -> str:
    """``root`` made independent of the working directory (a local relative path becomes
    absolute; URLs stay), so that workers elsewhere read the same images."""
    return root if "://" in root or not root else os.path.abspath(root)


class UnusableImage(Exception):
    """An image file that cannot be used; ``reason`` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def list_images(
    source: str | Path,
    class_names: Sequence[str] | None = None,
    *,
    strict_labels: bool = False,
    images_only: bool = False,
) -> ImageList:
    """List the images of ``source`` in a stable order (by path).

    Every non-hidden file is listed (but the folder's own ``credits.csv``), whatever its
    extension (decoding goes by content; what cannot be decoded is reported, not hidden),
    as are broken links and directories named like images. ``images_only`` keeps image
    extensions only.

    Labels: folder names (or list labels) that are among ``class_names`` map to their
    index. Otherwise, with ``strict_labels`` that is an error; without, an ImageFolder
    with exactly as many folders as classes maps by sorted order (the ImageNet
    convention), and anything else is unlabelled.
    """
    fs, root = fsspec.core.url_to_fs(str(source))
    if fs.isfile(root) and PurePosixPath(root).suffix.lower() in LIST_SUFFIXES:
        return _list_file(fs, root, source, class_names, strict_labels)
    if not fs.isdir(root):
        raise DataError(f"image source not found: {source}")
    candidates = sorted(_walk(fs, root, images_only))
    nested = [rel for rel in candidates if "/" in rel]
    if (
        nested
    ):  # ImageFolder: the first level names the class; files beside the folders are not images
        folders = sorted({rel.split("/", 1)[0] for rel in nested})
        mapping, names = _label_mapping(folders, class_names, strict_labels, str(source))
        records = [
            ImageRecord(
                _url(fs, f"{root.rstrip('/')}/{rel}", source),
                mapping.get(rel.split("/", 1)[0]),
                rel,
                str(source),
            )
            for rel in nested
        ]
        kind = "folder"
    else:
        records = [
            ImageRecord(_url(fs, f"{root.rstrip('/')}/{rel}", source), None, rel, str(source))
            for rel in candidates
        ]
        names, kind = (list(class_names) if class_names else None), "flat"
    if not records:
        raise DataError(f"{source} contains no images")
    return ImageList(records, names, kind, str(source))


def spread(records: Sequence[ImageRecord], limit: int) -> list[ImageRecord]:
    """``limit`` of ``records`` spread evenly over them, in their order (from a sorted
    listing: every folder of a collection drawn from)."""
    if limit >= len(records):
        return list(records)
    picks = np.linspace(0, len(records) - 1, limit).round().astype(int)
    return [records[i] for i in picks]


def image_folder(
    root: str | Path, class_names: Sequence[str] | None = None
) -> tuple[list[ImageRecord], list[str]]:
    """A labelled ImageFolder tree for training: image extensions only, every folder a class.

    With ``class_names`` folder names must be among them; otherwise the sorted folder
    names define the classes. Returns the records and the class names used.
    """
    fs, path = fsspec.core.url_to_fs(str(root))
    if not fs.isdir(path):
        raise DataError(f"image folder not found: {root}")
    listed = list_images(root, class_names, strict_labels=True, images_only=True)
    if listed.kind != "folder":
        raise DataError(f"{root} has no class subfolders (expected {root}/<class>/<image>)")
    return listed.records, listed.class_names


def read_image(path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and decode one image as an RGB Pillow image; raises :class:`UnusableImage`."""
    return _load_rgb(_open_checked(read_bytes(path), max_pixels))


def read_pixels(
    path: str, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft_size: int | None = None
) -> torch.Tensor:
    """Read and decode one image as a uint8 RGB tensor (3, H, W); raises :class:`UnusableImage`.

    ``draft_size`` lets a large JPEG decode at a reduced scale (never below that size on
    its shorter side), which is several times faster than decoding it whole.
    """
    image = _open_checked(read_bytes(path), max_pixels)
    if draft_size and image.format == "JPEG":
        image.draft("RGB", _draft_box(image.size, draft_size))
    pixels = np.asarray(_load_rgb(image))
    import torch

    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def _draft_box(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    """The smallest box with the image's aspect ratio whose shorter side is ``shorter``."""
    width, height = size
    scale = shorter / min(width, height)
    return max(shorter, round(width * scale)), max(shorter, round(height * scale))


def read_bytes(path: str) -> bytes:
    """The bytes of an image file at a local path or URL; raises :class:`UnusableImage`."""
    fs, local = fsspec.core.url_to_fs(path)
    try:
        with fs.open(local, "rb") as handle:
            data = handle.read()
    except IsADirectoryError:
        raise UnusableImage("is a directory") from None
    except PermissionError:
        raise UnusableImage("unreadable: permission denied") from None
    except FileNotFoundError:
        raise UnusableImage("broken link" if os.path.islink(local) else "file not found") from None
    except OSError as err:
        raise UnusableImage(f"unreadable: {err.strerror or err}") from None
    if not data:
        raise UnusableImage("empty file")
    return data


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse a decompression bomb before any pixel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnusableImage(f"decompression bomb: {err}") from None
    except UnidentifiedImageError:
        raise UnusableImage("not an image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UnusableImage(f"truncated or corrupt: {err}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise UnusableImage(f"decompression bomb: {width}x{height} px is over {max_pixels:,}")
    return image


def _load_rgb(image: Image.Image) -> Image.Image:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise UnusableImage(f"truncated or corrupt: {err}") from None
    if image.getexif().get(ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else to_rgb(image)


def open_pixels(path: str | Path) -> torch.Tensor:
    """:func:`read_pixels`, raising :class:`DataError` if the image cannot be used."""
    try:
        return read_pixels(str(path))
    except UnusableImage as err:
        raise DataError(f"cannot decode {path}: {err.reason}") from None


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
    crop: Callable[[torch.Tensor], torch.Tensor],
    *,
    max_bytes: float = float("inf"),
    desc: str = "decode",
) -> torch.Tensor:
    """Decode all images into one uint8 tensor (N, 3, H, W), after ``crop`` (resize, crop).

    Raises ``DataError`` for an unusable image, or when the result would exceed ``max_bytes``.
    """
    import torch

    if not records:
        return torch.empty(0, 3, 0, 0, dtype=torch.uint8)
    first = crop(open_pixels(records[0].path))
    need = len(records) * first.numel()
    if need > max_bytes:
        raise DataError(
            f"{len(records)} images need {need / 2**30:.1f} GiB decoded, over the limit of "
            f"{max_bytes / 2**30:.1f} GiB (raise train.max_memory_gb or use fewer images)"
        )
    out = torch.empty((len(records), *first.shape), dtype=torch.uint8)

    def decode(index: int) -> None:
        out[index] = crop(open_pixels(records[index].path))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jobs = pool.map(decode, range(len(records)))
        for _ in progress(jobs, total=len(records), desc=desc, unit="img"):
            pass
    return out


def _walk(fs, root: str, images_only: bool):
    """Paths under ``root`` (relative, '/'-separated) of every non-hidden file or link, and of
    directories named like images (which are not entered). One folder's listing at a time,
    so that a million files do not become a million info dicts at once."""
    root = root.rstrip("/")
    for folder, dirs, files in fs.walk(root, detail=True):
        prefix = folder.rstrip("/")[len(root) :].strip("/")
        for name in list(dirs):
            if name.startswith(".") or name.lower().endswith(IMAGE_EXTENSIONS):
                del dirs[name]  # not entered
                if not name.startswith("."):
                    yield f"{prefix}/{name}" if prefix else name
        for name in files:
            if (
                name.startswith(".")
                or (images_only and not name.lower().endswith(IMAGE_EXTENSIONS))
                or (not prefix and name == CREDITS)  # the folder's credits (atlas.credits)
            ):
                continue
            yield f"{prefix}/{name}" if prefix else name


def _url(fs, path: str, source) -> str:
    """How a listed path is recorded: a plain path on the local disk, a URL elsewhere."""
    if isinstance(fs, fsspec.implementations.local.LocalFileSystem) and "://" not in str(source):
        return path
    return fs.unstrip_protocol(path)


def _label_mapping(folders, class_names, strict, source) -> tuple[dict[str, int], list[str] | None]:
    if class_names is None:
        return {f: i for i, f in enumerate(folders)}, list(folders)
    names = list(class_names)
    unknown = [f for f in folders if f not in names]
    if not unknown:
        return {f: names.index(f) for f in folders}, names
    if strict:
        raise DataError(
            f"{source}/{unknown[0]}: folder is not a class of the model "
            + choices_hint(unknown[0], names, label="classes")
        )
    if len(folders) == len(names):
        log.info("%s: folder names are not class names; labelling by sorted folder order", source)
        return {f: i for i, f in enumerate(folders)}, names
    log.warning(
        "%s: %d folders are not classes of the model (e.g. %s); images are unlabelled",
        source,
        len(unknown),
        unknown[0],
    )
    return {}, names


def _list_file(fs, path: str, source, class_names, strict) -> ImageList:
    text = fs.cat_file(path).decode("utf-8-sig")
    base = PurePosixPath(path).parent
    if PurePosixPath(path).suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        if rows and "path" not in rows[0]:
            raise DataError(
                f"{path}: a CSV image list needs a 'path' column (found: {', '.join(rows[0])})"
            )
        entries = [
            (row["path"].strip(), (row.get("label") or "").strip())
            for row in rows
            if row["path"].strip()
        ]
    else:
        entries = [
            (line.strip(), "")
            for line in text.splitlines()
            if line.strip() and not line.startswith("#")
        ]
    names = list(class_names) if class_names is not None else None
    records = []
    for line, (item, label) in enumerate(entries, start=2):
        target = item if "://" in item or item.startswith("/") else str(base / item)
        records.append(
            ImageRecord(
                _url(fs, target, path if fs.protocol == "file" else "x://"),
                _parse_label(label, names, strict, path, line),
                item,
                posixpath.dirname(str(source)),
            )
        )
    if not records:
        raise DataError(f"{path} lists no images")
    return ImageList(records, names, "list", posixpath.dirname(str(source)))


def _parse_label(label: str, names, strict, path, line) -> int | None:
    if not label:
        return None
    if label.lstrip("-").isdigit():
        return int(label)
    if names and label in names:
        return names.index(label)
    if strict or names:
        raise DataError(
            f"{path} line {line}: unknown label {label!r} "
            + choices_hint(label, names or [], label="classes")
        )
    return None
