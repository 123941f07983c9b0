"""This machine and its speed: what it has and how fast the pipeline runs on it.

One module a job: ``devices`` (CPUs and GPUs TensorFlow sees), ``environment`` (the lock
and the package versions, recorded with each run), ``memory`` (a stage's estimate against
what is free), ``timing`` (the median timer and the machine's name), ``precision`` (float32
or mixed_bfloat16, measured once for ``auto``), ``determinism_cost`` (what deterministic ops
cost), ``bench`` (``dcgan bench``: figures and a JSON report), ``gpu_check`` (what the GPU
path does on a user's NVIDIA GPU)."""
