"""dvc.yaml lists, for each stage, exactly the dcgan modules its script imports (transitively)
and exactly the params keys of its block, so DVC reruns a stage when its code changes."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from dcgan.config import STAGES

from .conftest import ROOT

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def dcgan_imports(path: Path, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dcgan"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("dcgan")]
        for name in names:
            module = ROOT / name.replace(".", "/")
            # A module, or a package (its __init__ runs on import), and the packages above it.
            parts = name.split(".")
            packages = [ROOT.joinpath(*parts[:i], "__init__.py") for i in range(2, len(parts))]
            for file in (module.with_suffix(".py"), module / "__init__.py", *packages):
                if file.is_file() and str(file) not in seen:
                    seen.add(str(file))
                    dcgan_imports(file, seen)
    return seen


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_stage_deps_list_its_modules(stage):
    script = ROOT / "stages" / f"{stage}.py"
    modules = {str(Path(p).relative_to(ROOT)) for p in dcgan_imports(script)}
    modules.discard("dcgan/__init__.py")
    listed = {d for d in PIPELINE[stage]["deps"] if d.startswith("dcgan/")}
    assert listed == modules
    assert f"stages/{stage}.py" in PIPELINE[stage]["deps"]


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_stage_params_list_its_block(stage):
    expected = {f"{stage}.{f.name}" for f in dataclasses.fields(STAGES[stage])}
    assert set(PIPELINE[stage]["params"]) == expected


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_every_stage_depends_on_the_lock(stage):
    # A dependency upgrade (uv.lock) reruns every stage, so dvc.lock names the lock behind
    # each output.
    assert "uv.lock" in PIPELINE[stage]["deps"]
