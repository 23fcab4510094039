"""Per-image attribution reports (the library side of ``atlas attribute``).

For each image: the model's top-5 predictions, every configured method's map (saved as
``<stem>.<method>.npy``, float32 at the model's input size), shown alone and over the
image on a colour scale shared by all images of the report and stated on the page, the
trust checks (model randomization similarity; deletion and insertion AUCs), and the
activation grids of configured layers. One HTML page per image, and ``index.html`` with
thumbnails, sortable by confidence and correctness.
"""

from __future__ import annotations

import base64
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from atlas.attribution import Attribution, make_method
from atlas.attribution.metrics import (
    DELETION_BASELINE,
    INSERTION_BASELINE,
    Cascade,
    Curves,
    cascading_randomizations,
    deletion_insertion_of,
)
from atlas.config import AttributeConfig, Recipe
from atlas.credits import Credit, credit_entry, credits_in
from atlas.data import ImageRecord, UnusableImage, list_images, read_pixels, spread
from atlas.errors import AtlasError, MethodNotDefinedError
from atlas.layers import get_layer
from atlas.models import LoadedModel
from atlas.progress import progress
from atlas.reports.blocks import BLOCKS_CLASSES, blocks_section
from atlas.reports.imaging import Scale, activation_grid, save_png
from atlas.reports.pages import write_assets, write_page
from atlas.store.reports import write_report_index

log = logging.getLogger(__name__)


@dataclass
class ImageReport:
    stem: str  # the page is <stem>.html; the maps <stem>.<method>.npy
    name: str  # the image's path relative to its source's root
    source: str  # that root, as the user gave it
    label: int | None
    target: int
    top: list[tuple[str, float]]  # (class name, probability), best first
    trust: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> check -> value
    layers: list[dict] = field(default_factory=list)
    # the image's credit where its folder has a credits.csv (atlas.credits.credit_entry)
    credit: dict | None = None
    # the Building Blocks section (atlas.reports.blocks), where attribute.blocks_layer asks
    blocks: dict | None = None

    @property
    def predicted(self) -> str:
        return self.top[0][0]

    @property
    def confidence(self) -> float:
        return self.top[0][1]


class Reports(list):
    """The reports of one ``atlas attribute`` output folder (a list of
    :class:`ImageReport`); in a notebook, a table of each image's maps over it."""

    def __init__(self, reports: Sequence[ImageReport], folder: Path) -> None:
        super().__init__(reports)
        self.folder = Path(folder)

    def _repr_html_(self, limit: int = 8) -> str:
        rows = []
        for report in self[:limit]:
            pictures = "".join(
                f'<td><img width="96" title="{escape(m)}" '
                f'src="{_data_uri(self.folder / f"{report.stem}.{m}.overlay.png")}"></td>'
                for m in sorted(report.trust)
            )
            rows.append(
                f"<tr><td>{escape(report.name)}</td><td>{escape(report.predicted)} "
                f"{report.confidence:.2f}</td>{pictures}</tr>"
            )
        header = "".join(f"<th>{escape(m)}</th>" for m in sorted(self[0].trust)) if self else ""
        more = f"<p>{len(self) - limit} more in {escape(self.folder.name)}/index.html</p>"
        return (
            f"<table><tr><th>image</th><th>predicted</th>{header}</tr>{''.join(rows)}</table>"
            + (more if len(self) > limit else "")
        )


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def select_images(
    sources: Sequence[str], class_names: Sequence[str], options: AttributeConfig
) -> list[ImageRecord]:
    """The images of every source, at most ``per_class`` per label and ``limit`` per source
    (spread evenly over its listing, so that every folder of a collection is drawn from)."""
    chosen = []
    for source in sources:
        records = list_images(source, class_names).records
        if options.per_class:
            seen: dict = {}
            records = [
                r
                for r in records
                if seen.setdefault(r.label, []).append(r) or len(seen[r.label]) <= options.per_class
            ]
        chosen.extend(spread(records, options.limit) if options.limit else records)
    return chosen


