"""Sweeps across machines: ``dcgan sweep`` runs a grid of DVC experiments as Ray tasks, each in
a fresh clone, pushed to the team's git and DVC remotes, each a child run in MLflow.

One module a job: ``grid`` (the `-S` grammar, through DVC's own parser, and each trial's params
checked before any work), ``checks`` (what the git remote and the workspace must be),
``trial`` (one trial, run by a Ray worker), ``driver`` (the cluster, the MLflow parent run and
the summary). Ray is imported by ``driver`` and ``trial`` only, when a sweep runs."""
