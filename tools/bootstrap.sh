#!/usr/bin/env bash
# Creates ./.venv with vggt_ros and its test extras (CPU, no ROS needed). Idempotent.
# torch is pinned to the CPU build first: any other spec would pull the CUDA build (GBs).
# GPU users: install the CUDA build of torch (>= 2.3) into the venv instead, see README.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${VGGT_ROS_TORCH:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e './vggt_ros[test]'
