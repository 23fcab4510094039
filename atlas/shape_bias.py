"""Shape bias: does a classifier follow an object's shape or its texture?

Geirhos et al. ("ImageNet-trained CNNs are biased towards texture; increasing shape bias
improves accuracy and robustness", ICLR 2019) show a model cue-conflict images, each the
shape of one category filled with the texture of another. A decision for the shape's
category follows the shape, one for the texture's category follows the texture, any other
follows neither. The shape bias is the share of shape decisions among the decisions that
follow either cue: 1 for a model that goes by shape alone, 0 for one that goes by texture.
Images whose shape and texture are of one category hold no conflict and are left out, as
in the paper.

Classes may be grouped into cue categories (two classes that share both cues would
otherwise split the decisions between them); a decision is the category of the model's
top class.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from atlas.data import locate, open_pixels
from atlas.errors import DataError, choices_hint
from atlas.models import LoadedModel

OUTCOMES = ("shape", "texture", "other")
COLUMNS = ("path", "shape", "texture")


@dataclass(frozen=True)
class CueConflictImage:
    """One cue-conflict image: its path, and the class (or cue category) of its shape and
    of its texture."""

    path: str
    shape: str
    texture: str


@dataclass(frozen=True)
class Decision:
    """What the model made of one image: its top class, that class's cue category, and
    which cue the decision follows (``shape``, ``texture`` or ``other``)."""

    path: str
    shape: str  # cue category
    texture: str  # cue category
    predicted: str  # class name
    category: str
    outcome: str


@dataclass
class ShapeBias:
    """The shape bias of a model on a cue-conflict set, with what it is made of."""

    shape_bias: float | None  # shape / (shape + texture); None when no decision followed a cue
    counts: dict[str, int]  # outcome -> images
    per_shape: dict[str, dict]  # shape category -> counts and its shape bias
    per_texture: dict[str, dict]  # texture category -> counts and its shape bias
    decisions: list[Decision]
    examples: dict[str, list[int]] = field(default_factory=dict)  # outcome -> decision indices
    excluded: int = 0  # images whose shape and texture are one category

    def as_dict(self) -> dict:
        out = asdict(self)
        out["decisions"] = [asdict(d) for d in self.decisions]
        return out


def read_cue_conflict(path: str | Path) -> list[CueConflictImage]:
    """The images a cue-conflict list (a local CSV file) names: the columns ``path``,
    ``shape`` and ``texture`` (others are ignored); relative paths are taken from the
    file's folder."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"cue-conflict list not found: {path}")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path}: no column {missing[0]!r} (a cue-conflict list has the columns "
                + ", ".join(COLUMNS)
                + ")"
            )
        root = str(path.parent)
        images = [
            CueConflictImage(locate(root, row["path"]), row["shape"], row["texture"])
            for row in reader
        ]
    if not images:
        raise DataError(f"{path} lists no images")
    return images


def shape_bias(
    model: LoadedModel,
    images: Sequence[CueConflictImage],
    *,
    categories: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 64,
    examples: int = 4,
) -> ShapeBias:
    """The shape bias of ``model`` on cue-conflict ``images`` (:func:`score`), its
    decisions made in batches of ``batch_size``; ``categories`` groups classes into cue
    categories (name -> class names). Raises :class:`DataError` for a shape or texture
    that names no class or category, or an image that cannot be read."""
    category_of = cue_categories(model.class_names, categories)
    for image in images:
        for cue in ("shape", "texture"):
            _check_cue(getattr(image, cue), cue, image.path, category_of)
    return score(images, predict_classes(model, images, batch_size), category_of, examples)


def cue_categories(
    class_names: Sequence[str], categories: Mapping[str, Sequence[str]] | None = None
) -> dict[str, str]:
    """Every name a cue may be given by (a class or a category) -> its cue category. A
    class of no group is a category of its own."""
    category_of = {name: name for name in class_names}
    for group, members in (categories or {}).items():
        if group in class_names and list(members) != [group]:
            raise DataError(f"cue category {group!r} is also the name of a class")
        for member in members:
            if member not in class_names:
                raise DataError(
                    f"cue category {group!r}: unknown class {member!r} "
                    + choices_hint(member, class_names, label="classes")
                )
            if category_of[member] != member:
                raise DataError(
                    f"class {member!r} is in two cue categories: "
                    f"{category_of[member]!r} and {group!r}"
                )
            category_of[member] = group
        category_of[group] = group
    return category_of


def predict_classes(
    model: LoadedModel, images: Sequence[CueConflictImage], batch_size: int = 64
) -> list[str]:
    """The model's top class for each image, decided in batches."""
    module = model.module.eval()
    predicted: list[str] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pixels = torch.stack([model.preprocessing.crop(open_pixels(i.path)) for i in chunk])
        with torch.no_grad():
            logits = module(model.preprocessing.normalize(pixels.to(model.device).float() / 255))
        predicted += [model.class_names[i] for i in logits.argmax(1).tolist()]
    return predicted


def score(
    images: Sequence[CueConflictImage],
    predicted: Sequence[str],
    category_of: Mapping[str, str],
    examples: int = 4,
) -> ShapeBias:
    """Geirhos et al.'s shape bias from each image's predicted class: ``category_of``
    (:func:`cue_categories`) names the cue category of every class and category. Keeps
    the first ``examples`` decisions of each outcome, one shape category after another."""
    decisions, excluded = [], 0
    for image, top in zip(images, predicted, strict=True):
        shape, texture = category_of[image.shape], category_of[image.texture]
        if shape == texture:
            excluded += 1
            continue
        category = category_of[top]
        outcome = "shape" if category == shape else "texture" if category == texture else "other"
        decisions.append(Decision(image.path, shape, texture, top, category, outcome))
    return ShapeBias(
        shape_bias=_bias(decisions),
        counts=_counts(decisions),
        per_shape=_breakdown(decisions, "shape"),
        per_texture=_breakdown(decisions, "texture"),
        decisions=decisions,
        examples={o: _examples(decisions, o, examples) for o in OUTCOMES},
        excluded=excluded,
    )


def _check_cue(name: str, cue: str, path: str, category_of: Mapping[str, str]) -> None:
    if name not in category_of:
        raise DataError(
            f"cue-conflict image {path}: unknown {cue} class {name!r} "
            + choices_hint(name, list(category_of), label="classes and cue categories")
        )


def _counts(decisions: Sequence[Decision]) -> dict[str, int]:
    return {o: sum(d.outcome == o for d in decisions) for o in OUTCOMES}


def _bias(decisions: Sequence[Decision]) -> float | None:
    counts = _counts(decisions)
    followed = counts["shape"] + counts["texture"]
    return round(counts["shape"] / followed, 4) if followed else None


def _breakdown(decisions: Sequence[Decision], cue: str) -> dict[str, dict]:
    groups: dict[str, list[Decision]] = {}
    for decision in decisions:
        groups.setdefault(getattr(decision, cue), []).append(decision)
    return {name: {**_counts(group), "shape_bias": _bias(group)} for name, group in groups.items()}


def _examples(decisions: Sequence[Decision], outcome: str, n: int) -> list[int]:
    """Indices of up to ``n`` decisions with ``outcome``: the first of each shape category
    in turn, then the second of each, and so on (varied, and the same every run)."""
    seen: dict[str, int] = {}
    ranked = []
    for index, decision in enumerate(decisions):
        if decision.outcome == outcome:
            rank = seen.get(decision.shape, 0)
            seen[decision.shape] = rank + 1
            ranked.append((rank, index))
    return [index for _, index in sorted(ranked)[:n]]
