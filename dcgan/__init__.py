"""dcgan: the DCGAN of *GANs in Action*, chapter 4, as a reproducible pipeline.

Importing this package is cheap on purpose: TensorFlow is imported only by the
modules that need it (dcgan.gan's, dcgan.quality's, the ONNX export, saving, ...), so the
sampling CLI (dcgan.shipping.sampling) can run on onnxruntime alone.
"""

import os

# TensorFlow prints several lines of C++ start-up chatter (oneDNN, CUDA probing) per process;
# every stage is a process. Users can still set the variable themselves to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
