"""The pipeline's stages, one module each, named after the stage: ``run(cfg, paths)`` reads
the stage's inputs, calls the library (``dcgan.data``, ``dcgan.gan.training``, ...) for the
computing, writes the outputs and records the run through dcgan.tracking. Beside them: each
stage's files (``paths``), what every stage script does first (``shell``), a training's
MLflow run from open to close (``training_run``) and the guard against params.yaml changing
under a run (``params_guard``).
"""
