"""The documentation's generated pages say what their source files hold (docs/sitegen.py).

The strict site build itself (a broken link or a missing reference fails) is `make docs`,
which `make test` runs before the suite."""

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Literal, get_args

import pytest
from pydantic import BaseModel, Field, PositiveInt

from atlas.config import Config, Section

ROOT = Path(__file__).resolve().parents[1]
# docs/ is no package: load its module by path (registered, as dataclasses need).
_spec = importlib.util.spec_from_file_location("docs_sitegen", ROOT / "docs" / "sitegen.py")
sitegen = sys.modules.setdefault("docs_sitegen", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(sitegen)


def test_every_config_key_is_a_row_of_the_configuration_page():
    page = sitegen.config_markdown()
    rows = set(re.findall(r"^\| `([\w.]+)` \|", page, flags=re.MULTILINE))
    keys = set()
    for name, info in Config.model_fields.items():
        options = (info.annotation, *get_args(info.annotation))
        model = next(t for t in options if isinstance(t, type) and issubclass(t, BaseModel))
        keys |= {f"{name}.{key}" for key in model.model_fields}
    assert "extract.layer" in keys and "render.steps" in keys
    assert rows == keys
    for name, _ in sitegen.config_sections():
        assert f"## `{name}`" in page


class _Toy(Section):
    """A toy section.

    Its second paragraph."""

    size: PositiveInt = Field(default=8, description="cells per side")
    mode: Literal["a", "b"] = "a"
    layer: str | list[str] = Field(description="a layer | or several")
    scale: tuple[float, float] = (0.5, 2.0)


class _ToyConfig(Section):
    toy: _Toy | None = None


def test_a_config_row_gives_type_bounds_default_and_description():
    page = sitegen.config_markdown(_ToyConfig)
    assert (
        "## `toy`\n\nA toy section.\n\nIts second paragraph.\n\nThis section has no default" in page
    )
    assert "| `toy.size` | int (> 0) | `8` | cells per side |" in page
    assert "| `toy.mode` | one of 'a', 'b' | `\"a\"` |  |" in page
    assert "| `toy.layer` | str \\| list[str] | `required` | a layer \\| or several |" in page
    assert "| `toy.scale` | tuple[float, float] | `[0.5, 2.0]` |  |" in page
    assert sitegen.undocumented_keys(_ToyConfig) == ["toy.mode", "toy.scale"]


RECORD = """\
# header note, ended by the blank line

2026-11-23 BENCH grid n=1000 ours_s=2.4
# the matrices
# on both sides
2026-12-01 BENCH render n=32 ours_ips=6.16 speedup=13.4
2026-12-02 BENCH render n=32 ours_ips=7.0
"""


def test_bench_lines_parse_into_runs_with_their_notes():
    runs = sitegen.parse_bench(RECORD)
    assert runs == [
        sitegen.BenchRun("2026-11-23", "grid", {"n": "1000", "ours_s": "2.4"}, ""),
        sitegen.BenchRun(
            "2026-12-01",
            "render",
            {"n": "32", "ours_ips": "6.16", "speedup": "13.4"},
            "the matrices on both sides",
        ),
        sitegen.BenchRun("2026-12-02", "render", {"n": "32", "ours_ips": "7.0"}, ""),
    ]


def test_each_run_is_one_dated_table_newest_first(tmp_path):
    (tmp_path / "render.py").write_text('"""Renders icons.\n\nMore."""\n')
    page = sitegen.benchmarks_markdown(sitegen.parse_bench(RECORD), scripts=tmp_path)
    render = page.split("## render", 1)[1]
    assert render.startswith("\n\nRenders icons.\n")
    newest, older = render.index("### render, 2026-12-02"), render.index("### render, 2026-12-01")
    assert newest < older
    table = render[older:].split("\n\n")
    assert table[1] == "the matrices on both sides"
    assert table[2].splitlines() == [
        "| field | value |",
        "| --- | --- |",
        "| `n` | 32 |",
        "| `ours_ips` | 6.16 |",
        "| `speedup` | 13.4 |",
    ]
    assert "### grid, 2026-11-23" in page.split("## grid", 1)[1]


@pytest.mark.parametrize(
    "line", ["2026-12-01 BENCH render speedup", "BENCH render n=1", "2026-12-01 render n=1"]
)
def test_a_malformed_record_line_is_an_error_naming_it(line):
    with pytest.raises(ValueError, match="line 2"):
        sitegen.parse_bench(f"# note\n{line}\n")


def test_the_committed_record_names_only_benchmarks_that_exist():
    runs = sitegen.parse_bench(sitegen.BENCH_RECORD.read_text())
    assert {run.name for run in runs} >= {"extract", "reduce", "grid", "render", "viewer"}
    for run in runs:
        assert (ROOT / "tests" / "benchmarks" / f"{run.name}.py").is_file(), run.name
        assert sitegen.benchmark_summary(ROOT / "tests" / "benchmarks" / f"{run.name}.py")


def test_metrics_files_are_the_ones_dvc_declares():
    files = dict(sitegen.metric_files())
    assert files["train"] == ROOT / "outputs/demo/metrics/train.json"
    assert files["pipeline/dvc.yaml:render@demo"] == ROOT / "outputs/demo/metrics/render.json"
    assert files["shape-bias@cutmix"] == ROOT / "outputs/demo/metrics/shape-bias-cutmix.json"


def test_the_demo_figures_come_from_the_metrics_files(tmp_path):
    train, render = tmp_path / "m" / "train.json", tmp_path / "m" / "render.json"
    train.parent.mkdir()
    train.write_text(json.dumps({"test": {"accuracy": 0.98012, "per_class": {"ring": 1.0}}}))
    files = [("train", train), ("render", render)]
    page = sitegen.demo_metrics_markdown(files, root=tmp_path)
    assert "## `m/train.json`\n\nWritten by the `train` stage." in page
    assert "| `test.accuracy` | 0.9801 |\n| `test.per_class.ring` | 1 |" in page
    assert "Not written yet: `render.json`." in page
    assert "make demo" not in page


def test_without_metrics_the_demo_figures_page_says_to_run_the_demo(tmp_path):
    page = sitegen.demo_metrics_markdown([("train", tmp_path / "train.json")], root=tmp_path)
    assert "run `make demo`" in page
    assert "| metric |" not in page


def test_every_module_of_the_package_has_an_api_page():
    pages = sitegen.api_pages(ROOT / "atlas")
    modules = set()
    for path in (ROOT / "atlas").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    directives = {
        m.group(1) for page in pages.values() if (m := re.search(r"^::: ([\w.]+)$", page, re.M))
    }
    assert directives == modules
    linked = re.findall(r"\]\(([^)]+)\)", pages["reference/SUMMARY.md"])
    assert sorted(f"reference/{link}" for link in linked) == sorted(
        set(pages) - {"reference/SUMMARY.md"}
    )


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
    assert 'name = "activation-atlas"' in (ROOT / "pyproject.toml").read_text()
    assert "`activation-atlas`" in readme and "import atlas" in readme
    for target in re.findall(r"\]\((?!https?:|#)([^)\s]+)\)", readme):
        assert (ROOT / target.split("#")[0]).exists(), target
