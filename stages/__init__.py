"""Thin CLIs, one per DVC stage. Run as ``python -m stages.<name>`` from the repository root, so
the ``dcgan`` package of this checkout (also of a DVC experiment copy) is the one imported."""
