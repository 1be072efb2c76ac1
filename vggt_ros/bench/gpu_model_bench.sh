#!/usr/bin/env bash
# The ONE prepared GPU script of issue 14, for an H100/H200 device machine (<= 8 minutes): Python 3.12 +
# torch preinstalled, no package registry, so everything runs from the repo tree (PYTHONPATH, no pip).
#
# Prints, in order (every step has its own time limit; a failing step is reported and the next runs):
#  0. the card, torch/CUDA versions, and which scaled_dot_product_attention kernels run for VGGT's
#     frame and global attention shapes (bench/gpu_e2e.py --sections sdpa);
#  1. a tiny-config CUDA smoke test (autocast dtypes, heads fp32);
#  2. forward time + peak memory for 1/2/4/8/16/32 frames at 392x518 (H x W), bf16 autocast, aggregator
#     only and with heads, next to the reference's published H100 figures (aggregator only, FA3):
#       1: 0.04 s / 1.88 GB, 2: 0.05 / 2.07, 4: 0.07 / 2.45, 8: 0.11 / 3.23, 10: 0.14 / 3.63,
#       20: 0.31 / 5.58, 50: 1.04 / 11.41, 100: 3.12 / 21.15; random weights (timing does not depend
#       on values);
# 2b. the node's window (camera, depth, track with 256 queries, no point head) for 8-32 frames: the
#     frames/s each window length sustains on this GPU (window size is chosen from it);
# 2c. opt-in, COMPILE=inductor|cudagraphs: the same window with the aggregator compiled (minutes, so on
#     its own: cd vggt_ros && python3 bench/model_bench.py --device cuda --config full --dtype bf16
#     --weights random --frames 16 --res 392x518 --heads node --queries 256 --repeats 3 --warmup 2
#     --compile inductor);
# 2d. the 16-frame node window at 256 / 512 / 1024 track queries (and without the track head): what
#     the track_queries parameter costs;
#  3. the cached-token path vs the plain forward;
#  4. bf16 (and fp32) outputs with the formula weights VGGT-FW1 against the fp32 golden fixtures
#     (tolerance printed);
#  5. a 600-frame 640x480 synthetic sample bag end to end (bench/gpu_e2e.py): replay through the real
#     VGGT path with formula weights, then the same replay with the simulated predictor's geometry and
#     the real network's cost per call (formula weights predict no real geometry, so their windows,
#     keyframes and loop verifications are not a trained network's); each with new frames/s, latency
#     p50/p95, peak GPU memory, drops and the predictor's time by call kind; then the live node (worker,
#     publisher and predictor threads) with that double, shipped defaults, predict_after_keyframes and
#     predict_ahead with 6 anchors (README "Real time on one GPU"): all frames
#     queued at once (sustained new frames/s), then at 30 Hz (image-to-odometry latency p50/p95).
# Steps 4-5 need the runtime's Python packages; the device image (2026-12) lacks rosbags, gtsam and
# evo. Put their cp312 wheels in <repo>/.whl (ignored by git; carry it) and the script installs them:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     -d .whl gtsam==4.3.0 rosbags==0.11.9 apsw backports.zstd lz4 ruamel.yaml mcap zstandard evo
# (~45 MB). Where a package is still missing, step 5 says which and ends.
#
# Usage (from anywhere):  OUT=/some/dir bash vggt_ros/bench/gpu_model_bench.sh
# Dry run on a CPU (what test_bench_gpu_script.py runs):  DRY=1 bash vggt_ros/bench/gpu_model_bench.sh
# Writes $OUT/gpu_model_bench.md (the table), $OUT/gpu_window.md, $OUT/gpu_compare.md, $OUT/env.txt,
# $OUT/log.txt, $OUT/golden.txt, $OUT/e2e.txt (7 files: the device tool returns at most 8).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PKG="$(dirname "$HERE")"                      # vggt_ros/ (the package root with vggt_ros/vggt_ros)
OUT="${OUT:-$PKG/bench_out}"
PY="${PYTHON:-python3}"
if [[ "${DRY:-0}" == "1" ]]; then   # a dry run of this script on a CPU: tiny model, small sizes
  DEVICE=cpu CONFIG=tiny FRAMES=1,2 WIN_FRAMES=2 Q_FRAMES=2 RES=56x84 CMP_FRAMES=2 E2E_ARGS="--frames 40 --width 160 --height 120 --image-size 84"
  COMPILE="${COMPILE:-aot_eager}" COMPILE_FRAMES=2
