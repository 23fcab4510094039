"""The report-model stage: the model report (:mod:`atlas.reports.model_report`) of the
model a spec names."""

from __future__ import annotations

from pathlib import Path

from atlas.config import ModelSpec, ReportConfig
from atlas.models import load_model
from atlas.reports.model_report import model_report


def report_model(spec: ModelSpec, out_dir: str | Path, options: ReportConfig) -> Path:
    """Write ``model.html`` (layer table, first-layer filters, class visualizations) and
    its pictures under ``out_dir``; returns the page's path."""
    return model_report(load_model(spec), out_dir, options)
