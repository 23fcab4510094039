"""The DVC pipeline names what it runs: every atlas module a stage's command imports
(directly or not, inside functions too) is one of its deps, so that `dvc repro` reruns a
stage whenever its code changes."""

import re
from pathlib import Path

import pytest
import yaml
from test_architecture import GRAPH, MODULES, stage_functions

ROOT = Path(__file__).resolve().parents[1]
ASSETS = {  # files a module reads at run time besides Python
    "atlas.reports.pages": "atlas/reports/templates",
    "atlas.viewer.build": "atlas/viewer/static",
}


def stages():
    for path in (ROOT / "dvc.yaml", ROOT / "pipeline" / "dvc.yaml"):
        for name, stage in yaml.safe_load(path.read_text())["stages"].items():
            body = stage.get("do", stage)
            yield f"{path.relative_to(ROOT)}:{name}", body


def modules_run_by(command: str) -> set[str]:
    """The atlas modules a stage's command runs and everything they import: a module run
    with `python -m`, or the CLI (its own imports only: it imports every command's
    function, where only this command's counts) and the command's function."""
    match = re.match(r"python -m ([\w.]+)", command)
    if match:
        start = [match.group(1)]
    else:
        name = re.match(r"atlas ([\w-]+)", command).group(1)
        start = [
            "atlas.config",
            "atlas.errors",
            *(f.rsplit(".", 1)[0] for f in stage_functions()[name]),
        ]
    seen, todo = {"atlas.cli"} if not match else set(), list(start)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += GRAPH[module]
    return seen


@pytest.mark.parametrize(
    ("name", "stage"), list(stages()), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_stage_names_the_modules_it_runs(name, stage):
    deps = [d for d in stage.get("deps", []) if d.startswith("atlas")]
    needed = set()
    for module in modules_run_by(" ".join(stage["cmd"].split())):
        needed.add(str(MODULES[module].relative_to(ROOT)))
        if module in ASSETS:
            needed.add(ASSETS[module] + "/")
    missing = sorted(
        path
        for path in needed
        if not path.endswith("__init__.py")
        and not any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)
    )
    assert not missing, f"{name} runs {missing} without naming them in its deps"


def test_the_check_sees_a_missing_module():
    """The test above fails when a dependency is left out."""
    stage = dict(next(body for n, body in stages() if n.endswith(":reduce")))
    stage["deps"] = [d for d in stage["deps"] if d != "atlas/reduce.py"]
    with pytest.raises(AssertionError, match=r"atlas/reduce\.py"):
        test_every_stage_names_the_modules_it_runs("reduce", stage)
