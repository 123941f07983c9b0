"""The house's rules, checked on the code: the library computes, dcgan.pipeline orchestrates,
and only the orchestration layer talks to MLflow."""

from __future__ import annotations

import ast

import pytest

from .conftest import ROOT
from .imports import MODULES, dcgan_imports

UPPER = (
    "dcgan.tracking",
    "dcgan.pipeline",
    "dcgan.stack",
    "dcgan.sweep",
    "dcgan.cli",
)  # record, orchestration, UI


# The library: every module outside the record keeping, the orchestration and the UI.
LIBRARY = sorted(p for name, p in MODULES.items() if not name.startswith(UPPER))
CODE = sorted((ROOT / "dcgan").rglob("*.py")) + sorted((ROOT / "stages").glob("*.py"))
STAGES = ["prepare", "train", "classifier", "export", "evaluate", "animate", "site"]


def imported(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", LIBRARY, ids=[str(p.relative_to(ROOT)) for p in LIBRARY])
def test_library_modules_never_touch_mlflow(path):
    assert not {n for n in imported(path) if n.split(".")[0] == "mlflow"}


def test_only_the_record_keeping_imports_mlflow():
    users = {
        str(p.relative_to(ROOT))
        for p in CODE
        if any(n.split(".")[0] == "mlflow" for n in imported(p))
    }
    # where the store is, how files find their runs, the retry budget (MLflow's error
    # codes), the run client, the dead-process watcher, the ONNX model's packaging, the model
    # registry, the served model's loader, a sweep's runs nested
    assert users == {
        f"dcgan/tracking/{name}.py"
        for name in (
            "store",
            "lineage",
            "retry",
            "tracker",
            "watcher",
            "packaging",
            "registry",
            "serving",
            "sweeps",
        )
    }


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_one_entry_point_named_run(stage):
    module = ROOT / "dcgan/pipeline" / f"{stage}.py"
    functions = {
        n.name for n in ast.parse(module.read_text()).body if isinstance(n, ast.FunctionDef)
    }
    assert "run" in functions
    cli = (ROOT / "stages" / f"{stage}.py").read_text()
    assert f"from dcgan.pipeline import {stage}" in cli and f"{stage}.run(" in cli


def _output_file_names() -> set[str]:
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    names = set()
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                path = next(iter(out)) if isinstance(out, dict) else out
                if "." in path.rsplit("/", 1)[-1]:  # files; folders are named by their users
                    names.add(path.rsplit("/", 1)[-1])
    return names


@pytest.mark.parametrize("path", CODE, ids=[str(p.relative_to(ROOT)) for p in CODE])
def test_no_module_spells_an_output_file_name(path):
    """dvc.yaml names every output; the code gets it from the stage's command line (or, for
    the CLI's defaults, reads dvc.yaml), so a rename in dvc.yaml cannot split the two."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    strings = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]
    names = _output_file_names()
    assert names and not [s for s in strings for name in names if name in s]


def test_the_license_file_is_the_license_pyproject_names():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_pre_commit_runs_the_linters_run_test_runs():
    """The hooks make the checks `./run test` makes, with the ruff uv.lock pins (.venv's)."""
    import shlex

    import yaml

    hooks = [
        hook
        for repo in yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
        for hook in repo["hooks"]
    ]
    commands = [shlex.split(hook["entry"]) for hook in hooks]
    assert all(c[0] == ".venv/bin/ruff" for c in commands), commands
    hooked = {" ".join(["ruff", *(w for w in c[1:] if w != "--force-exclude")]) for c in commands}
    run_test = (ROOT / "run").read_text().split("\n  test)\n", 1)[1].split(";;", 1)[0]
    linted = {line.strip().removesuffix(" .") for line in run_test.splitlines()}
    assert hooked == {"ruff check", "ruff format --check"} and hooked <= linted


def test_the_import_graph_has_no_circle():
    graph = {name: dcgan_imports(name) for name in MODULES}
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        path.append(name)
        for other in sorted(graph[name]):
            assert other not in path, "import circle: " + " -> ".join(
                [*path[path.index(other) :], other]
            )
            if other not in done:
                visit(other)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            visit(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not n.startswith(UPPER)))
def test_the_library_never_imports_upward(name):
    """The library computes; the pipeline, the stack and the CLI call it, never the reverse."""
    assert not {m for m in dcgan_imports(name) if m.startswith(UPPER)}


# dcgan's folders from the ground up; the modules at the top of dcgan/ (config, contract,
# errors, files, layout, data, sources, saving) are the ground floor. A module imports from
# its own folder and the floors below, never from a floor above or a neighbour on its own.
FLOORS = [
    ("dcgan",),
    ("dcgan.pictures",),
    ("dcgan.gan",),
    ("dcgan.quality", "dcgan.shipping"),
    ("dcgan.machine",),
    ("dcgan.tracking",),
    ("dcgan.stack",),
    ("dcgan.sweep",),
    ("dcgan.pipeline",),
    ("dcgan.cli",),
]
FLOOR = {folder: i for i, floor in enumerate(FLOORS) for folder in floor}


def folder_of(name: str) -> str:
    """``dcgan.gan`` for dcgan.gan.models and dcgan.gan itself; ``dcgan`` for dcgan.config."""
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    return ".".join(package.split(".")[:2])


def test_every_folder_has_a_floor_and_says_what_it_is_for():
    folders = {folder_of(name) for name in MODULES}
    assert folders == set(FLOOR)
    for folder in folders - {"dcgan"}:
        init = MODULES[folder]
        assert (ast.get_docstring(ast.parse(init.read_text())) or "").strip(), init


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_from_its_folder_and_the_floors_below(name):
    here = folder_of(name)
    above = {
        m: folder_of(m)
        for m in dcgan_imports(name)
        if folder_of(m) != here and FLOOR[folder_of(m)] >= FLOOR[here]
    }
    assert not above, f"{name} imports from a floor that is not below its own: {above}"


RECORD = sorted(n for n in MODULES if n.startswith("dcgan.tracking"))


@pytest.mark.parametrize("name", RECORD)
def test_the_record_keeping_never_imports_the_stages_or_the_cli(name):
    """dcgan.tracking sits between the library and the stages: the stages call it."""
    assert not {m for m in dcgan_imports(name) if m.startswith(UPPER[1:])}


LONG_MODULE, LONG_FUNCTION = 300, 60


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_long_module_or_function_says_why(name):
    """A module over 300 lines, or a function over 60, usually holds two jobs: split it, or
    say at its top why not ("Over 300 lines ..." in the module's docstring; a comment on
    the function's length in its first lines)."""
    path = MODULES[name]
    text = path.read_text()
    tree = ast.parse(text)
    if len(text.splitlines()) > LONG_MODULE:
        assert "Over 300 lines" in (ast.get_docstring(tree) or ""), f"{name}: say why"
    lines = text.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno >= LONG_FUNCTION:
            has_doc = ast.get_docstring(node) is not None and len(node.body) > 1
            start = node.body[1 if has_doc else 0].lineno  # the first line after a docstring
            head = "\n".join(lines[node.lineno - 1 : start + 3]).lower()
            assert "# " in head and ("long" in head or "over 60" in head), (
                f"{name}.{node.name} is {node.end_lineno - node.lineno + 1} lines: split it, "
                "or say why at its top"
            )
