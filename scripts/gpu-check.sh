#!/usr/bin/env bash
# The backend suite on a CUDA GPU: CuPy and CUDA torch, then the benchmark's
# GPU table when benchmarks/run.py has one.  Installs nothing: run it in a
# venv where `make test` (and a cupy-cudaXXx wheel) are already installed.
# Budget: under five minutes; each step has its own timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

fail() { echo "gpu-check: $*" >&2; exit 1; }

[ -x "$PY" ] || fail "no interpreter at $PY; run 'make test' first (this script installs nothing)"
command -v nvidia-smi >/dev/null 2>&1 || fail "no CUDA GPU: nvidia-smi is not on PATH"
nvidia-smi -L >/dev/null 2>&1 || fail "no CUDA GPU: nvidia-smi lists no device"

"$PY" - <<'PY' || fail "the GPU libraries are not ready (see above)"
import sys
import torch
if not torch.cuda.is_available():
    sys.exit("torch has no CUDA device (a CPU-only build?)")
try:
    import cupy
except ImportError:
    sys.exit("cupy is not installed; pip install cupy-cuda12x beforehand")
if cupy.cuda.runtime.getDeviceCount() == 0:
    sys.exit("cupy sees no CUDA device")
from importlib.metadata import entry_points
names = {e.name for e in entry_points(group="diffcore.backends")}
missing = {"torch", "cupy"} - names
if missing:
    sys.exit(f"plugins not installed: {sorted(missing)}; run 'make test'")
print("torch", torch.__version__, torch.cuda.get_device_name(0), "| cupy", cupy.__version__)
PY

echo "== backend suite and core suite on CuPy (CUDA)"
DIFFCORE_BACKENDS=cupy timeout 120 "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_backends.py tests/test_forward.py tests/test_posterior.py

echo "== the CuPy and PyTorch tutorials (docs/tutorials/) on the GPU"
timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_tutorials.py \
    -k "cupy or pytorch"

echo "== backend suite on CUDA torch"
DIFFCORE_TORCH_DEVICE=cuda timeout 120 "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_backends.py -k "torch or meta or compile or gradients"

if [ -f benchmarks/run.py ] && grep -q -- "--gpu" benchmarks/run.py; then
    echo "== benchmark GPU table"
    timeout 60 "$PY" benchmarks/run.py --quick --gpu
else
    echo "== benchmarks/run.py has no --gpu table yet; skipped"
fi
echo "gpu-check: done"
