"""The house's rules, checked on the code: the library computes, dcgan.pipeline orchestrates,
and only the orchestration layer talks to MLflow."""

from __future__ import annotations

import ast

import pytest

from .conftest import ROOT

LIBRARY = sorted(p for p in (ROOT / "dcgan").glob("*.py"))
PIPELINE = sorted((ROOT / "dcgan/pipeline").glob("*.py"))
STAGES = ["prepare", "train", "classifier", "export", "evaluate"]


def imported(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", LIBRARY, ids=[p.name for p in LIBRARY])
def test_library_modules_never_touch_mlflow(path):
    assert not {n for n in imported(path) if n.split(".")[0] == "mlflow"}


def test_only_the_pipeline_imports_mlflow():
    users = {p.name for p in PIPELINE if any(n.split(".")[0] == "mlflow" for n in imported(p))}
    assert users == {"tracking.py", "registry.py"}  # the run client and the model registry


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_one_entry_point_named_run(stage):
    module = ROOT / "dcgan/pipeline" / f"{stage}.py"
    functions = {
        n.name for n in ast.parse(module.read_text()).body if isinstance(n, ast.FunctionDef)
    }
    assert "run" in functions
    cli = (ROOT / "stages" / f"{stage}.py").read_text()
    assert f"from dcgan.pipeline import {stage}" in cli and f"{stage}.run(" in cli
