#!/usr/bin/env bash
# The main job on the built-in default: write the synthetic sample bag, replay it through
# vggt_ros, score it. Extra args go to `vggt-ros replay` (e.g. --predictor vggt --weights FILE).
# The predictor is `auto`: VGGT when its weights can be had, else (offline, no cached weights) a
# short note on how to get them and the same replay with the SIMULATED predictor (a test double).
# `--predictor vggt` makes missing weights an error (exit 3).
set -euo pipefail
cd "$(dirname "$0")"
tools/bootstrap.sh
OUT=${VGGT_ROS_DEMO_DIR:-demo_output}
.venv/bin/vggt-ros sample "$OUT/sample"
exec .venv/bin/vggt-ros replay "$OUT/sample/sample.mcap" -o "$OUT/replay" \
  --ground-truth "$OUT/sample/ground_truth.tum" --predictor auto "$@"
