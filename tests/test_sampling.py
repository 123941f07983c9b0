"""`dcgan sample`: onnxruntime only, never TensorFlow; one-line errors for bad files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dcgan.cli import main
from dcgan.errors import DcganError
from dcgan.sampling import generate, load_session


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    import onnx

    from dcgan.export import generator_to_onnx
    from dcgan.models import build_generator

    path = tmp_path_factory.mktemp("onnx") / "generator.onnx"
    onnx.save(generator_to_onnx(build_generator(100), opset=17), str(path))
    return path


def test_sample_cli_never_imports_tensorflow(onnx_file, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from dcgan.cli import main
        code = main(["sample", "--model", r"{onnx_file}", "-n", "64", "--seed", "0",
                     "--out", r"{tmp_path / "grid.png"}", "--npy", r"{tmp_path / "s.npy"}"])
        assert code == 0, code
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not heavy, heavy
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    images = np.load(tmp_path / "s.npy")
    assert images.shape == (64, 28, 28, 1) and images.dtype == np.float32
    assert np.abs(images).max() <= 1.0
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_sample_is_seeded(onnx_file, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert (
            main(
                [
                    "sample",
                    "--model",
                    str(onnx_file),
                    "-n",
                    "4",
                    "--seed",
                    str(seed),
                    "--npy",
                    str(tmp_path / f"{name}.npy"),
                ]
            )
            == 0
        )
    a, b, c = (np.load(tmp_path / f"{n}.npy") for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "is not a loadable ONNX model"),
        (lambda p: p.write_text("definitely not a protobuf"), "is not a loadable ONNX model"),
    ],
    ids=["missing", "empty", "not onnx"],
)
def test_bad_model_files(tmp_path, capsys, make, message):
    path = tmp_path / "generator.onnx"
    make(path)
    code = main(["sample", "--model", str(path), "--out", str(tmp_path / "g.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "g.png").exists()


def test_truncated_model(onnx_file, tmp_path, capsys):
    path = tmp_path / "generator.onnx"
    path.write_bytes(onnx_file.read_bytes()[:5000])
    assert main(["sample", "--model", str(path), "--out", str(tmp_path / "g.png")]) == 2
    assert "is not a loadable ONNX model" in capsys.readouterr().err


def test_wrong_z_width(onnx_file):
    with pytest.raises(DcganError, match=r"z has shape \(2, 64\) but the model takes \(N, 100\)"):
        generate(load_session(onnx_file), np.zeros((2, 64), np.float32))


def test_nothing_to_write(onnx_file, capsys):
    assert main(["sample", "--model", str(onnx_file)]) == 2
    assert "pass --out" in capsys.readouterr().err
