"""Every stage has one shape: ``run(cfg, paths)``, its paths a dataclass of dcgan.pipeline.paths
whose fields are its script's options, and dvc.yaml's cmd gives each of them a value."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from dcgan.config import STAGES as BLOCKS
from dcgan.config import NoParams
from dcgan.layout import stage_args as cmd_args
from dcgan.pipeline import paths
from dcgan.pipeline.shell import option, stage_args

from .conftest import ROOT, paths_class
from .test_house import STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_runs_with_its_config_and_its_paths(stage):
    tree = ast.parse((ROOT / "dcgan/pipeline" / f"{stage}.py").read_text())
    (run,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run"]
    assert [a.arg for a in run.args.args] == ["cfg", "paths"]
    assert ast.unparse(run.args.args[1].annotation) == paths_class(stage).__name__
    config = BLOCKS[stage].__name__ if stage in BLOCKS else NoParams.__name__
    assert ast.unparse(run.args.args[0].annotation) == config


@pytest.mark.parametrize("stage", STAGES)
def test_the_cmd_gives_each_path_the_stage_takes_and_no_other(stage):
    fields = dataclasses.fields(paths_class(stage))
    given = set(cmd_args(stage, ROOT))
    expected = {f.name for f in fields} | ({"params"} if stage in BLOCKS else set())
    assert given == expected
    assert all(f.metadata["kind"] in (paths.READ, paths.WRITTEN) for f in fields)


def test_the_shell_parses_the_paths_and_removes_leftovers_beside_outputs_only(
    tmp_path, monkeypatch
):
    (tmp_path / "samples").mkdir()
    beside_input = tmp_path / ".training.json.a1b2.tmp"
    beside_output = tmp_path / ".progress.a1b2.tmp.gif"
    for leftover in (beside_input, beside_output):
        leftover.write_bytes(b"half")
    argv = ["animate"]
    for name, value in {
        "samples": "samples",
        "generator": "generator.keras",
        "training": "training.json",
        "out": "progress.gif",
    }.items():
        argv += [option(name), str(tmp_path / value)]
    monkeypatch.setattr("sys.argv", argv)
    cfg, got, params = stage_args("animate", "animate", paths.AnimatePaths)
    assert cfg == NoParams() and params is None
    assert got == paths.AnimatePaths(
        samples=tmp_path / "samples",
        generator=tmp_path / "generator.keras",
        training=tmp_path / "training.json",
        out=tmp_path / "progress.gif",
    )
    assert got.written() == [tmp_path / "progress.gif"]
    assert beside_input.exists() and not beside_output.exists()


def test_a_missing_path_stops_the_script_naming_its_option(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["export", "--params", "params.yaml", "--out", "g.onnx"])
    with pytest.raises(SystemExit) as info:
        stage_args("export", "export", paths.ExportPaths)
    assert info.value.code == 2
    assert "the following arguments are required: --generator, --training" in (
        capsys.readouterr().err
    )


def test_paths_become_paths_and_a_stage_may_do_without_an_optional_one():
    got = paths.ExportPaths(generator="g.keras", training="t.json", out="g.onnx")
    assert got.generator.suffix == ".keras" and got.lock is None
    assert got.written() == [got.out]
