"""The ONNX generator packaged as an MLflow model: ``mlflow.onnx`` with dcgan.tracking.serving
as its pyfunc loader and the requirements that loader imports."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dcgan.tracking.retry import call_store
from dcgan.tracking.store import mlflow_uris


def log_onnx_model(
    uri: str, client: Any, run_id: str, model: Any, name: str, example: Any, output: Any
) -> str:
    """``model`` as an MLflow model linked to run ``run_id``, with the signature of (example,
    output) and dcgan.tracking.serving as its pyfunc loader (the served model refuses
    oversized and non-finite batches); returns the logged model's URI (``models:/m-...``),
    which registration takes. The run is named, not started: a finished run stays FINISHED
    whatever happens here (``start_run`` would set it RUNNING until the block ends)."""
    import mlflow.onnx
    import numpy as np
    from mlflow.models import Model, infer_signature

    experiment_id = call_store(uri, "reading the run", client.get_run, run_id).info.experiment_id

    def log_model() -> str:
        with mlflow_uris(uri, experiment_id=experiment_id):
            info = Model.log(
                artifact_path=None,
                name=name,
                flavor=_CheckedOnnxFlavor,
                flavor_name="onnx",
                run_id=run_id,
                onnx_model=model,
                signature=infer_signature(example, output),
                input_example=example,
                # The generator is small and fast on a CPU, and onnxruntime builds without
                # CUDA (the default wheel) warn at every load when CUDA is listed first.
                onnx_execution_providers=["CPUExecutionProvider"],
                # One self-contained model.onnx, the same bytes as generator.onnx (the
                # default splits the weights into a side file).
                save_as_external_data=False,
                # What the pyfunc loader imports, at the versions that made and checked the
                # model (MLflow adds itself). MLflow's inference would list the whole
                # environment, TensorFlow and DVC included, and takes seconds a run.
                pip_requirements=[
                    *mlflow.onnx.get_default_pip_requirements(),
                    f"numpy=={np.__version__}",
                ],
            )
        return info.model_uri

    return call_store(uri, "logging the ONNX model", log_model)


class _CheckedOnnxFlavor:
    """``mlflow.onnx``'s save_model, with dcgan.tracking.serving copied into the model's
    code/ folder and made the pyfunc loader (what ``Model.log`` takes as a flavor)."""

    LOADER = "dcgan_serving"

    @classmethod
    def save_model(cls, path: str, mlflow_model: Any, **kwargs: Any) -> None:
        import mlflow.onnx
        from mlflow.pyfunc import FLAVOR_NAME, MAIN

        from dcgan.tracking import serving

        with tempfile.TemporaryDirectory() as tmp:
            loader = Path(tmp) / f"{cls.LOADER}.py"
            shutil.copyfile(serving.__file__, loader)
            mlflow.onnx.save_model(
                path=path, mlflow_model=mlflow_model, code_paths=[str(loader)], **kwargs
            )
        mlflow_model.flavors[FLAVOR_NAME][MAIN] = cls.LOADER
        mlflow_model.save(os.path.join(path, "MLmodel"))
