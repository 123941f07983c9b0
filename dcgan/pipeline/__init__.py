"""The pipeline's stages, one module each, named after the stage: ``run(config, paths)``
reads the stage's inputs, calls the library (``dcgan.data``, ``dcgan.training``, ...) for the
computing, writes the outputs and records the run in MLflow. MLflow is used here only, one
job a module: where the record lives (``store``), how a file finds its runs (``lineage``),
the retry budget (``retry``), one run (``tracking``), a training's run from open to close
(``training_run``), the dead-process watcher (``watcher``), the ONNX model's packaging
(``packaging``, ``serving``), the registry (``registry``); ``layout`` reads the paths
dvc.yaml names.
"""
