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
