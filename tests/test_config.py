"""params.yaml is strict: unknown, missing, mistyped and out-of-range keys fail, naming the key."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcgan.config import (
    STAGES,
    TrainConfig,
    config_from_dict,
    last_only,
    load_all,
    load_config,
)
from dcgan.errors import DcganError

from .conftest import ROOT, stage_command, write_params


def test_repository_params_load(repo_params):
    assert set(repo_params) == set(STAGES)
    assert repo_params["train"].z_dim == 100  # the book's z_dim
    assert repo_params["train"].batch_size == 128  # the book's batch size


@pytest.mark.parametrize(
    ("block", "key", "value", "message"),
    [
        ("train", "iterations", 0, "train.iterations must be a positive integer, got 0"),
        ("train", "iterations", -5, "train.iterations must be a positive integer"),
        ("train", "batch_size", 0, "train.batch_size must be a positive integer"),
        ("train", "iterations", "many", "train.iterations must be int, got 'many'"),
        ("train", "iterations", True, "train.iterations must be int, got True"),
        ("train", "iterations", 10.5, "train.iterations must be int"),
        ("train", "g_learning_rate", "fast", "train.g_learning_rate must be float"),
        ("train", "d_learning_rate", 0, "train.d_learning_rate must be in (0, 1] (Adam steps"),
        ("train", "d_learning_rate", 1.5, "train.d_learning_rate must be in (0, 1]"),
        ("train", "beta_1", 1.0, "train.beta_1 must be in [0, 1)"),
        ("train", "d_fakes", "train", "train.d_fakes must be one of predict, training"),
        ("train", "label_smoothing", 0.5, "train.label_smoothing must be in [0, 0.5) (D's real"),
        ("train", "label_smoothing", -0.1, "train.label_smoothing must be in [0, 0.5)"),
        ("train", "leaky_slope", 1.5, "train.leaky_slope must be in [0, 1] (a LeakyReLU slope"),
        ("train", "ema_decay", 1.0, "train.ema_decay must be in [0, 1) (0 = no averaged"),
        ("train", "ema_decay", -0.5, "train.ema_decay must be in [0, 1)"),
        ("train", "keep", "lowest", "train.keep must be one of last, best"),
        ("train", "lr_decay_from", 1.0, "train.lr_decay_from must be in [0, 1): the fraction"),
        ("train", "lr_decay_from", -0.1, "train.lr_decay_from must be in [0, 1)"),
        ("train", "iterations", 10**8, "train.iterations must be in [1, 10_000_000]"),
        ("train", "seed", 2**32, "train.seed must be in [0, 4_294_967_295] (NumPy's legacy"),
        ("train", "seed", -1, "train.seed must be in [0, 4_294_967_295]"),
        # The table: each of these was accepted.
        ("train", "strategy", "defualt", "train.strategy must be one of default, mirrored"),
        ("train", "precision", "mixed_bfloat", "train.precision must be one of float32"),
        ("train", "precision", "float16", "train.precision must be one of float32"),
        ("train", "devices", "TPU:7", "train.devices is only used with train.strategy: mirr"),
        ("train", "experiment", " dcgan", "train.experiment must be a name without leading"),
        ("train", "experiment", "x" * 300, "train.experiment must be at most 256 characters"),
        ("evaluate", "num_samples", 1, "evaluate.num_samples must be in [2, 1_000_000] (the Fr"),
        ("evaluate", "seed", 2**40, "evaluate.seed must be in [0, 4_294_967_295]"),
        ("classifier", "epochs", 5000, "classifier.epochs must be in [1, 1_000]"),
        ("prepare", "seed", -3, "prepare.seed must be in [0, 4_294_967_295]"),
        ("train", "experiment", 3, "train.experiment must be str"),
        ("prepare", "test_fraction", 1.5, "prepare.test_fraction must be between 0 and 1"),
        ("export", "opset", 21, "export.opset must be between 13 and 18"),
        ("export", "optimize", "yes", "export.optimize must be bool, got 'yes'"),
        ("export", "optimize", 1, "export.optimize must be bool, got 1"),
        ("evaluate", "tolerance", -1.0, "evaluate.tolerance must be in (0, 2] (images lie in"),
        ("evaluate", "tolerance", 0.0, "evaluate.tolerance must be in (0, 2]"),
        ("evaluate", "num_samples", 0, "evaluate.num_samples must be in [2, 1_000_000]"),
        ("classifier", "epochs", 0, "classifier.epochs must be a positive integer"),
    ],
)
def test_bad_values_name_the_key(tmp_path, block, key, value, message):
    path = write_params(tmp_path / "params.yaml", **{block: {key: value}})
    with pytest.raises(
        DcganError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        load_config(block, path)


def test_devices_must_name_cpus_or_gpus(tmp_path):
    path = write_params(
        tmp_path / "params.yaml", train={"strategy": "mirrored", "devices": "GPU:0,TPU:7"}
    )
    with pytest.raises(DcganError, match="train.devices must list devices such as GPU:0,GPU:1"):
        load_config("train", path)
    path = write_params(
        tmp_path / "params.yaml", train={"strategy": "mirrored", "devices": "GPU:0, GPU:1"}
    )
    assert load_config("train", path).devices == "GPU:0, GPU:1"


def test_integers_are_accepted_for_floats(tmp_path):
    path = write_params(tmp_path / "params.yaml", train={"beta_1": 0, "g_learning_rate": 1})
    cfg = load_config("train", path)
    assert isinstance(cfg.g_learning_rate, float) and cfg.g_learning_rate == 1.0


def test_unknown_key(tmp_path):
    path = write_params(tmp_path / "params.yaml", train={"iteratons": 10})
    with pytest.raises(DcganError, match="unknown key train.iteratons"):
        load_config("train", path)


def test_missing_key(tmp_path):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    del params["train"]["z_dim"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(DcganError, match="missing key train.z_dim"):
        load_config("train", tmp_path / "params.yaml")


@pytest.mark.parametrize(
    ("train", "problem"),
    [
        ({"iterations": 0}, "train.iterations must be a positive integer, got 0; fix it in {file}"),
        ({"iterations": "ten"}, "train.iterations must be int, got 'ten' (str); fix it in {file}"),
        (
            {"keep": "best", "eval_interval": 0},
            "train.keep must be last when train.eval_interval is 0 (best keeps the generator "
            "of the lowest FCD scored in training, and nothing is scored); set an "
            "eval_interval, or keep: last, got 'best'; fix it in {file}",
        ),
    ],
)
def test_errors_name_the_params_file_that_was_passed(tmp_path, train, problem):
    path = write_params(tmp_path / "experiment.yaml", train=train)
    with pytest.raises(DcganError) as info:
        load_config("train", path)
    assert str(info.value) == f"{path}: " + problem.format(file=path)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    del params["train"]["z_dim"]
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(DcganError) as info:
        load_config("train", path)
    assert str(info.value) == f"{path}: missing key train.z_dim; add it to {path}"


def test_unknown_block(tmp_path):
    path = write_params(tmp_path / "params.yaml")
    path.write_text(path.read_text() + "\ntrian:\n  iterations: 3\n")
    with pytest.raises(DcganError, match="unknown block trian"):
        load_all(path)


def test_malformed_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  iterations: [1, 2\n")
    with pytest.raises(DcganError, match=r"is not valid YAML at line \d+, column \d+"):
        load_config("train", path)


def test_missing_params_file(tmp_path):
    with pytest.raises(DcganError, match="not found"):
        load_config("train", tmp_path / "nope.yaml")


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_cli_bad_params_is_one_line_and_exit_2(tmp_path, stage):
    path = write_params(tmp_path / "params.yaml")
    path.write_text(path.read_text().replace(f"{stage}:\n", f"{stage}:\n  bogus: 1\n", 1))
    # dvc.yaml's command, every path under tmp_path; nothing may be written there.
    command = stage_command(stage, tmp_path, params=path)
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"error: {path}: unknown key {stage}.bogus; known keys are "
        + ", ".join(f.name for f in __import__("dataclasses").fields(STAGES[stage]))
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["params.yaml"]


def test_intervals_longer_than_the_run_act_at_its_last_iteration(tmp_path):
    """`dvc exp run -S train.iterations=100` with the default intervals (200) is a short run,
    not an error: the loader takes it and names the intervals that act at the end only."""
    path = write_params(tmp_path / "params.yaml", train={"iterations": 100})
    cfg = load_config("train", path)
    assert (cfg.sample_interval, cfg.eval_interval) == (200, 200)
    assert last_only(cfg) == ["train.sample_interval=200", "train.eval_interval=200"]
    path = write_params(tmp_path / "params.yaml", train={"iterations": 100, "eval_interval": 0})
    assert last_only(load_config("train", path)) == ["train.sample_interval=200"]
    for key, value, problem in [
        ("sample_interval", 0, "train.sample_interval must be a positive integer, got 0"),
        ("eval_interval", -1, "train.eval_interval must be 0 (no scoring during training)"),
    ]:
        path = write_params(tmp_path / "params.yaml", train={"iterations": 100, key: value})
        with pytest.raises(DcganError, match=re.escape(problem)):
            load_config("train", path)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [f.name for f in __import__("dataclasses").fields(TrainConfig)] + ["extra"]
        ),
        _scalars,
    )
)
def test_fuzz_train_block_raises_only_dcgan_errors(block):
    """Whatever the block holds, the loader returns a valid config or raises DcganError."""
    try:
        cfg = config_from_dict(TrainConfig, block, "train")
    except DcganError as exc:
        assert "\n" not in str(exc) and "train." in str(exc)
    else:
        assert cfg.iterations > 0 and cfg.batch_size > 0
