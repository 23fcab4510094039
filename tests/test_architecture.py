"""The shape of the package: imports run one way, stages stand apart, the demo is on top.

Read from the source with ``ast`` (imports inside functions count too), so a change that
bends the shape fails here before anyone has to notice it in a drawing.
"""

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "atlas"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The atlas modules ``name`` imports (the module itself where a name is imported from
    a package's ``__init__``)."""
    tree = ast.parse(MODULES[name].read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module]
            targets += [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in MODULES and t != name}
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def is_stage(name: str) -> bool:
    return name.startswith("atlas.stages.")


def test_no_import_runs_in_a_circle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target] if target in path else [name, target]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_no_stage_imports_another_stage():
    for name, targets in GRAPH.items():
        if is_stage(name):
            siblings = {t for t in targets if is_stage(t)}
            assert not siblings, f"{name} imports the stage(s) {sorted(siblings)}"


def test_only_the_cli_sits_above_the_stages_and_the_demo():
    for name, targets in GRAPH.items():
        if name == "atlas.cli":
            continue
        assert "atlas.cli" not in targets, name
        if not is_stage(name) and name != "atlas.stages":
            above = {t for t in targets if is_stage(t)}
            assert not above, f"{name} imports the stage(s) {sorted(above)}"
        if not name.startswith("atlas.demo"):
            demo = {t for t in targets if t.startswith("atlas.demo")}
            assert not demo, f"generic {name} imports the demo's {sorted(demo)}"


def test_only_the_store_package_opens_zarr():
    for name, path in MODULES.items():
        if name.startswith("atlas.store"):
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(import zarr|from zarr)", text, re.M), (
            f"{name} opens Zarr itself; ask atlas.store"
        )


def stage_functions() -> dict[str, str]:
    """CLI command -> the one ``atlas.stages`` (or demo) function its body imports."""
    tree = ast.parse(MODULES["atlas.cli"].read_text())
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        commands = [
            d.args[0].value
            for d in node.decorator_list
            if isinstance(d, ast.Call)
            and getattr(d.func, "attr", "") == "command"
            and d.args
            and isinstance(d.args[0], ast.Constant)
        ]
        if not commands:
            continue
        called = [
            f"{n.module}.{alias.name}"
            for n in ast.walk(node)
            if isinstance(n, ast.ImportFrom)
            and n.module
            and (n.module.startswith("atlas.stages.") or n.module.startswith("atlas.demo."))
            for alias in n.names
        ]
        found[commands[0]] = called
    return found


def test_every_pipeline_stage_is_one_library_function_named_in_the_readme():
    demo = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()
    reusable = yaml.safe_load((ROOT / "pipeline" / "dvc.yaml").read_text())["stages"].values()
    cmds = [stage["do"]["cmd"] if "do" in stage else stage["cmd"] for stage in demo]
    cmds += [stage["do"]["cmd"] for stage in reusable]
    commands = {m.group(1) for cmd in cmds if (m := re.match(r"atlas ([\w-]+)", cmd))}
    assert {"extract", "reduce", "grid", "render", "viewer"} <= commands
    functions = stage_functions()
    readme = (ROOT / "README.md").read_text()
    fits = readme.split("## How it fits together", 1)[1]
    for command in sorted(commands):
        called = functions[command]
        assert len(called) == 1, f"atlas {command} calls {called}: one stage function, please"
        assert f"`{called[0]}`" in fits, f"README's 'How it fits together' lacks {called[0]}"


IMPORTS_OF = """
import sys
import {module}
print(" ".join(m for m in ("torch", "torchvision") if m in sys.modules))
"""


def test_stages_import_only_the_heavy_libraries_they_use():
    """Each stage is its own process: torch costs seconds to import and torchvision more
    (it loads torch._dynamo). Stages that only read stores import neither; stages that run
    a model other than a torchvision one do not import torchvision."""
    import subprocess
    import sys

    def loaded(module):
        code = IMPORTS_OF.format(module=module)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return set(out.stdout.split())

    for module in ("atlas.stages.grid", "atlas.stages.reduce", "atlas.stages.align"):
        assert loaded(module) == set(), module
    for module in ("atlas.stages.train", "atlas.stages.extract", "atlas.stages.attribute"):
        assert loaded(module) == {"torch"}, module
