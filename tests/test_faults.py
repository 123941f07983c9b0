"""Faults lose nothing and the record stays true: what a second process, a bad file or a dead
server does to a run."""

from __future__ import annotations

import pytest

from dcgan.config import PrepareConfig, load_config
from dcgan.errors import DcganError

from .conftest import train_outputs, write_params

TINY_TRAIN = {"iterations": 2, "batch_size": 8, "sample_interval": 1, "experiment": "faults"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from dcgan.pipeline import prepare

    folder = tmp_path_factory.mktemp("faults") / "data"
    prepare.run(PrepareConfig(source="sample", test_fraction=0.2, seed=0), folder)
    return folder


def test_params_changed_while_training_write_nothing_and_fail(prepared, tmp_path, monkeypatch):
    """Another `dvc exp run -S train.seed=8` in the same clone rewrites params.yaml while this
    one trains with seed 0: DVC would record seed 8 for a model trained with seed 0."""
    from mlflow.tracking import MlflowClient

    from dcgan.pipeline import train
    from dcgan.pipeline.store import tracking_uri

    params = write_params(tmp_path / "params.yaml", train=TINY_TRAIN)
    cfg = load_config("train", params)
    real_loop = train.train_loop

    def another_process_edits_params(*args, **kwargs):
        write_params(params, train={**TINY_TRAIN, "seed": 8})
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(train, "train_loop", another_process_edits_params)
    outputs = train_outputs(tmp_path)
    with pytest.raises(DcganError, match=r"changed while training \(train.seed 0 -> 8\)"):
        train.run(cfg, prepared, outputs, progress=False, params_file=params)
    assert not outputs.generator.exists() and not outputs.training.exists()
    assert not outputs.metrics.exists()
    client = MlflowClient(tracking_uri=tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    assert run.info.status == "FAILED"


def test_unchanged_params_train_as_before(prepared, tmp_path):
    from dcgan.pipeline import train

    params = write_params(tmp_path / "params.yaml", train=TINY_TRAIN)
    outputs = train_outputs(tmp_path)
    train.run(
        load_config("train", params), prepared, outputs, progress=False, params_file=params
    )
    assert outputs.generator.is_file() and outputs.metrics.is_file()
