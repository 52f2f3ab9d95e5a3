#!/usr/bin/env bash
# Creates benches/compare/.venv with the peers of the comparison: PyTorch
# (CPU use only; PyPI's Linux wheel brings its CUDA libraries along, a few
# GB, because `import torch` loads them even on a machine without a GPU),
# JAX on CPU and NumPy. Not part of CI. Usage: bash benches/compare/setup.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$here/.venv/bin/python" ]; then
    "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --upgrade pip setuptools
"$here/.venv/bin/python" -m pip install -r "$here/requirements.txt"
"$here/.venv/bin/python" - <<'PY'
import torch, jax, numpy
print("torch", torch.__version__, "| jax", jax.__version__, "| numpy", numpy.__version__)
PY
