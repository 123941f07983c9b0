"""The pipeline's stages, one module each, named after the stage: ``run(config, paths)``
reads the stage's inputs, calls the library (``dcgan.data``, ``dcgan.training``, ...) for the
computing, writes the outputs and records the run in MLflow. MLflow is used here only: where
the record lives (``store``), how a file finds its runs (``lineage``), one run (``tracking``),
the registry (``registry``); ``layout`` reads the paths dvc.yaml names.
"""
