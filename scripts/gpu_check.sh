#!/usr/bin/env bash
# The GPU path on your own NVIDIA GPU (Linux x86_64), measured where the project cannot:
# seconds per iteration of the default config in each precision, with and without XLA; two
# identical runs compared bit for bit; the ONNX file against Keras. Writes gpu_check.json.
#   DCGAN_EXTRAS=gpu ./run shell     # once: installs the locked gpu extra
#   dvc repro prepare                # the training images
#   scripts/gpu_check.sh [--iterations 300] [--out gpu_check.json]
# Without a GPU it says so and exits 1. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  echo "error: no .venv here; run \`DCGAN_EXTRAS=gpu ./run shell\` first" >&2
  exit 1
fi
exec .venv/bin/python -m dcgan.machine.gpu_check "$@"