def unique_stems(paths: Sequence[str]) -> list[str]:
    """Safe, distinct file stems for images: each file's stem with anything but letters,
    digits, ``-``, ``_`` and ``.`` replaced (a name from a data set never becomes markup,
    a path or a URL scheme on disk), prefixed by its folder where two images share one
    (demo splits have ``snow_leopard/000001.png`` and ``star/000001.png``), numbered if
    still ambiguous."""
    stems = [_safe(PurePosixPath(p).stem) for p in paths]
    counts = Counter(stems)
    named = [
        f"{_safe(PurePosixPath(p).parent.name)}-{s}" if counts[s] > 1 else s
        for p, s in zip(paths, stems, strict=True)
    ]
    seen: Counter = Counter()
    out = []
    for name in named:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def _safe(text: str, limit: int = 80) -> str:
    cleaned = re.sub(r"[^\w.-]", "_", text).lstrip(".")[:limit]
    return cleaned or "image"


def attribute_images(
    model: LoadedModel,
    records: Sequence[ImageRecord],
    out_dir: str | Path,
    options: AttributeConfig,
    recipe: Recipe | None = None,
) -> list[ImageReport]:
    """Write the maps, pictures and pages for ``records`` under ``out_dir``. ``recipe``:
    how the Building Blocks section's neuron groups are rendered (the run's render
    recipe; default: the recipe's defaults)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for layer in filter(None, [*options.layers, options.blocks_layer]):
        get_layer(model.module, layer)
    methods, undefined = _methods(model, options)
    checked = set(
        options.methods if options.randomize_methods is None else options.randomize_methods
    ) - set(undefined)
    if checked - set(methods):
        unknown = sorted(checked - set(methods))[0]
        raise AtlasError(
            f"attribute.randomize_methods names {unknown!r}, which is not run: "
            f"choose among {', '.join(methods)}"
        )
    scales = {name: Scale(method.signed) for name, method in methods.items()}
    stems = unique_stems([r.name for r in records])
    reports: list[ImageReport] = []
    skipped: list[tuple[str, str]] = []
    pixels: dict[str, np.ndarray] = {}
    credits: dict[str, dict[str, Credit]] = {}  # by source root
    for start in progress(
        range(0, len(records), options.batch_size), desc="attribute", unit="batch"
    ):
        batch, batch_stems, images = [], [], []
        for record, stem in zip(
            records[start : start + options.batch_size],
            stems[start : start + options.batch_size],
            strict=True,
        ):
            try:
                images.append(model.preprocessing.crop(read_pixels(record.path)))
            except UnusableImage as err:
                skipped.append((record.name, err.reason))
                continue
            batch.append(record)
            batch_stems.append(stem)
        if not batch:
            continue
        crops = torch.stack(images)
        inputs = model.preprocessing.normalize(crops.float().to(model.device) / 255)
        with torch.no_grad():
            probs = torch.softmax(model.module(inputs), dim=1).cpu()
        target = _targets(options.target, probs, batch, model.num_classes)
        for record, stem, crop, p, t in zip(
            batch, batch_stems, crops, probs, target.tolist(), strict=True
        ):
            order = torch.argsort(p, descending=True)[:5]
            reports.append(
                ImageReport(
                    stem,
                    record.name,
                    record.source,
                    record.label,
                    t,
                    [(model.class_names[i], float(p[i])) for i in order],
                    credit=_credit(credits, record),
                )
            )
            pixels[stem] = crop.permute(1, 2, 0).numpy()
            save_png(pixels[stem], out / f"{stem}.input.png")
        current = reports[-len(batch) :]
        target = target.to(model.device)
        maps = {name: method.attribute(inputs, target) for name, method in methods.items()}
        cascades = _cascades(model, methods, checked, inputs, target, maps, options)
        curves = (
            deletion_insertion_of(
                model,
                inputs,
                target,
                maps,
                steps=options.deletion_steps,
                batch=options.deletion_batch,
            )
            if options.deletion_steps
            else dict.fromkeys(methods)
        )
        for name in methods:
            for i, (report, values) in enumerate(
                zip(current, maps[name].cpu().numpy(), strict=True)
            ):
                np.save(out / f"{report.stem}.{name}.npy", values.astype(np.float32))
                scales[name].observe(values)
                report.trust[name] = _trust(cascades[name], curves[name], i)
        if options.layers:
            _layer_grids(model, inputs, current, options, out)
        if options.blocks_layer:
            for report, image, p in zip(current, inputs, probs, strict=True):
                likely = [
                    i for i in torch.argsort(p, descending=True).tolist() if i != report.target
                ]
                report.blocks = blocks_section(
                    model,
                    image,
                    pixels[report.stem],
                    report.stem,
                    [report.target, *likely[: BLOCKS_CLASSES - 1]],
                    options,
                    recipe or Recipe(),
                    out,
                )
    for scale in scales.values():
        scale.settle()
    for report in reports:
        for name in methods:
            values = np.load(out / f"{report.stem}.{name}.npy")
            save_png(scales[name].colour(values), out / f"{report.stem}.{name}.png")
            save_png(
                scales[name].overlay(pixels[report.stem], values),
                out / f"{report.stem}.{name}.overlay.png",
            )
    sanity = _sanity(model, [r for r in records if r.name not in dict(skipped)], out, options)
    _write_pages(out, model, reports, methods, scales, skipped, options, undefined, sanity)
    return reports


def _sanity(
    model: LoadedModel, records: Sequence[ImageRecord], out: Path, options: AttributeConfig
) -> dict | None:
    """The published checks over ``options.sanity_photos`` of the readable ``records``
    (spread over them), written beside the reports (``sanity.json`` and its figure), and
    what the index shows of them; None where not asked for or too few images (the
    floors compare different images' maps)."""
    if not options.sanity_photos or len(records) < 2:
        return None
    from atlas.attribution.sanity import METHODS, sanity_checks, write_sanity

    cascaded = [m for m in options.randomize_methods or METHODS if m in options.methods]
    report = sanity_checks(
        model,
        spread(records, options.sanity_photos),
        methods=cascaded,
        options=options,
        steps=options.randomize_layers,
        deletion_steps=options.deletion_steps,
        auc_only=[m for m in options.methods if m not in cascaded]
        if options.deletion_steps
        else [],
    )
    figure = write_sanity(report, out)[1]
    rows = [
        {
            "method": name,
            "end": checks.end(),
            "floor": checks.floor_other_photos,
            "deletion": checks.deletion_auc,
            "insertion": checks.insertion_auc,
        }
        for name, checks in report.methods.items()
    ] + [
        {"method": name, "deletion": aucs["deletion_auc"], "insertion": aucs["insertion_auc"]}
        for name, aucs in report.faithfulness_only.items()
    ]
    return {"figure": figure.name, "photos": len(report.photos), "rows": rows}


def _credit(credits: dict[str, dict[str, Credit]], record: ImageRecord) -> dict | None:
    """The record's credit (as :func:`atlas.credits.credit_entry` gives it), the credits
    of its source read once."""
    if record.source not in credits:
        credits[record.source] = credits_in(record.source or None)
    return credit_entry(credits[record.source], record.name).get("credit")


def _cascades(
    model: LoadedModel,
    methods: dict[str, Attribution],
    checked: set[str],
    inputs: torch.Tensor,
    target: torch.Tensor,
    maps: dict[str, torch.Tensor],
    options: AttributeConfig,
) -> dict[str, Cascade]:
    """The randomization check of the ``checked`` methods, all on one randomized copy per
    step of the cascade (each method moved onto it by :meth:`Attribution.on`); the other
    methods get a cascade of no steps."""
    makers = {name: methods[name].on for name in methods if name in checked}
    cascades = cascading_randomizations(
        makers,
        model,
        inputs,
        target,
        steps=options.randomize_layers,
        originals={name: maps[name] for name in makers},
    )
    skipped = cascading_randomizations(
        {name: methods[name].on for name in methods if name not in checked},
        model,
        inputs,
        target,
        steps=0,
        originals=maps,
    )
    return {**cascades, **skipped}


def _methods(model: LoadedModel, options: AttributeConfig) -> tuple[dict, dict[str, str]]:
    """The methods of ``options`` set up for ``model``, and, by name, why those it has no
    rule for are not defined on it (guided backprop on a network without rectifiers)."""
    methods, undefined = {}, {}
    for name in options.methods:
        try:
            methods[name] = make_method(name, model, options)
        except MethodNotDefinedError as err:
            log.warning("%s", err)
            undefined[name] = str(err)
    return methods, undefined


def _trust(cascade: Cascade, curves: Curves | None, i: int) -> dict:
    """Image ``i``'s checks, as the report index records them (None where undefined, or
    not computed: no cascade steps, no ``curves``)."""
    faithfulness = (
        {
            "deletion": float(curves.deletion_auc[i]),
            "insertion": float(curves.insertion_auc[i]),
            "deletion_curve": [round(float(v), 4) for v in curves.deletion[i]],
            "insertion_curve": [round(float(v), 4) for v in curves.insertion[i]],
        }
        if curves is not None
        else dict.fromkeys(("deletion", "insertion", "deletion_curve", "insertion_curve"))
    )
    return {
        # After the last step of the cascade; None when the map became all zero.
        "randomization": _number(cascade.spearman_abs[i, -1]) if cascade.steps else None,
        "map_zero": bool(cascade.original_zero[i]),
        "randomization_zero_at": (
            cascade.steps[int(np.argmax(cascade.zero[i]))] if cascade.zero[i].any() else None
        ),
        "cascade": {
            "steps": cascade.steps,
            "spearman_abs": [_number(v) for v in cascade.spearman_abs[i]],
            "spearman_signed": [_number(v) for v in cascade.spearman_signed[i]],
            "ssim": [_number(v) for v in cascade.ssim[i]],
        },
        **faithfulness,
    }


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def _targets(
    choice, probs: torch.Tensor, batch: Sequence[ImageRecord], num_classes: int
) -> torch.Tensor:
    if choice == "pred":
        return probs.argmax(dim=1)
    if choice == "label":
        missing = [r.name for r in batch if r.label is None]
        if missing:
            raise AtlasError(
                f"target 'label' needs labelled images; {missing[0]} has none (use target: pred)"
            )
        return torch.tensor([r.label for r in batch])
    if not 0 <= int(choice) < num_classes:
        raise AtlasError(
            f"target class {choice} is out of range (the model has {num_classes} classes)"
        )
    return torch.full((len(batch),), int(choice), dtype=torch.long)


def _layer_grids(
    model: LoadedModel,
    inputs: torch.Tensor,
    reports: list[ImageReport],
    options: AttributeConfig,
    out: Path,
) -> None:
    with torch.no_grad(), model.capture(options.layers) as outputs:
        model.module(inputs)
    for layer in options.layers:
        maps = outputs[layer].float().cpu().numpy()
        if maps.ndim != 4:
            continue
        for report, per_image in zip(reports, maps, strict=True):
            picture, top = activation_grid(per_image[: options.channels_shown])
            name = f"{report.stem}.layer-{layer}.png"
            save_png(picture, out / name, scale=max(1, 48 // per_image.shape[1]))
            report.layers.append(
                {
                    "name": layer,
                    "file": name,
                    "shape": "x".join(map(str, per_image.shape)),
                    "top": f"{top:.3g}",
                    "shown": min(len(per_image), options.channels_shown),
                }
            )


def _write_pages(
    out: Path, model: LoadedModel, reports, methods, scales, skipped, options, undefined, sanity
) -> None:
    descriptions = {name: method.describe() for name, method in methods.items()}
    flags = {name: options.randomization_flag for name in methods}
    for i, report in enumerate(reports):
        write_page(
            out / f"{report.stem}.html",
            "image.html",
            report=report,
            label=model.class_names[report.label]
            if report.label is not None and report.label >= 0
            else None,
            target_name=model.class_names[report.target],
            methods=list(methods),
            signed={n: m.signed for n, m in methods.items()},
            descriptions=descriptions,
            scales={n: s.describe() for n, s in scales.items()},
            flags=flags,
            baselines={"deletion": DELETION_BASELINE, "insertion": INSERTION_BASELINE},
            undefined=undefined,
            previous=reports[i - 1].stem if i > 0 else None,
            next=reports[i + 1].stem if i + 1 < len(reports) else None,
        )
    rows = [
        {
            "stem": r.stem,
            "name": r.name,
            "label": model.class_names[r.label] if r.label is not None and r.label >= 0 else "",
            "predicted": r.predicted,
            "confidence": r.confidence,
            "correct": (
                r.label is not None and r.label >= 0 and model.class_names[r.label] == r.predicted
            ),
            "credit": r.credit,
        }
        for r in reports
    ]
    write_page(
        out / "index.html",
        "index.html",
        rows=rows,
        methods=list(methods),
        skipped=skipped,
        model=model.spec.arch,
        undefined=undefined,
        sanity=sanity,
    )
    write_assets(out)
    write_report_index(
        out,
        [
            {
                "stem": r.stem,
                "image": r.name,
                "source": r.source,
                "target": r.target,
                "top": r.top,
                "trust": r.trust,
            }
            for r in reports
        ],
    )
