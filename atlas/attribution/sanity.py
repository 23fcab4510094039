"""Two published checks of attribution maps, reproduced on a real network over a folder of
photos, with the numbers a reader needs to judge the measures themselves.

- Cascading randomization (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
  2018): per method, the similarity of each photo's map with its map after the top
  blocks are re-initialized, block by block down to the first, averaged over the photos
  (:func:`atlas.attribution.metrics.cascading_randomization`). The paper found guided
  backprop's map barely changes while the gradient's and Grad-CAM's lose their structure.
- Deletion and insertion (Petsiuk, Das & Saenko, "RISE", BMVC 2018): the mean area under
  each curve per method (:func:`atlas.attribution.metrics.deletion_insertion`), beside
  the paper's table for ResNet-50 (:data:`PETSIUK_RESNET50`).

A similarity means little without the value it takes on maps that have nothing to do
with each other. SSIM of two smooth, coarse maps (Grad-CAM upsampled from 7 x 7) is high
whatever they show: its luminance and contrast terms are alike for any two blobs. So each
measure also gets two floors: its mean between the original maps of *different* photos
(``floor_other_photos``), and between the maps of two independently, fully randomized
networks (``floor_two_randomized``); and ``ssim_over_floor`` rescales SSIM so that the
first floor reads 0 and identical maps 1. ``spearman_native`` ranks each map at its own
resolution (Grad-CAM's layer grid, pixels for the others), so upsampling cannot add
agreement.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from atlas.attribution.base import Attribution, make_method
from atlas.attribution.metrics import cascading_randomization, deletion_insertion, randomize
from atlas.config import AttributeConfig
from atlas.data import ImageRecord, UnusableImage, list_images, read_pixels, spread
from atlas.errors import DataError
from atlas.layers import blocks, get_layer
from atlas.models import LoadedModel

log = logging.getLogger(__name__)

METHODS = ("saliency", "guided_backprop", "gradcam")
MEASURES = ("spearman_abs", "spearman_signed", "ssim", "ssim_over_floor", "spearman_native")

# Petsiuk et al. 2018, Table 2 (ImageNet validation, ResNet-50): (deletion, insertion) AUC.
# The issue quotes the Grad-CAM row; the others as we read the paper (not re-checked here).
PETSIUK_RESNET50 = {
    "gradcam": (0.123, 0.677),
    "sliding_window": (0.142, 0.563),
    "lime": (0.122, 0.694),
    "rise": (0.108, 0.727),
}


@dataclass
class MethodSanity:
    """One method's checks, means over the photos. ``curves[measure][k]``: similarity
    with the original map after randomizing the top blocks down to ``steps[k]``;
    ``zero_share[k]``: share of photos whose map was all zero there (left out of the
    means)."""

    steps: list[str]
    curves: dict[str, list[float]]
    zero_share: list[float]
    floor_other_photos: dict[str, float]
    floor_two_randomized: dict[str, float]
    native_resolution: list[int]
    deletion_auc: float | None = None
    insertion_auc: float | None = None
    deletion_auc_per_photo: list[float] = field(default_factory=list)
    insertion_auc_per_photo: list[float] = field(default_factory=list)

    def end(self) -> dict[str, float]:
        """Each measure after every block is randomized."""
        return {m: values[-1] for m, values in self.curves.items()}


@dataclass
class SanityReport:
    model: str
    photos: list[str]
    targets: list[str]
    methods: dict[str, MethodSanity]
    # Methods too costly to cascade (integrated gradients): deletion and insertion AUCs only.
    faithfulness_only: dict[str, dict[str, float]] = field(default_factory=dict)
    petsiuk_resnet50: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(PETSIUK_RESNET50)
    )

    def to_json(self) -> dict:
        data = asdict(self)
        for name, method in self.methods.items():
            data["methods"][name]["end"] = method.end()
        return data


def select_photos(source: str | Path, limit: int) -> list[ImageRecord]:
    """``limit`` images of ``source`` spread evenly over its sorted listing (so every
    folder of a photo collection is drawn from), in listing order."""
    return spread(list_images(source).records, limit)


def photo_inputs(
    model: LoadedModel, records: Sequence[ImageRecord]
) -> tuple[torch.Tensor, list[ImageRecord]]:
    """The photos as the model sees them (N, 3, H, W), normalized, through the project's
    decoding and preprocessing; unusable files are skipped with a log line."""
    crops, kept = [], []
    for record in records:
        try:
            crops.append(model.preprocessing.crop(read_pixels(record.path)))
        except UnusableImage as err:
            log.warning("skipped %s: %s", record.name, err.reason)
            continue
        kept.append(record)
    if not crops:
        raise DataError("none of the photos could be read")
    images = torch.stack(crops).float().to(model.device) / 255
    return model.preprocessing.normalize(images), kept


class _Recorded(Attribution):
    """A method whose every map is also handed to ``keep`` (name left empty: not in the
    registry)."""

    def __init__(self, method: Attribution, keep: list) -> None:
        super().__init__(method.model, method.options)
        self.method, self.keep = method, keep

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = self.method.attribute(inputs, target)
        self.keep.append(maps.detach().cpu())
        return maps


def check_method(
    name: str,
    model: LoadedModel,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    options: AttributeConfig | None = None,
    steps: int | None = None,
    seed: int = 0,
    deletion_steps: int = 16,
) -> MethodSanity:
    """Cascade (top ``steps`` blocks; all when None), floors and deletion/insertion AUCs
    of one method over the photos ``inputs`` explaining classes ``target``."""
    options = options or AttributeConfig()
    method = make_method(name, model, options)
    original = method.attribute(inputs, target).detach().cpu()
    native = _native(method, original)
    kept: list[torch.Tensor] = []
    cascade = cascading_randomization(
        lambda m: _Recorded(make_method(name, m, options), kept),
        model,
        inputs,
        target,
        steps=steps,
        original=original,
        seed=seed,
    )
    floor = _floor_other_photos(original, native)
    extra = ("ssim_over_floor", "spearman_native")
    per_step = [
        [
            _measures(a, b, native, floor["ssim"], extra) or dict.fromkeys(extra, np.nan)
            for a, b in zip(original, after, strict=True)
        ]
        for after in kept
    ]
    curves = {
        "spearman_abs": _mean(cascade.spearman_abs),
        "spearman_signed": _mean(cascade.spearman_signed),
        "ssim": _mean(cascade.ssim),
        **{m: _mean(np.array([[p[m] for p in step] for step in per_step]).T) for m in extra},
    }
    twin = _fully_randomized(name, model, inputs, target, options, steps, seed + 1000)
    two_randomized = _means(zip(kept[-1], twin, strict=True), native, floor["ssim"])
    result = MethodSanity(
        steps=cascade.steps,
        curves=curves,
        zero_share=[float(v) for v in cascade.zero.mean(axis=0)],
        floor_other_photos=floor,
        floor_two_randomized=two_randomized,
        native_resolution=list(native),
    )
    if deletion_steps:
        auc = deletion_insertion(
            model, inputs, target, original.to(inputs.device), steps=deletion_steps
        )
        result.deletion_auc_per_photo = [round(float(v), 4) for v in auc.deletion_auc]
        result.insertion_auc_per_photo = [round(float(v), 4) for v in auc.insertion_auc]
        result.deletion_auc = float(np.mean(auc.deletion_auc))
        result.insertion_auc = float(np.mean(auc.insertion_auc))
    return result


def sanity_checks(
    model: LoadedModel,
    records: Sequence[ImageRecord],
    *,
    methods: Sequence[str] = METHODS,
    options: AttributeConfig | None = None,
    steps: int | None = None,
    seed: int = 0,
    deletion_steps: int = 16,
    auc_only: Sequence[str] = (),
) -> SanityReport:
    """Both checks of every method over the photos ``records``, each map explaining the
    model's top class for its photo; deletion and insertion alone for ``auc_only``."""
    inputs, kept = photo_inputs(model, records)
    with torch.no_grad():
        target = model.module(inputs).argmax(dim=1)
    results = {}
    for name in methods:
        log.info("sanity checks of %s on %d photos", name, len(kept))
        results[name] = check_method(
            name,
            model,
            inputs,
            target,
            options=options,
            steps=steps,
            seed=seed,
            deletion_steps=deletion_steps,
        )
    faithfulness = {}
    for name in auc_only:
        maps = make_method(name, model, options).attribute(inputs, target)
        curves = deletion_insertion(model, inputs, target, maps, steps=deletion_steps or 16)
        faithfulness[name] = {
            "deletion_auc": float(np.mean(curves.deletion_auc)),
            "insertion_auc": float(np.mean(curves.insertion_auc)),
        }
    return SanityReport(
        model=model.spec.arch,
        photos=[r.name for r in kept],
        targets=[model.class_names[int(t)] for t in target],
        methods=results,
        faithfulness_only=faithfulness,
    )


