"""`dcgan sample`: onnxruntime only, never TensorFlow; one-line errors for bad files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dcgan.cli import main
from dcgan.errors import DcganError
from dcgan.shipping.sampling import generate, load_session


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    import onnx

    from dcgan.gan.models import build_generator
    from dcgan.shipping.export import generator_to_onnx

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
        code = main(["sample", "--model", r"{onnx_file}", "--interpolate", "5", "-n", "2",
                     "--out", r"{tmp_path / "walk.png"}"])
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


def test_noise_chunks_are_the_rows_of_one_draw():
    from dcgan.contract import draw_noise, noise_chunks

    chunks = list(noise_chunks(23, 5, seed=3, chunk=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 2]
    assert np.array_equal(np.concatenate(chunks), draw_noise(23, 5, seed=3))


def test_npy_streamed_in_chunks_equals_one_batch(onnx_file, tmp_path, monkeypatch):
    import dcgan.shipping.sampling
    from dcgan.contract import draw_noise

    monkeypatch.setattr("dcgan.cli.sample.SAMPLE_CHUNK", 7)
    batches = []

    def counted(session, z):
        batches.append(len(z))
        return generate(session, z)

    monkeypatch.setattr(dcgan.shipping.sampling, "generate", counted)
    out = tmp_path / "s.npy"
    assert (
        main(["sample", "--model", str(onnx_file), "-n", "20", "--seed", "4", "--npy", str(out)])
        == 0
    )
    assert batches == [7, 7, 6]  # streamed, never one batch of 20
    expected = generate(load_session(onnx_file), draw_noise(20, 100, seed=4))
    assert np.array_equal(np.load(out), expected)


def test_a_grid_too_large_to_draw_is_refused_before_any_work(onnx_file, tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = main(["sample", "--model", str(onnx_file), "-n", "4097", "--out", str(out)])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "too many images for one grid (at most 4096)" in errors[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("flag", "name", "message"),
    [
        ("--out", "grid.jpg", "--out writes PNG only; give the file the .png suffix"),
        ("--out", "grid", "--out writes PNG only; give the file the .png suffix"),
        ("--npy", "images.npz", "--npy writes NPY only; give the file the .npy suffix"),
    ],
)
def test_a_suffix_the_file_would_not_match_is_refused(tmp_path, capsys, flag, name, message):
    """The grid is always a PNG and the array a .npy: a file named otherwise would lie."""
    out = tmp_path / name
    assert main(["sample", "--model", str(tmp_path / "g.onnx"), flag, str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {flag} {out}: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_npy_larger_than_the_free_disk_is_refused(onnx_file, tmp_path, capsys):
    out = tmp_path / "huge.npy"
    code = main(["sample", "--model", str(onnx_file), "-n", str(10**12), "--npy", str(out)])
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "GB are free there; lower -n" in errors[0]
    assert list(tmp_path.iterdir()) == []


def _peak_rss_mb(onnx_file, tmp_path, n: int) -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of this pytest
    # process (TensorFlow loaded) would report the parent's peak.
    script = textwrap.dedent(f"""
        import re
        from dcgan.cli import main
        assert main(["sample", "--model", r"{onnx_file}", "-n", "{n}",
                     "--npy", r"{tmp_path / f"{n}.npy"}"]) == 0
        status = open("/proc/self/status").read()
        print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return float(proc.stdout.split()[-1])


@pytest.mark.slow  # generates 60 000 images
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_large_n_is_streamed_in_bounded_memory(onnx_file, tmp_path):
    """-n 10 000 000 reached 11.8 GB within a minute when every image was held at once. Here
    60 000 images (188 MB of pixels) must cost no more memory than one chunk's worth."""
    small = _peak_rss_mb(onnx_file, tmp_path, 4096)
    large = _peak_rss_mb(onnx_file, tmp_path, 60_000)
    assert large < small + 100, (small, large)  # holding them all would add >= 188 MB
    assert np.load(tmp_path / "60000.npy", mmap_mode="r").shape == (60_000, 28, 28, 1)


def test_without_model_outside_a_repository_says_to_pass_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--out", "grid.png"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "dvc.yaml not found" in errors[0] and "--model" in errors[0]


def test_walks_start_and_end_at_the_samples_of_their_seeds(onnx_file, tmp_path):
    """Walk i of `--interpolate K --seed S --to-seed T` starts at image i of `sample --seed S`
    and ends at image i of `sample --seed T`; between them the noise stays on the shell."""
    paths = {name: tmp_path / f"{name}.npy" for name in ("start", "end", "walk")}
    model = ["sample", "--model", str(onnx_file), "-n", "3"]
    assert main([*model, "--seed", "5", "--npy", str(paths["start"])]) == 0
    assert main([*model, "--seed", "9", "--npy", str(paths["end"])]) == 0
    command = [*model, "--interpolate", "6", "--seed", "5", "--to-seed", "9"]
    assert main([*command, "--npy", str(paths["walk"]), "--out", str(tmp_path / "w.png")]) == 0
    walk = np.load(paths["walk"]).reshape(3, 6, 28, 28, 1)
    np.testing.assert_allclose(walk[:, 0], np.load(paths["start"]), atol=1e-6)
    np.testing.assert_allclose(walk[:, -1], np.load(paths["end"]), atol=1e-6)
    assert not np.allclose(walk[:, 2], walk[:, 0], atol=1e-3)  # it moves in between
    from PIL import Image

    with Image.open(tmp_path / "w.png") as grid:  # a walk per row: 6 columns, 3 rows
        assert grid.width > 1.9 * grid.height


def test_slerp_keeps_the_ends_exact_and_the_norm_between_them():
    from dcgan.contract import draw_noise
    from dcgan.shipping.latent import slerp, walks

    a, b = draw_noise(4, 100, 1), draw_noise(4, 100, 2)
    assert np.array_equal(slerp(a, b, 0.0), a) and np.array_equal(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    norms = np.linalg.norm(np.stack([a, b]), axis=2)
    # On the arc: the norm stays between the ends' (a straight line's midpoint would dip ~30%).
    assert np.all(np.linalg.norm(middle, axis=1) >= norms.min(axis=0) * 0.999)
    assert np.all(np.linalg.norm((a + b) / 2, axis=1) < norms.min(axis=0) * 0.8)
    steps = walks(a, b, 5).reshape(4, 5, 100)
    assert np.array_equal(steps[:, 0], a) and np.array_equal(steps[:, -1], b)
    assert np.array_equal(slerp(a, a, 0.3), slerp(a, a, 0.3))  # parallel: no NaN
    assert np.isfinite(slerp(a, a, 0.3)).all()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--interpolate", "1", "--out", "x.png"], "a walk needs at least 2 steps"),
        (["--to-seed", "3", "--out", "x.png"], "--to-seed only applies to --interpolate"),
        (["--interpolate", "3", "--cols", "2", "--out", "x.png"], "--cols does not apply"),
        (["--interpolate", "100", "-n", "41", "--out", "x.png"], "more than one grid holds"),
    ],
)
def test_bad_walks_are_one_line(onnx_file, tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(["sample", "--model", str(onnx_file), *argv])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
