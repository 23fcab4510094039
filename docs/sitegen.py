"""The documentation pages that are made from the files holding their facts.

`docs/gen_pages.py` writes them into the site at build time (mkdocs-gen-files); the
functions here only return Markdown, so the tests call them directly:

- the configuration reference, from the pydantic sections of :class:`atlas.config.Config`;
- the benchmarks page, one dated table per run, from the BENCH lines recorded in
  ``docs/benchmarks/results.txt``;
- the demo's figures, from the metrics files the DVC pipeline declares (when ``make demo``
  has written them);
- one API reference page per module of the ``atlas`` package, found by walking its folders.
"""

from __future__ import annotations

import ast
import inspect
import json
import pkgutil
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_RECORD = ROOT / "docs" / "benchmarks" / "results.txt"
BENCHMARKS = ROOT / "tests" / "benchmarks"


# --- configuration ------------------------------------------------------------------------


def config_sections(config_type: type | None = None) -> list[tuple[str, type]]:
    """The sections of a config type in file order: ``(key, section model)``."""
    if config_type is None:
        from atlas.config import Config

        config_type = Config
    sections = []
    for name, info in config_type.model_fields.items():
        options = [info.annotation, *typing.get_args(info.annotation)]
        model = next(t for t in options if isinstance(t, type) and hasattr(t, "model_fields"))
        sections.append((name, model))
    return sections


def optional_sections(config_type: type | None = None) -> set[str]:
    """The sections whose default is null (left out of a config unless a stage needs them)."""
    if config_type is None:
        from atlas.config import Config

        config_type = Config
    return {name for name, info in config_type.model_fields.items() if info.get_default() is None}


def type_text(annotation: Any) -> str:
    """A field's type as a reader writes it: ``int | None``, ``one of 'a', 'b'``."""
    if annotation is None or annotation is type(None):
        return "null"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(a) for a in args)}]"
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}


def bounds_text(metadata: list[Any]) -> str:
    """The numeric bounds pydantic keeps in a field's metadata, e.g. ``> 0, < 1``."""
    found = []
    for item in metadata:
        for attr, sign in _BOUNDS.items():
            value = getattr(item, attr, None)
            if value is not None:
                found.append(f"{sign} {value}")
    return ", ".join(found)


def default_text(info: Any) -> str:
    """A field's default as YAML would spell it; ``required`` when there is none."""
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_markdown(config_type: type | None = None) -> str:
    """The configuration reference: every section and key with its type, bounds, default
    and description, read from the pydantic models."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `atlas/config.py` when the site is built, so it lists every key the "
        "code accepts. A config file is YAML with one mapping per section below; any key "
        "may also be set on the command line as `-s section.key=value` (the value is read "
        "as YAML). Unknown keys and values of the wrong type are errors that name the key.",
        "`atlas init` writes a config with every key present, the ones at their default "
        "commented out.",
        "",
    ]
    optional = optional_sections(config_type)
    for name, model in config_sections(config_type):
        doc = inspect.cleandoc(model.__doc__ or "")
        lines += [f"## `{name}`", ""]
        if doc:
            lines += [doc, ""]
        if name in optional:
            lines += [
                "This section has no default: a config may leave it out, and a stage that "
                "reads it then stops with a one-line error saying what to add.",
                "",
            ]
        lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        for key, info in model.model_fields.items():
            kind = type_text(info.annotation)
            bounds = bounds_text(info.metadata)
            if bounds:
                kind += f" ({bounds})"
            description = info.description or ""
            lines.append(
                f"| `{name}.{key}` | {_cell(kind)} | `{_cell(default_text(info))}` "
                f"| {_cell(description)} |"
            )
        lines.append("")
    return "\n".join(lines)


def undocumented_keys(config_type: type | None = None) -> list[str]:
    """Keys whose field has no description (listed all the same on the page)."""
    return [
        f"{name}.{key}"
        for name, model in config_sections(config_type)
        for key, info in model.model_fields.items()
        if not info.description
    ]


# --- benchmarks ---------------------------------------------------------------------------

_RUN = re.compile(r"^(\d{4}-\d{2}-\d{2})\s+BENCH\s+(\S+)\s*(.*)$")


@dataclass(frozen=True)
class BenchRun:
    """One benchmark run: the day it ran, the benchmark's name, its fields in order."""

    date: str
    name: str
    fields: dict[str, str]
    note: str = ""


def parse_bench(text: str) -> list[BenchRun]:
    """The runs recorded in a results file, in file order.

    A run is one line ``YYYY-MM-DD BENCH name key=value ...``; ``#`` lines directly above
    it are its note, blank lines end a note. Any other line is an error naming it, so a
    mistyped record cannot vanish from the page."""
    runs: list[BenchRun] = []
    note: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            note = []
        elif line.startswith("#"):
            note.append(line.lstrip("#").strip())
        elif match := _RUN.match(line):
            date, name, rest = match.groups()
            fields = {}
            for item in rest.split():
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise ValueError(f"line {number}: {item!r} is not key=value")
                fields[key] = value
            runs.append(BenchRun(date, name, fields, " ".join(note)))
            note = []
        else:
            raise ValueError(f"line {number}: not 'YYYY-MM-DD BENCH name key=value ...': {raw}")
    return runs


def benchmark_summary(path: Path) -> str:
    """The first paragraph of a benchmark script's docstring, or ``""``."""
    if not path.is_file():
        return ""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ").strip().removeprefix("Benchmark: ")
    return summary[:1].upper() + summary[1:]


