"""Every params value works or is refused in one line, before any work.

Hypothesis drives every key of every stage with boundary and junk values through the loader;
then, for accepted values that are cheap to try, through the stage's entry point on tiny
data. The outcome is either success or one `error:` line with exit code 2: never a traceback,
never a half-written output.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcgan.config import STAGES, config_from_dict, load_all
from dcgan.errors import DcganError, run_main
from dcgan.pipeline.paths import ClassifierPaths, ExportPaths, PreparePaths

from .conftest import ROOT, paths_of, stage_paths

DEFAULTS = {stage: dataclasses.asdict(cfg) for stage, cfg in load_all(ROOT / "params.yaml").items()}

INTS = [-(2**63), -1, 0, 1, 2, 3, 17, 2**31 - 1, 2**32 - 1, 2**32, 10**7, 10**7 + 1, 10**9, 10**18]
FLOATS = [-1e-9, 0.0, 1e-12, 1e-3, 0.5, 0.999999, 1.0, 1.0000001, 2.0, 2.5, 1e308]
FLOATS += [math.nan, math.inf, -math.inf]
TEXTS = ["", " ", "x", "float32", "mixed_bfloat16", "bfloat16", "auto", "default", "mirrored"]
TEXTS += ["predict", "training"]
TEXTS += ["defualt", "GPU:0", "CPU:0,CPU:1", "TPU:7", "mnist", "sample", "nowhere.npz", "ü" * 300]
JUNK = [None, True, False, [], {}, [1], {"a": 1}, b"x"]
VALUES = st.sampled_from(INTS) | st.sampled_from(FLOATS) | st.sampled_from(TEXTS)
VALUES = VALUES | st.sampled_from(JUNK) | st.integers() | st.floats() | st.text(max_size=12)


@st.composite
def blocks(draw, stage: str) -> dict:
    """The stage's default block with some keys replaced, sometimes one missing or extra."""
    block = dict(DEFAULTS[stage])
    for key in draw(st.sets(st.sampled_from(sorted(block)), min_size=1)):
        block[key] = draw(VALUES)
    if draw(st.booleans()) and draw(st.integers(0, 9)) == 0:
        block.pop(draw(st.sampled_from(sorted(block))))
    if draw(st.integers(0, 9)) == 0:
        block["bogus"] = draw(VALUES)
    return block


@pytest.mark.parametrize("stage", list(STAGES))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_loader_accepts_or_refuses_in_one_line_naming_the_key(stage, data):
    block = data.draw(blocks(stage))
    try:
        cfg = config_from_dict(STAGES[stage], block, stage)
    except DcganError as exc:
        message = str(exc)
        assert "\n" not in message
        assert any(f"{stage}.{key}" in message for key in [*block, *DEFAULTS[stage]]), message
    else:
        kinds = typing.get_type_hints(STAGES[stage])
        for key, value in dataclasses.asdict(cfg).items():
            assert type(value) is kinds[key], (key, value)  # no True for 1, no "3" for 3
            assert value == block[key]


# -- through the stages, on tiny data --------------------------------------------------------

# Values worth trying through each stage: boundaries, junk the loader lets through, and values
# that only the stage itself can refuse (a missing file, a device not on this machine).
TRIED = {
    "prepare": {
        "source": ["sample", "mnist", "nowhere.npz", "", "mnst"],
        "test_fraction": [1e-4, 0.001, 0.003, 0.2, 0.997, 0.999],
        "seed": [0, 1, 2**32 - 1],
    },
    "train": {
        "iterations": [1, 2, 3],
        "batch_size": [1, 2, 8, 10**9],
        "sample_interval": [1, 2, 10**6],
        "checkpoint_interval": [1, 10**6],
        "eval_interval": [0, 1, 2, -1],
        "eval_samples": [1, 129, 300, 0],
        "eval_seed": [0, 2**32 - 1, -1],
        "z_dim": [1, 3, 100, 10**9],
        "g_learning_rate": [1e-12, 1e-3, 1.0],
        "d_learning_rate": [1e-12, 1e-3, 1.0],
        "beta_1": [0.0, 0.5, 0.999999],
        "beta_2": [0.0, 0.999],
        "leaky_slope": [0.0, 0.01, 1.0],
        "d_fakes": ["predict", "training", "train"],
        "label_smoothing": [0.0, 0.1, 0.4999, 0.5],
        "ema_decay": [0.0, 0.5, 0.999, 1.0],
        "keep": ["last", "best", "lowest"],
        "lr_decay_from": [0.0, 0.5, 0.999, 1.0],
        "seed": [0, 2**32 - 1],
        "precision": ["float32", "mixed_bfloat16"],
        "strategy": ["default", "mirrored"],
        "devices": ["", "GPU:7", "CPU:0"],
        "experiment": ["dcgan", "ü" * 40, "a/b c"],
    },
    "classifier": {
        "epochs": [1],
        "batch_size": [1, 64, 10**9],
        "seed": [0, 2**32 - 1],
    },
    "export": {
        "opset": [13, 15, 17, 18],
        "optimize": [True, False],
    },
    "evaluate": {
        "num_samples": [2, 3, 65, 300],
        "seed": [0, 2**32 - 1],
        "tolerance": [1e-12, 1e-4, 2.0],
    },
}


