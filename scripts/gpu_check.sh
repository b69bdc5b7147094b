#!/usr/bin/env bash
# GPU check of evprop's CUDA backend; prints one JSON object (what it measures: scripts/gpu_check.py's docstring).
# Written for a machine with an NVIDIA GPU where Python 3.12, numpy 2, numba, numba-cuda, scipy and h5py are present
# and nothing can be installed: evprop runs from this source tree (PYTHONPATH), and its one other dependency, the
# pure-Python nir, comes from the wheel in scripts/gpu_check_wheels/ (its README says where it is from).
#   scripts/gpu_check.sh [--budget-s 270]                   # on the GPU machine; PYTHON=... picks the interpreter
#   NUMBA_ENABLE_CUDASIM=1 scripts/gpu_check.sh --tiny       # anywhere: numba's CUDA simulator, tiny sizes
# Exit code 0 when CUDA and CPU agree (and the NIR round trip holds), 1 otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
path="$root"
for wheel in "$root"/scripts/gpu_check_wheels/*.whl; do
    path="$path:$wheel"                  # pure-Python wheels are zip archives Python imports from directly
done
export PYTHONPATH="$path${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" "$root/scripts/gpu_check.py" "$@"