def benchmarks_markdown(runs: list[BenchRun], scripts: Path = BENCHMARKS) -> str:
    """The benchmarks page: per benchmark, its purpose (from its docstring) and one dated
    table per run, newest first."""
    lines = [
        "# Benchmarks",
        "",
        "Each script in `tests/benchmarks/` measures one part against the peer it replaces, "
        "in the same run, and prints its last line as `BENCH <name> key=value ...`. Every run "
        "recorded in [`docs/benchmarks/results.txt`](benchmarks/results.txt) is one table "
        "below, made from that line when the site is built. The machine is this project's: "
        "2 shared CPU cores, no GPU, so rates move with the load; the ratios against the "
        "peer measured in the same run move less.",
        "",
        "To record a run, append its line with the day it ran:",
        "",
        "```sh",
        'echo "$(date +%F) $(python tests/benchmarks/render.py | tail -n 1)" \\',
        "    >> docs/benchmarks/results.txt",
        "```",
        "",
        "A `#` line directly above a run is shown as its note (what differed in that run).",
        "",
    ]
    names = list(dict.fromkeys(run.name for run in runs))
    for name in names:
        script = scripts / f"{name}.py"
        lines += [f"## {name}", ""]
        summary = benchmark_summary(script)
        if summary:
            lines += [summary, ""]
        lines += [f"`python tests/benchmarks/{name}.py`", ""]
        mine = [(run.date, order, run) for order, run in enumerate(runs) if run.name == name]
        for _, _, run in sorted(mine, key=lambda item: item[:2], reverse=True):
            lines += [f"### {name}, {run.date}", ""]
            if run.note:
                lines += [run.note, ""]
            lines += ["| field | value |", "| --- | --- |"]
            lines += [f"| `{key}` | {_cell(value)} |" for key, value in run.fields.items()]
            lines.append("")
    return "\n".join(lines)


# --- the demo's figures -------------------------------------------------------------------


def metric_files(root: Path = ROOT) -> list[tuple[str, Path]]:
    """Every metrics file the DVC pipelines declare: ``(stage, path)``, resolved by DVC
    itself (``foreach`` stages included)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            (stage.addressing, Path(out.fs_path))
            for stage in repo.index.stages
            for out in stage.metrics
        ]


def flatten(values: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested metrics as ``(dotted key, value)`` rows in the file's order."""
    if isinstance(values, dict):
        rows = []
        for key, value in values.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [(prefix, values)]


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_value_text(v) for v in value)
    return "–" if value is None else str(value)


def demo_metrics_markdown(files: list[tuple[str, Path]], root: Path = ROOT) -> str:
    """The demo's figures page: one table per metrics file that exists; where none do,
    the one command that writes them."""
    lines = [
        "# The demo's figures",
        "",
        "Read when the site is built from the metrics files the DVC pipeline declares "
        "(`metrics:` in `dvc.yaml` and `pipeline/dvc.yaml`); `dvc metrics show` prints the "
        "same. What they measure is told on [the demo's page](demo.md).",
        "",
    ]
    present = [(stage, path) for stage, path in files if path.is_file()]
    if not present:
        lines += [
            '!!! note "No figures yet"',
            "",
            "    This checkout has not run the demo: run `make demo` (about ten minutes on "
            "two cores), then build the site again (`make docs`).",
            "",
        ]
    for stage, path in present:
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        lines += [f"## `{shown}`", "", f"Written by the `{stage}` stage.", ""]
        lines += ["| metric | value |", "| --- | --- |"]
        rows = flatten(json.loads(path.read_text()))
        lines += [f"| `{_cell(key)}` | {_cell(_value_text(value))} |" for key, value in rows]
        lines.append("")
    missing = [path for _, path in files if not path.is_file()]
    if present and missing:
        lines += ["Not written yet: " + ", ".join(f"`{p.name}`" for p in missing) + ".", ""]
    return "\n".join(lines)


# --- API reference ------------------------------------------------------------------------


def package_modules(package_dir: Path, package: str = "atlas") -> list[str]:
    """Every module and subpackage under a package folder, found on disk (nothing is
    imported), sorted by dotted name."""
    return sorted(module for module, _ in _module_tree(package_dir, package))


def _module_tree(package_dir: Path, package: str) -> list[tuple[str, bool]]:
    """``(module, is a package)`` in navigation order: a package, its plain modules, then
    its subpackages, each followed by its own."""
    infos = sorted(pkgutil.iter_modules([str(package_dir)]), key=lambda i: (i.ispkg, i.name))
    found = [(package, True)]
    for info in infos:
        name = f"{package}.{info.name}"
        if info.ispkg:
            found += _module_tree(package_dir / info.name, name)
        else:
            found.append((name, False))
    return found


def api_pages(package_dir: Path, package: str = "atlas") -> dict[str, str]:
    """One reference page per module (``reference/atlas/x.md``; a package's is its
    folder's ``index.md``) with its mkdocstrings directive, plus ``reference/SUMMARY.md``,
    the section's navigation (literate-nav): each subpackage a section that opens with its
    own page."""
    pages, nav = {}, []
    for module, is_package in _module_tree(package_dir, package):
        parts = module.split(".")
        path = "/".join(parts) + ("/index.md" if is_package else ".md")
        pages[f"reference/{path}"] = f"# `{module}`\n\n::: {module}\n"
        level = len(parts) - 1
        if module == package:
            nav.append(f"* [{module}]({path})")
            continue
        if is_package:
            nav.append(f"{'    ' * (level - 1)}* {parts[-1]}")
        nav.append(f"{'    ' * (level if is_package else level - 1)}* [{module}]({path})")
    pages["reference/SUMMARY.md"] = "\n".join(nav) + "\n"
    return pages
