"""The GAN and its training: the book's G and D, the compiled step and the loop around it,
and the generator the train stage ships (the live G, its average or the best one kept).

One module a job: ``architecture`` (the layer widths, without TensorFlow), ``models`` (G and
D in Keras), ``training`` (the compiled step and its strategy), ``loop`` (iterations,
callbacks, checkpoints taken), ``checkpoint`` (the resume point on disk), ``determinism``
(seeds and deterministic ops), ``shipped`` (the averaged and the kept generator)."""
