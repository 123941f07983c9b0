"""The served generator's door: ``mlflow models serve`` of a registered generator refuses, with
HTTP 400 and before any computing, more noise vectors than :data:`MAX_BATCH` and noise that is
not finite. (Unchecked, a 20 000-row request took the server to 6.7 GB and a 504, and NaN
noise came back as NaN images with 200.)

This file travels inside every logged generator as ``code/dcgan_serving.py`` and is the
model's pyfunc loader, so it needs only MLflow and NumPy where the model is served. The
``onnx`` flavor is untouched: ``mlflow.onnx.load_model`` gets the plain ONNX model.
"""

from __future__ import annotations

from typing import Any

# 1024 images are ~16 MB of JSON in the answer; larger batches belong in several requests.
MAX_BATCH = 1024


class CheckedGenerator:
    """MLflow's ONNX pyfunc model, with the noise checked before it runs."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        import numpy as np
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        z = data.get("z", next(iter(data.values()), None)) if isinstance(data, dict) else data
        z = np.asarray(getattr(z, "values", z))  # a DataFrame's values
        rows = int(z.shape[0]) if z.ndim else 1
        if rows > MAX_BATCH:
            raise MlflowException(
                f"{rows} noise vectors in one request; this server takes at most {MAX_BATCH}: "
                "send them in several requests",
                INVALID_PARAMETER_VALUE,
            )
        if z.dtype.kind not in "fiu" or not np.isfinite(z).all():
            raise MlflowException(
                "the noise has values that are not finite numbers (NaN or infinity); send "
                "finite floats, e.g. draws of a standard normal",
                INVALID_PARAMETER_VALUE,
            )
        return self.inner.predict(data, params)

    def __getattr__(self, name: str) -> Any:  # everything else is MLflow's wrapper's
        return getattr(self.inner, name)


def _load_pyfunc(path: str, model_config: Any = None) -> CheckedGenerator:
    """MLflow's pyfunc entry point (``loader_module: dcgan_serving`` in the MLmodel file)."""
    from mlflow.onnx import _load_pyfunc as load_onnx

    return CheckedGenerator(load_onnx(path))