def _load(stage: str, values: dict):
    """The stage's config with ``values`` over the defaults, or None if the loader refuses."""
    try:
        return config_from_dict(STAGES[stage], {**DEFAULTS[stage], **values}, stage)
    except DcganError:
        return None


@pytest.mark.parametrize(
    ("stage", "key", "value"),
    [(stage, key, value) for stage, keys in TRIED.items() for key in keys for value in keys[key]],
)
def test_each_tried_value_is_loaded_or_refused_in_one_line(stage, key, value):
    try:
        cfg = config_from_dict(STAGES[stage], {**DEFAULTS[stage], key: value}, stage)
    except DcganError as exc:
        assert "\n" not in str(exc) and f"{stage}.{key}" in str(exc), str(exc)
    else:
        assert getattr(cfg, key) == value and type(getattr(cfg, key)) is type(value)


# Accepted by the loader, refused by the stage before any work: each runs alone (the other keys
# at their defaults, training cut to one iteration), so that it hides no value it would share
# a run with.
REFUSED_BY_THE_STAGE = {
    "prepare": {"source": ["nowhere.npz", "mnst"]},
    "train": {
        "batch_size": [10**9],
        "z_dim": [10**9],
        "devices": ["GPU:7"],
        "eval_samples": [1],  # the FCD needs more samples than the classifier has features
    },
}
ALONE_WITH = {"train": {"iterations": 1}}
# What a value needs beside it to be loaded at all (devices are for the mirrored strategy).
NEEDS = {("train", "devices"): {"strategy": "mirrored"}}


def stage_runs(stage: str) -> list[tuple[dict, bool]]:
    """``(values, refused)`` runs of ``stage`` in which every value of TRIED that the loader
    accepts runs once: run ``i`` takes value ``i`` (cycling) of every key; each value of
    REFUSED_BY_THE_STAGE runs alone and must be refused. A run costs seconds, so no random
    combinations here; the loader's own tests cover the values it refuses."""
    refused = REFUSED_BY_THE_STAGE.get(stage, {})

    def with_needs(key: str, value) -> dict:
        return {**NEEDS.get((stage, key), {}), key: value}

    accepted = {
        key: [
            v
            for v in values
            if _load(stage, with_needs(key, v)) is not None and v not in refused.get(key, [])
        ]
        for key, values in TRIED[stage].items()
    }
    count = max(len(values) for values in accepted.values())
    runs = [({k: vs[i % len(vs)] for k, vs in accepted.items() if vs}, False) for i in range(count)]
    alone = [
        ({**ALONE_WITH.get(stage, {}), **with_needs(key, v)}, True)
        for key, values in refused.items()
        for v in values
    ]
    return runs + alone


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Prepared sample data, a few-iteration generator, its ONNX file and a classifier; and
    ``few``, 50 training digits, for the classifier's one-image batches."""
    from dcgan.config import load_all
    from dcgan.pipeline import classifier, export, prepare, train

    root = tmp_path_factory.mktemp("tiny")
    cfg = load_all(ROOT / "params.yaml")
    prepare.run(dataclasses.replace(cfg["prepare"], source="sample"), PreparePaths(root / "data"))
    few = dataclasses.replace(cfg["prepare"], source="sample", test_fraction=0.99)
    prepare.run(few, PreparePaths(root / "few"))
    small = dataclasses.replace(
        cfg["train"], iterations=2, batch_size=8, sample_interval=1, eval_interval=0
    )
    train.run(small, paths_of("train", root, data=root / "data"), progress=False)
    classifier.run(
        dataclasses.replace(cfg["classifier"], epochs=1),
        ClassifierPaths(
            data=root / "data",
            model=root / "models/mnist_classifier.keras",
            report=root / "reports/classifier.json",
        ),
    )
    paths = stage_paths("export", root)
    export.run(
        cfg["export"],
        ExportPaths(generator=paths["generator"], training=paths["training"], out=paths["out"]),
    )
    return root


