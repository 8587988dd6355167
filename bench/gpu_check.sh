#!/usr/bin/env bash
# CPU vs CUDA on a GPU machine, in a few minutes: install auditor's `gpu` extra into a
# fresh virtual environment, run the tests marked `gpu`, then compare the two execution
# providers on the sample detectors and a bigger generated model (largest probability
# difference, decision flips, images per second of each) and print the table.
#
#   bench/gpu_check.sh                    # fresh venv in .venv-gpu (pip needs the index)
#   AUDITOR_GPU_VENV=/opt/venv bench/gpu_check.sh   # reuse a venv that has the gpu extra
#   PIP_FIND_LINKS=/wheels PIP_NO_INDEX=1 bench/gpu_check.sh     # offline, from wheels
#
# Exit status: 0 when the gpu tests pass and both providers ran as asked; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${AUDITOR_GPU_VENV:-.venv-gpu}"
if [ -z "${AUDITOR_GPU_VENV:-}" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q ".[gpu,test]"
fi
py="$venv/bin/python"

# onnxruntime-gpu must be the only runtime, and it must offer CUDA.
"$py" - <<'PY'
import sys
from auditor.model.providers import installed_runtimes
import onnxruntime as ort
print("runtimes:", installed_runtimes(), "onnxruntime", ort.__version__)
print("available providers:", ort.get_available_providers())
if installed_runtimes() != ["onnxruntime-gpu"]:
    sys.exit("gpu_check: expected onnxruntime-gpu alone")
if "CUDAExecutionProvider" not in ort.get_available_providers():
    sys.exit("gpu_check: this onnxruntime offers no CUDAExecutionProvider")
PY
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

# The gpu tests must run here, not skip.
"$py" -m pytest -q -m gpu -rs tests/test_model.py 2>&1 | tee /tmp/auditor-gpu-tests.txt
if grep -q "skipped" /tmp/auditor-gpu-tests.txt; then
  echo "gpu_check: the gpu tests were skipped: CUDA is not usable" >&2
  exit 1
fi

"$py" bench/gpu_check.py --providers cpu,cuda "$@"
