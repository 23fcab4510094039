"""The report-model stage: the model report (:mod:`atlas.reports.model_report`) of the
model a spec names."""

from __future__ import annotations

from pathlib import Path

from atlas.config import ModelSpec, ReportConfig
from atlas.models import LoadedModel, load_model
from atlas.reports.model_report import model_report


def report_model(
    model: ModelSpec | LoadedModel,
    out_dir: str | Path,
    options: ReportConfig,
    *,
    shape_bias: str | Path | None = None,
    channels: str | Path | None = None,
) -> Path:
    """Write ``model.html`` (layer table, first-layer filters, class visualizations, and
    the shape bias from ``shape_bias``, an output folder of the shape-bias stage; a summary
    of ``channels``, an output folder of the channels stage, with links) and its
    pictures under ``out_dir`` for a spec or a model in memory; returns the page."""
    return model_report(
        model if isinstance(model, LoadedModel) else load_model(model),
        out_dir,
        options,
        shape_bias=shape_bias,
        channels=channels,
    )