def call_stage(stage: str, cfg, tiny: Path, out: Path) -> None:
    from dcgan.pipeline import classifier, evaluate, export, prepare, train

    if stage == "prepare":
        prepare.run(cfg, PreparePaths(out / "data"))
    elif stage == "train":
        classifier_file = tiny / "models/mnist_classifier.keras"
        train.run(
            cfg,
            paths_of(
                "train",
                out,
                data=tiny / "data",
                checkpoints=out / "ckpt",
                classifier=classifier_file,
            ),
            progress=False,
        )
    elif stage == "classifier":
        classifier.run(
            cfg, ClassifierPaths(data=tiny / "few", model=out / "c.keras", report=out / "c.json")
        )
    elif stage == "export":
        paths = stage_paths("export", tiny)
        export.run(
            cfg,
            ExportPaths(
                generator=paths["generator"], training=paths["training"], out=out / "g.onnx"
            ),
        )
    else:
        paths = stage_paths("evaluate", tiny)
        evaluate.run(
            cfg,
            paths_of(
                "evaluate",
                out,
                onnx=paths["onnx"],
                generator=paths["generator"],
                classifier=paths["classifier"],
                data=tiny / "data",
            ),
        )


def leftovers(folder: Path) -> list[Path]:
    """Temporary files or folders of an atomic write that did not finish."""
    return [p for p in folder.rglob(".*") if ".tmp" in p.name or p.name.startswith(".keras-")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "values", "refused"),
    [(stage, values, refused) for stage in TRIED for values, refused in stage_runs(stage)],
    ids=[f"{stage}-{i}" for stage in TRIED for i, _ in enumerate(stage_runs(stage))],
)
def test_accepted_values_run_or_fail_in_one_line(
    stage, values, refused, tiny, tmp_path_factory, capsys
):
    cfg = _load(stage, values)
    assert cfg is not None, f"the loader refuses {values}: stage_runs should not make it"
    out = tmp_path_factory.mktemp(stage)
    capsys.readouterr()
    code = run_main(lambda: call_stage(stage, cfg, tiny, out))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert "Traceback" not in err
    assert code in ((2,) if refused else (0, 2)), (code, err[-2000:])
    assert len(errors) == (1 if code == 2 else 0), err[-2000:]
    assert leftovers(out) == [] and leftovers(tiny) == []
    if code == 2 and stage in ("prepare", "train", "classifier", "export"):
        # Refused or failed: no output of that stage appeared.
        made = {p.name for p in out.rglob("*") if p.is_file()} - {"mlflow.db"}
        assert not made & {"meta.json", "generator.keras", "c.keras", "g.onnx"}, made


@pytest.mark.slow  # its fixture runs train, classifier and export on tiny data
@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"z_dim": 10**9}, "would need about .* GB of memory .* lower train.z_dim"),
        ({"batch_size": 10**7}, "would need about .* GB of memory .* lower train.batch_size"),
        (
            {"strategy": "mirrored", "devices": "GPU:7"},
            r"train.devices='GPU:7' cannot be used \(GPU:7 is not on this machine",
        ),
    ],
    ids=["z_dim", "batch_size", "missing-gpu"],
)
def test_what_cannot_run_here_is_refused_before_training(tiny, tmp_path, capsys, values, message):
    import re

    block = {**DEFAULTS["train"], "iterations": 2, "batch_size": 8, **values}
    cfg = config_from_dict(STAGES["train"], block, "train")
    code = run_main(lambda: call_stage("train", cfg, tiny, tmp_path))
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and re.search(message, errors[0]), errors
    assert not (tmp_path / "models").exists() and not (tmp_path / "ckpt").exists()
