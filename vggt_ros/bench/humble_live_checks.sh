#!/usr/bin/env bash
# Live checks of issue 10 ("the live node must never die") on a real ROS 2 (Humble or Jazzy).
# Not run by CI (they need minutes, sysctl rights and, for ctrl_c, ~6 GB of RAM for VGGT-1B on CPU).
#
# Prerequisites (README "ROS 2 (Humble, Jazzy)"): a built workspace, then in this shell
#   source /opt/ros/$ROS_DISTRO/setup.bash && source ~/ws/install/setup.bash
#   export RMW_IMPLEMENTATION=rmw_cyclonedds_cpp
#   export CYCLONEDDS_URI=file://$(ros2 pkg prefix vggt_ros)/share/vggt_ros/config/cyclonedds_loopback.xml
#   sudo sysctl -w net.core.rmem_max=67108864          # big_images
#
# Usage: bash humble_live_checks.sh save_map|ctrl_c|big_images|loop_soak|all   (OUT=dir for logs)
# Each check prints PASS/FAIL lines and exits non-zero on a failure.
set -uo pipefail

OUT="${OUT:-/tmp/vggt_live_checks}"
SAMPLE="$OUT/sample"
NS=vggt
mkdir -p "$OUT"
fail=0
pass() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fail=1; }

sample_bag() {  # the synthetic 300-frame sample with ground truth (test mode of the node)
  [ -f "$SAMPLE/sample.mcap" ] || ros2 run vggt_ros vggt-ros sample "$SAMPLE" >"$OUT/sample.log" 2>&1
}

node_exe() {  # the node's own process (not `ros2 run`, which does not pass a SIGINT on to it)
  echo "$(ros2 pkg prefix vggt_ros)/lib/vggt_ros/vggt_node"
}

start_simulated() {  # NAME [ARGS]: the node in test mode (simulated predictor), sim time; sets NODE_PID
  local name=$1; shift
  "$(node_exe)" --ros-args -r __ns:=/$NS -p predictor:=simulated -p use_sim_time:=true \
    -p image_topic:=/camera/image_raw -p camera_info_topic:=/camera/camera_info "$@" \
    >"$OUT/node_$name.log" 2>&1 &
  NODE_PID=$!
  sleep 3
  ros2 lifecycle set /$NS/vggt_ros configure >/dev/null && ros2 lifecycle set /$NS/vggt_ros activate >/dev/null
}

check_save_map() {  # 100 calls alternating a good and a bad name: the node answers every one, stays up
  sample_bag
  start_simulated save_map -p "map_save_dir:=$OUT/maps"
  ros2 bag play -s mcap "$SAMPLE/sample.mcap" --clock >/dev/null 2>&1
  : >"$OUT/save_map.txt"
  for _ in $(seq 1 50); do
    ros2 service call /$NS/save_map vggt_ros_msgs/srv/SaveMap "{name: run1}" >>"$OUT/save_map.txt" 2>&1
    ros2 service call /$NS/save_map vggt_ros_msgs/srv/SaveMap "{name: '../x'}" >>"$OUT/save_map.txt" 2>&1
  done
  ok=$(grep -c "success=True" "$OUT/save_map.txt"); refused=$(grep -c "success=False" "$OUT/save_map.txt")
  [ "$ok" = 50 ] && [ "$refused" = 50 ] && kill -0 "$NODE_PID" 2>/dev/null \
    && pass "save_map: 50 saved, 50 refused, node alive" || bad "save_map: $ok saved, $refused refused"
  [ ! -e "$OUT/x" ] && pass "save_map: nothing written outside map_save_dir" || bad "save_map: $OUT/x exists"
  kill -INT "$NODE_PID"; wait "$NODE_PID"
}

