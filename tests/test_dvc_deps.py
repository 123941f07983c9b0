"""dvc.yaml lists, for each stage, exactly the dcgan modules its script imports (transitively)
and exactly the params keys of its block, so DVC reruns a stage when its code changes."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from dcgan.config import STAGES

from .conftest import ROOT
from .imports import files_run_by

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_stage_deps_list_its_modules(stage):
    script = ROOT / "stages" / f"{stage}.py"
    modules = {str(p.relative_to(ROOT)) for p in files_run_by(script)}
    modules.discard("dcgan/__init__.py")
    listed = {d for d in PIPELINE[stage]["deps"] if d.startswith("dcgan/")}
    assert listed == modules
    assert f"stages/{stage}.py" in PIPELINE[stage]["deps"]


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_stage_params_list_its_block(stage):
    # animate and site have nothing to set: no block in params.yaml, no params in dvc.yaml.
    fields = dataclasses.fields(STAGES[stage]) if stage in STAGES else ()
    assert set(PIPELINE[stage].get("params", [])) == {f"{stage}.{f.name}" for f in fields}


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_every_stage_depends_on_the_lock(stage):
    # A dependency upgrade (uv.lock) reruns every stage, so dvc.lock names the lock behind
    # each output.
    assert "uv.lock" in PIPELINE[stage]["deps"]


def _declared(stage: str, kinds=("outs", "metrics", "plots")) -> list[str]:
    entries = [o for kind in kinds for o in PIPELINE[stage].get(kind, [])]
    return [next(iter(o)) if isinstance(o, dict) else o for o in entries]


@pytest.mark.parametrize("stage", list(PIPELINE))
def test_every_file_a_stage_reads_or_writes_is_on_its_command_line(stage):
    """dvc.yaml is the one place where a path is named: the stage gets each one in its cmd."""
    from dcgan.layout import stage_args

    given = set(stage_args(stage, ROOT).values())
    assert set(_declared(stage)) <= given
    # uv.lock is the environment every stage runs in; only train and export record it.
    inputs = [
        d for d in PIPELINE[stage]["deps"] if not d.startswith(("dcgan/", "stages/", "uv.lock"))
    ]
    # A folder on the command line covers the files in it that the stage lists (web/*).
    for path in inputs:
        assert any(path == g or path.startswith(g.rstrip("/") + "/") for g in given), path


@pytest.mark.slow  # a git repository and a few dvc commands
@pytest.mark.parametrize(
    ("edited", "function", "changed"),
    [
        ("dcgan/gan/models.py", "def build_generator(", {"train", "export", "evaluate"}),
        ("dcgan/sources.py", "def _gunzip_idx(", {"prepare"}),
        ("dcgan/saving.py", "def load_model(", {"train", "classifier", "export", "evaluate"}),
    ],
)
def test_a_library_edit_marks_only_the_stages_that_use_it(tmp_path, edited, function, changed):
    import json

    from .conftest import make_repo, run

    repo, env = make_repo(tmp_path / "repo", {})
    # Placeholder outputs, then `dvc commit` records today's deps without running anything.
    for stage in PIPELINE:
        for out in _declared(stage):
            path = repo / out
            path.parent.mkdir(parents=True, exist_ok=True)
            if "." in path.name:
                path.write_text("{}\n")
            else:
                path.mkdir(exist_ok=True)
                (path / "placeholder").write_text("x")
    run(["dvc", "commit", "-f", "-q"], repo, env)
    assert json.loads(run(["dvc", "status", "--json"], repo, env)) == {}
    source = repo / edited
    text = source.read_text()
    assert function in text
    source.write_text(text.replace(function, f"# an edit\n{function}", 1))
    status = json.loads(run(["dvc", "status", "--json"], repo, env))
    assert set(status) == changed
