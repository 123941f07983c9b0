"""The pipeline's pictures: sample grids, loss and quality plots (``plots``), the training
animation (``animation``), and `dvc plots show` with no network (``plots_offline``)."""