def run_sanity(
    model: LoadedModel,
    source: str | Path,
    out_dir: str | Path,
    *,
    limit: int = 16,
    methods: Sequence[str] = METHODS,
    options: AttributeConfig | None = None,
    steps: int | None = None,
    seed: int = 0,
    deletion_steps: int = 16,
    auc_only: Sequence[str] = (),
) -> SanityReport:
    """The checks over ``limit`` photos of ``source``, written to ``out_dir`` as
    ``sanity.json`` and ``sanity.png`` (or ``sanity.svg`` without matplotlib): what a
    pipeline stage calls."""
    report = sanity_checks(
        model,
        select_photos(source, limit),
        methods=methods,
        options=options,
        steps=steps,
        seed=seed,
        deletion_steps=deletion_steps,
        auc_only=auc_only,
    )
    write_sanity(report, out_dir)
    return report


def write_sanity(report: SanityReport, out_dir: str | Path) -> list[Path]:
    """``sanity.json`` (every number) and the figure of the cascade curves."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "sanity.json"
    data.write_text(json.dumps(report.to_json(), indent=1))
    from atlas.attribution.sanity_figure import plot_cascade

    return [data, plot_cascade(report, out)]


def _native(method: Attribution, maps: torch.Tensor) -> tuple[int, int]:
    """The grid a method computes its map on: a class activation map's layer, else the
    input's pixels."""
    resolution = getattr(method, "resolution", None)
    return tuple(resolution) if resolution else tuple(maps.shape[-2:])


