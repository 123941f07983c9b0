"""Atomic writes: whole or nothing, with the permissions any other write would give."""

from __future__ import annotations

import os
import zipfile

import pytest

from dcgan.files import atomic_dir, atomic_path, write_json, write_zip


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_files_and_folders_get_the_umask_mode(tmp_path, umask_027):
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "f").write_text("x")
    (tmp_path / "plain").write_text("x")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (
        tmp_path / "plain"
    ).stat().st_mode & 0o777
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o750


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.png") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer died")
    assert list(tmp_path.iterdir()) == []


def test_write_zip_is_a_function_of_its_entries(tmp_path):
    write_zip(tmp_path / "a.zip", {"x.npy": b"123", "y.json": b"{}"})
    write_zip(tmp_path / "b.zip", {"x.npy": b"123", "y.json": b"{}"})
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["x.npy", "y.json"] and zf.read("x.npy") == b"123"
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_leftovers_of_a_killed_writer_are_removed_and_nothing_else(tmp_path):
    from dcgan.files import remove_leftovers

    models, ckpt = tmp_path / "models", tmp_path / "checkpoints"
    models.mkdir()
    ckpt.mkdir()
    left = [
        models / ".generator.k3j9x.tmp.keras",  # atomic_path of models/generator.keras
        models / ".keras-ab12cd",  # dcgan.saving's plain save, a folder
        ckpt / ".train.q8w7e6.tmp",  # atomic_dir of checkpoints/train
    ]
    left[0].write_bytes(b"half a model")
    left[1].mkdir()
    (left[1] / "model.keras").write_bytes(b"x")
    left[2].mkdir()
    (left[2] / "state.npz").write_bytes(b"x")
    kept = [
        models / "generator.keras",
        models / ".discriminator.zz.tmp.keras",  # another output's: not named here
        models / ".gitignore",
        ckpt / "train" / "state.json",
    ]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep")

    removed = remove_leftovers(models / "generator.keras", ckpt / "train", None)

    assert sorted(removed) == sorted(left)
    assert not any(path.exists() for path in left)
    assert all(path.exists() for path in kept)


def test_a_stage_removes_the_leftovers_of_its_killed_predecessor(tmp_path):
    """prepare, started as dvc.yaml starts it, finds a half-written output folder of a
    prepare that was killed, and removes it."""
    import subprocess

    from .conftest import ROOT, stage_command, write_params

    params = write_params(tmp_path / "params.yaml", prepare={"source": "sample"})
    out = tmp_path / "data/prepared"
    leftover = out.parent / ".prepared.x1y2z3.tmp"
    leftover.mkdir(parents=True)
    (leftover / "x_train.npy").write_bytes(b"half")
    cmd = stage_command("prepare", tmp_path, params=params)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "x_train.npy").is_file() and not leftover.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["prepared"]
