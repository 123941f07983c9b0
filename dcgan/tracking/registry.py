"""The model registry: every evaluated generator becomes a version of one registered model
(``evaluate.registered_model`` in params.yaml) carrying its quality metrics, and
the alias ``champion`` names the version with the lowest FCD among those evaluated on the same
data and with the same classifier (FCDs measured with different instruments do not compare).

Load the champion as ``models:/dcgan-generator@champion`` (``mlflow.onnx.load_model`` or
``mlflow.pyfunc.load_model``), or serve it with ``mlflow models serve``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcgan.contract import FCD
from dcgan.errors import DcganError
from dcgan.tracking.lineage import MODEL_URI_TAG
from dcgan.tracking.retry import call_store
from dcgan.tracking.store import mlflow_uris, safe_uri, store_lock
from dcgan.tracking.tracker import Tracker

log = logging.getLogger(__name__)

CHAMPION = "champion"
# A version's FCD compares with another's only if both used the same data and classifier.
SAME_INSTRUMENT = ("data_sha256", "classifier_sha256")


def register(
    tracker: Tracker, name: str, metrics: Mapping[str, Any], tags: Mapping[str, str]
) -> str | None:
    """Register the ONNX generator that export logged into ``tracker``'s run as a new version
    of ``name``, tagged with the float figures of ``metrics`` (evaluate's metrics.json) and
    ``tags``; returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    model_uri = tracker.tags().get(MODEL_URI_TAG)
    if not model_uri:
        log.warning("run %s holds no logged generator; not registering it", tracker.run_id)
        return None
    # Every measured figure of the evaluate stage (its metrics.json), as a float.
    measured = {k: repr(v) for k, v in metrics.items() if isinstance(v, float)}
    version_tags = {**measured, **tags}

    def attempt() -> tuple[str, bool]:
        # Safe to retry: a version registered by a try whose answer was lost is found again.
        with mlflow_uris(tracker.uri), store_lock(tracker.uri):  # parallel experiments
            registry = MlflowClient(tracking_uri=tracker.uri, registry_uri=tracker.uri)
            same = _same_generator(registry, name, tags)
            if same is not None:  # `dvc repro -f evaluate`: the same bytes, measured the same
                for key, value in measured.items():
                    registry.set_model_version_tag(name, same, key, value)
                return same, True
            version = mlflow.register_model(model_uri, name, tags=version_tags)
            return str(version.version), False

    version, reused = call_store(tracker.uri, "registering the generator", attempt)
    if reused:
        log.info("version %s of %r is already this generator; metrics refreshed", version, name)
    else:
        log.info("registered %s as version %s of %r", model_uri, version, name)
    return version


def _same_generator(registry, name: str, tags: Mapping[str, str]) -> str | None:
    """The version of ``name`` holding the same ONNX bytes scored with the same classifier on
    the same data, if there is one."""
    from mlflow.exceptions import MlflowException

    identity = {k: tags.get(k) for k in ("onnx_sha256", *SAME_INSTRUMENT)}
    if not all(identity.values()):
        return None
    try:
        versions = registry.search_model_versions(f"name = '{name}'")
    except MlflowException:  # no such registered model yet
        return None
    for version in versions:
        if all(version.tags.get(k) == v for k, v in identity.items()):
            return str(version.version)
    return None


@dataclass
class Promotion:
    name: str
    alias: str
    version: str
    previous: str | None
    fcd: float
    compared: int
    skipped: int
    instrument: dict[str, str]

    def __str__(self) -> str:
        what = (
            f"{self.alias} stays at version {self.version}"
            if self.previous == self.version
            else f"{self.alias}: version {self.previous or '(none)'} -> version {self.version}"
        )
        data = self.instrument.get("data_source", "?")
        return (
            f"{what} of {self.name}: lowest FCD ({self.fcd:.3f}) of {self.compared} "
            f"version(s) evaluated on {data} data (sha256 "
            f"{self.instrument['data_sha256'][:12]}) with classifier "
            f"{self.instrument['classifier_sha256'][:12]}"
            + (
                f"; {self.skipped} on other data or classifiers not compared"
                if self.skipped
                else ""
            )
        )


def promote(name: str, alias: str, uri: str) -> Promotion:
    """Point ``alias`` at the version with the lowest FCD among the versions that share the
    newest version's data and classifier (the newest wins a tie), at the store ``uri``."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    search = call_store(
        uri, "reading the versions", client.search_model_versions, f"name = '{name}'"
    )
    versions = [v for v in search if FCD in v.tags]
    if not versions:
        raise DcganError(
            f"no evaluated version of registered model {name!r} at {safe_uri(uri)}; run "
            "`dvc repro` (evaluate registers every generator) or set MLFLOW_TRACKING_URI"
        )
    newest = max(versions, key=lambda v: int(v.version))
    key = tuple(newest.tags.get(k) for k in SAME_INSTRUMENT)
    peers = [v for v in versions if tuple(v.tags.get(k) for k in SAME_INSTRUMENT) == key]
    best = min(peers, key=lambda v: (float(v.tags[FCD]), -int(v.version)))
    try:
        previous = str(
            call_store(
                uri, "reading the alias", client.get_model_version_by_alias, name, alias
            ).version
        )
    except MlflowException:  # no such alias yet (a permanent error: not retried)
        previous = None
    call_store(
        uri, "moving the alias", client.set_registered_model_alias, name, alias, best.version
    )
    return Promotion(
        name=name,
        alias=alias,
        version=str(best.version),
        previous=previous,
        fcd=float(best.tags[FCD]),
        compared=len(peers),
        skipped=len(versions) - len(peers),
        instrument={k: best.tags.get(k, "") for k in (*SAME_INSTRUMENT, "data_source")},
    )