fi
FRAMES="${FRAMES:-1,2,4,8,16,32}"
RES="${RES:-392x518}"
DEVICE="${DEVICE:-cuda}"
CONFIG="${CONFIG:-full}"
E2E_ARGS="${E2E_ARGS:---frames 600 --width 640 --height 480}"
step() {  # step NAME LIMIT_S CMD...: run with a time limit; report a failure and go on
  local name="$1" limit="$2"; shift 2
  echo; echo "##### $name (limit ${limit} s)"
  local t0=$SECONDS
  if timeout "$limit" "$@"; then echo "##### $name: done in $((SECONDS - t0)) s"
  else echo "##### $name: FAILED or timed out (exit $?) after $((SECONDS - t0)) s"; fi
}
export DEVICE
mkdir -p "$OUT"
WHEELS="${WHEELS:-$(dirname "$PKG")/.whl}"
if [[ "${DRY:-0}" != "1" ]] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/vggt_site \
    "$WHEELS"/*.whl && export PYTHONPATH="/tmp/vggt_site${PYTHONPATH:+:$PYTHONPATH}"
fi
cd "$PKG"
export PYTHONPATH="$PKG${PYTHONPATH:+:$PYTHONPATH}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || true
  "$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
    print("sdpa flash", torch.backends.cuda.flash_sdp_enabled(), "mem_efficient",
          torch.backends.cuda.mem_efficient_sdp_enabled(), "cudnn", torch.backends.cuda.cudnn_sdp_enabled())
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step "0. sdpa kernels" 45 "$PY" bench/gpu_e2e.py --device "$DEVICE" --config "$CONFIG" --sections sdpa 2>&1 | tee -a "$OUT/env.txt"

# 1) tiny config on CUDA: shapes, finiteness, heads fp32 under autocast (seconds).
step "1. tiny smoke" 45 "$PY" - <<'EOF' 2>&1 | tee "$OUT/log.txt"
import torch
from vggt_ros.model.vggt import VGGT, VGGTConfig, autocast_dtype
import os
dev = torch.device(os.environ["DEVICE"])
m = VGGT(VGGTConfig.tiny()).to(dev).eval()
x = torch.rand(3, 3, 56, 84, device=dev)
q = torch.rand(5, 2, device=dev) * 50
with torch.inference_mode():
    out, tok = m.infer(x, query_points=q, heads=("camera", "depth", "point", "track"))
    ref, _ = m.infer(x, query_points=q, heads=("camera", "depth"), precision=None)
print("autocast dtype", autocast_dtype(dev), "tokens", tok.dtype, "depth", out["depth"].dtype,
      "pose", out["pose_enc"].dtype)
assert out["depth"].dtype == torch.float32 and torch.isfinite(out["depth"]).all()
err = float((out["depth"] - ref["depth"]).abs().max() / ref["depth"].abs().max())
print(f"tiny: autocast vs fp32 depth rel diff {err:.2e}")
EOF

# 2) the table: aggregator only and with heads, bf16 autocast.
step "2. forward table" 120 "$PY" bench/model_bench.py --device "$DEVICE" --config "$CONFIG" --dtype bf16 --weights random \
  --frames "$FRAMES" --res "$RES" --heads agg,cam+depth,all --repeats 3 --warmup 2 --out "$OUT/gpu_model_bench.md" 2>&1 | tee -a "$OUT/log.txt"

# 2b) the node's window (camera, depth, 256 track queries; no point head) by window length: what the
# window size is chosen from (new frames per window / time = frames/s the GPU sustains).
step "2b. node window" 90 "$PY" bench/model_bench.py --device "$DEVICE" --config "$CONFIG" --dtype bf16 --weights random \
  --frames "${WIN_FRAMES:-8,12,16,20,24,32}" --res "$RES" --heads node --queries 256 --repeats 3 --warmup 2 \
  --out "$OUT/gpu_window.md" 2>&1 | tee -a "$OUT/log.txt"

# 2c) opt-in (COMPILE=inductor or cudagraphs; off by default: compiling takes minutes and the script
# must stay within 8): the node's window with the aggregator blocks compiled as the node's
# compile_backend does, first call (compile) timed apart; table in log.txt. DRY runs it with aot_eager.
if [[ -n "${COMPILE:-}" ]]; then
  step "2c. compiled node window" 420 "$PY" bench/model_bench.py --device "$DEVICE" --config "$CONFIG" --dtype bf16 \
    --weights random --frames "${COMPILE_FRAMES:-16}" --res "$RES" --heads node --queries 256 --repeats 3 --warmup 2 \
    --compile "$COMPILE" 2>&1 | tee -a "$OUT/log.txt"
fi

# 2d) the track head's cost by query count (node parameter track_queries; README "What sets a pinned link":
# 1024 queries pin the keyframes tighter, at a cost this measures): a 16-frame node window at 256, 512, 1024.
step "2d. track queries" 60 "$PY" bench/model_bench.py --device "$DEVICE" --config "$CONFIG" --dtype bf16 \
  --weights random --frames "${Q_FRAMES:-16}" --res "$RES" --heads cam+depth,node --queries 256,512,1024 \
  --repeats 3 --warmup 2 2>&1 | tee -a "$OUT/log.txt"

# 3) cached DINO tokens (sliding window: all frames but the last reused) vs plain forward.
step "3. cached tokens" 45 "$PY" bench/model_bench.py --device "$DEVICE" --config "$CONFIG" --dtype bf16 --weights random \
  --frames "${CMP_FRAMES:-8,16}" --res "$RES" --heads cam+depth --compare --warmup 2 --repeats 3 --out "$OUT/gpu_compare.md" 2>&1 | tee -a "$OUT/log.txt"

# 4) golden parity in bf16 and the end-to-end replay / live run with the formula weights.
# shellcheck disable=SC2086
step "4. golden" 60 "$PY" bench/gpu_e2e.py --device "$DEVICE" --config "$CONFIG" \
  --sections golden 2>&1 | tee "$OUT/golden.txt"
step "5. end to end" 360 "$PY" bench/gpu_e2e.py --device "$DEVICE" --config "$CONFIG" \
  --sections e2e $E2E_ARGS 2>&1 | tee "$OUT/e2e.txt"

echo "tables in $OUT"