check_ctrl_c() {  # 10 x Ctrl-C inside a real-network window (formula weights, CPU): exit 0 within timeout + 2 s
  local weights="$OUT/vggt_formula.safetensors" timeout_s=5
  [ -f "$weights" ] || python3 -c "
from safetensors.torch import save_file
from vggt_ros.model.formula_weights import fill_module_
from vggt_ros.model.vggt import VGGT
m = VGGT.empty(); fill_module_(m); save_file(m.state_dict(), '$weights')" || { bad "ctrl_c: no weights"; return; }
  sample_bag
  for i in $(seq 1 10); do
    "$(node_exe)" --ros-args -r __ns:=/$NS -p "weights_path:=$weights" -p device:=cpu \
      -p image_topic:=/camera/image_raw -p camera_info_topic:=/camera/camera_info -p window_anchors:=1 \
      -p window_new_frames:=2 -p shutdown_timeout:=$timeout_s >"$OUT/ctrl_c_$i.log" 2>&1 &
    NODE_PID=$!
    sleep 5
    ros2 lifecycle set /$NS/vggt_ros configure >/dev/null && ros2 lifecycle set /$NS/vggt_ros activate >/dev/null
    timeout 8 ros2 bag play -s mcap "$SAMPLE/sample.mcap" >/dev/null 2>&1
    sleep $((3 + i))  # somewhere inside the first windows (tens of seconds each on a CPU)
    t0=$(date +%s.%N); kill -INT "$NODE_PID"; wait "$NODE_PID"; rc=$?; t1=$(date +%s.%N)
    took=$(python3 -c "print(round($t1 - $t0, 2))")
    if [ "$rc" = 0 ] && python3 -c "import sys; sys.exit(not $took <= $timeout_s + 2)" \
       && ! grep -q "terminate called" "$OUT/ctrl_c_$i.log"; then pass "ctrl_c $i: rc 0 in $took s"
    else bad "ctrl_c $i: rc $rc in $took s (log $OUT/ctrl_c_$i.log)"; fi
  done
}

check_big_images() {  # the rclpy tests, among them a 1920x1080 and a 3840x2160 rgb8 image reaching the node
  local test_file
  test_file="$(cd "$(dirname "$0")/.." && pwd)/test/test_ros_node.py"
  python3 -m pytest -q -p no:cacheprovider "$test_file" -rs >"$OUT/rclpy_tests.log" 2>&1 && pass "rclpy tests (incl. 1080p and 4K images): $(tail -1 "$OUT/rclpy_tests.log")" \
    || bad "rclpy tests: $(tail -1 "$OUT/rclpy_tests.log") (log $OUT/rclpy_tests.log)"
}

check_loop_soak() {  # 5 min of `ros2 bag play --loop --clock`: poses after every loop, flat memory
  sample_bag
  start_simulated soak
  timeout 300 ros2 bag play -s mcap "$SAMPLE/sample.mcap" --clock --loop >/dev/null 2>&1 &
  local play=$!
  : >"$OUT/soak.txt"
  for k in $(seq 1 10); do
    sleep 30
    odo=$(timeout 5 ros2 topic echo --once --qos-depth 32 /$NS/odometry 2>/dev/null | grep -m1 "sec:" | tr -d ' ')
    echo "t=$((30 * k))s rss_kb=$(ps -o rss= -p "$NODE_PID") odometry_stamp=$odo" | tee -a "$OUT/soak.txt"
  done
  wait "$play"
  diag=$(timeout 5 ros2 topic echo --once /diagnostics 2>/dev/null | grep -A1 "clock_jump_back" | tail -1)
  echo "diagnostics clock_jump_back: $diag" | tee -a "$OUT/soak.txt"
  [ "$(grep -c 'odometry_stamp=sec:' "$OUT/soak.txt")" = 10 ] && pass "loop_soak: poses every 30 s for 5 min" \
    || bad "loop_soak: poses missing (see $OUT/soak.txt)"
  kill -INT "$NODE_PID"; wait "$NODE_PID"
}

case "${1:-all}" in
  save_map) check_save_map ;;
  ctrl_c) check_ctrl_c ;;
  big_images) check_big_images ;;
  loop_soak) check_loop_soak ;;
  all) check_save_map; check_big_images; check_loop_soak; check_ctrl_c ;;
  *) echo "usage: $0 save_map|ctrl_c|big_images|loop_soak|all"; exit 2 ;;
esac
exit $fail
