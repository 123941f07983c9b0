"""Measuring a generator's quality: an MNIST classifier's features and outputs scored against
the real digits, by the evaluate stage and, while G trains, by the probe.

One module a job: ``scores`` (FCD, MNIST score, class coverage, memorisation: NumPy only),
``classifier`` (the CNN whose features they use), ``evaluation`` (a generator's samples
scored), ``probe`` (the in-training curve, scored every ``train.eval_interval``)."""