def _at(maps: torch.Tensor, native: tuple[int, int]) -> torch.Tensor:
    """Maps (..., H, W) brought to ``native`` by area averaging (unchanged if there)."""
    if tuple(maps.shape[-2:]) == tuple(native):
        return maps
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    return F.adaptive_avg_pool2d(flat, native).reshape(*maps.shape[:-2], *native)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of |a| and |b| scaled to [0, 1], as the cascade computes it."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(_unit(np.abs(a)), _unit(np.abs(b)), data_range=1.0))


def _unit(values: np.ndarray) -> np.ndarray:
    low, high = values.min(), values.max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _rank(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps (ties averaged); NaN for a constant map."""
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(spearmanr(a.ravel(), b.ravel()).statistic)


def _measures(
    a: torch.Tensor, b: torch.Tensor, native, ssim_floor: float, which=MEASURES
) -> dict[str, float] | None:
    """The measures ``which`` of maps a and b (:data:`MEASURES`); None if either map is
    all zero (no similarity to give)."""
    if not torch.any(a) or not torch.any(b):
        return None
    x, y = a.numpy(), b.numpy()
    found = {}
    if "spearman_abs" in which:
        found["spearman_abs"] = _rank(np.abs(x), np.abs(y))
    if "spearman_signed" in which:
        found["spearman_signed"] = _rank(x, y)
    if "ssim" in which or "ssim_over_floor" in which:
        ssim = _ssim(x, y)
        found["ssim"] = ssim
        found["ssim_over_floor"] = (ssim - ssim_floor) / (1 - ssim_floor)
    if "spearman_native" in which:
        found["spearman_native"] = _rank(_at(a.abs(), native).numpy(), _at(b.abs(), native).numpy())
    return {m: found[m] for m in which}


def _means(pairs, native, ssim_floor: float) -> dict[str, float]:
    """Each measure's mean over the pairs of maps where it is defined."""
    found = [m for a, b in pairs if (m := _measures(a, b, native, ssim_floor)) is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {k: float(np.nanmean([f[k] for f in found])) if found else np.nan for k in MEASURES}


def _floor_other_photos(maps: torch.Tensor, native) -> dict[str, float]:
    """Each measure's mean over the pairs of different photos' maps (SSIM over its floor
    is 0 there by construction)."""
    pairs = [(maps[i], maps[j]) for i in range(len(maps)) for j in range(i + 1, len(maps))]
    floor = _means(pairs, native, np.nan)
    floor["ssim_over_floor"] = 0.0
    return floor


def _fully_randomized(name, model, inputs, target, options, steps, seed) -> torch.Tensor:
    """The method's maps on a copy of the model whose top ``steps`` blocks (all: None) are
    randomized as the cascade does, with other seeds: an independent random network."""
    clone = copy.deepcopy(model.module).eval()
    for k, step in enumerate(blocks(clone)[::-1][:steps]):
        for part in step:
            randomize(get_layer(clone, part), seed + k)
    return make_method(name, model.with_module(clone), options).attribute(inputs, target).cpu()


def _mean(per_photo: np.ndarray) -> list[float]:
    """(photos, steps) -> the mean per step over the photos with a defined value."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a step where every map was zero: NaN
        return [round(float(v), 4) for v in np.nanmean(per_photo, axis=0)]
