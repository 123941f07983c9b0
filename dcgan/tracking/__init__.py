"""The record in MLflow, one job a module, and the only part of dcgan that imports MLflow:
where the record lives and a fail-fast check of it (``store``), how a file finds its runs
(``lineage``), the retry budget every call goes through (``retry``), one run addressed by id
(``tracker``), the dead-process watcher (``watcher``), the ONNX model's packaging and its
served loader (``packaging``, ``serving``), the registry and ``dcgan promote`` (``registry``),
a sweep's trials nested under its run (``sweeps``).
The stages (dcgan.pipeline) call it; it never imports them.
"""
