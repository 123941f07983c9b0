"""The generator as users get it: exported to ONNX and checked (``export``), optimised for
onnxruntime (``onnx_opt``), sampled without TensorFlow (``sampling``), walked through its
noise (``latent``)."""
