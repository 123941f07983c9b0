"""Checkpoints in-process: what is resumed, what is refused, and the same bytes for the same
state (no timestamps inside)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from dcgan.gan import checkpoint


class Var:
    """Stands in for a tf.Variable: .numpy(), .shape and .assign()."""

    def __init__(self, value):
        self.value = np.asarray(value, dtype=np.float32)

    @property
    def shape(self):
        return self.value.shape

    def numpy(self):
        return self.value

    def assign(self, value):
        self.value = np.asarray(value, dtype=np.float32)


def state(scale: float = 1.0) -> dict[str, Var]:
    return {"g:000:kernel": Var(np.arange(6).reshape(2, 3) * scale), "rng:state": Var([1, 2])}


def save(folder, variables, fingerprint="fp", iteration=20):
    checkpoint.save(
        folder,
        variables,
        iteration=iteration,
        history=[{"iteration": 20, "d_loss": 0.5}],
        run_id="run",
        fingerprint=fingerprint,
    )


def test_restore_loads_every_variable(tmp_path):
    save(tmp_path / "ckpt", state(2.0))
    target = state(0.0)
    resumed = checkpoint.restore(tmp_path / "ckpt", target, "fp")
    assert resumed.iteration == 20 and resumed.run_id == "run"
    assert resumed.history == [{"iteration": 20, "d_loss": 0.5}]
    assert np.array_equal(target["g:000:kernel"].numpy(), np.arange(6).reshape(2, 3) * 2.0)


def test_other_fingerprint_is_not_resumed(tmp_path, caplog):
    save(tmp_path / "ckpt", state(2.0), fingerprint="other params")
    target = state(0.0)
    with caplog.at_level("INFO"):
        assert checkpoint.restore(tmp_path / "ckpt", target, "fp") is None
    assert "made by other params or data" in caplog.text
    assert not target["g:000:kernel"].numpy().any()  # left untouched


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"g:000:kernel": Var(np.zeros((3, 2))), "rng:state": Var([0, 0])}, "has shape"),
        ({"g:000:kernel": Var(np.zeros((2, 3)))}, "do not match the model"),
    ],
    ids=["shape", "variables"],
)
def test_a_checkpoint_of_another_model_is_not_resumed(tmp_path, caplog, variables, message):
    save(tmp_path / "ckpt", state())
    with caplog.at_level("WARNING"):
        assert checkpoint.restore(tmp_path / "ckpt", variables, "fp") is None
    assert message in caplog.text
    assert not variables["g:000:kernel"].numpy().any()  # nothing half-loaded


def test_missing_or_unreadable_checkpoint(tmp_path):
    assert checkpoint.restore(tmp_path / "none", state(), "fp") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/state.json").write_text("{not json")
    assert checkpoint.restore(tmp_path / "bad", state(), "fp") is None


def test_same_state_same_bytes_and_discard(tmp_path):
    save(tmp_path / "a", state())
    save(tmp_path / "b", state())
    for name in ("state.npz", "state.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # Two saves a second apart could still share zip's 2-second timestamps: look at them.
    with zipfile.ZipFile(tmp_path / "a/state.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(tmp_path / "a/state.npz") as saved:  # still an ordinary .npz
        assert sorted(saved.files) == ["g:000:kernel", "rng:state"]
    checkpoint.discard(tmp_path / "a")
    assert not (tmp_path / "a").exists()
