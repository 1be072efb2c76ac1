#!/usr/bin/env bash
# The main job on the built-in default: write the synthetic sample bag, replay it through
# vggt_ros, score it. Extra args go to `vggt-ros replay` (e.g. --predictor simulated).
set -euo pipefail
cd "$(dirname "$0")"
tools/bootstrap.sh
OUT=${VGGT_ROS_DEMO_DIR:-demo_output}
.venv/bin/vggt-ros sample "$OUT/sample"
exec .venv/bin/vggt-ros replay "$OUT/sample/sample.mcap" -o "$OUT/replay" \
  --ground-truth "$OUT/sample/ground_truth.tum" "$@"
