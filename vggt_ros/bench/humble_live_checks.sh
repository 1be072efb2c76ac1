#!/usr/bin/env bash
# Live checks on a real ROS 2 (Humble or Jazzy): issue 10 ("the live node must never die"), and the live
# parts of issues 9 (a loop closure moves /vggt/path and /vggt/map) and 13 (metric scale from depth / odometry).
# Not run by CI (they need minutes, sysctl rights and, for ctrl_c, ~6 GB of RAM for VGGT-1B on CPU).
#
# Prerequisites (README "ROS 2 (Humble, Jazzy)"): a built workspace, then in this shell
#   source /opt/ros/$ROS_DISTRO/setup.bash && source ~/ws/install/setup.bash
#   export RMW_IMPLEMENTATION=rmw_cyclonedds_cpp
#   export CYCLONEDDS_URI=file://$(ros2 pkg prefix vggt_ros)/share/vggt_ros/config/cyclonedds_loopback.xml
#   sudo sysctl -w net.core.rmem_max=67108864          # big_images
#
# Usage: bash humble_live_checks.sh save_map|ctrl_c|big_images|loop_soak|loop_closure|metric_scale|all
#        (OUT=dir for logs; RATE=0.5 plays the loop_closure bag at half speed on a loaded machine, so that
#        the node drops no frame: the check is about the closure, not throughput)
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

wait_active() {  # LOG [SECONDS]: until the node says it is active (its autostart parameter drives the lifecycle)
  local i
  for i in $(seq 1 "${2:-60}"); do grep -q "active: listening" "$1" && return 0; sleep 1; done
  echo "node not active after ${2:-60} s (log $1)"; return 1
}

start_simulated() {  # NAME [ARGS]: the node in test mode (simulated predictor), sim time; sets NODE_PID
  local name=$1; shift
  "$(node_exe)" --ros-args -r __ns:=/$NS -p predictor:=simulated -p use_sim_time:=true -p autostart:=true \
    -p image_topic:=/camera/image_raw -p camera_info_topic:=/camera/camera_info "$@" \
    >"$OUT/node_$name.log" 2>&1 &
  NODE_PID=$!
  wait_active "$OUT/node_$name.log"
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
  local weights="$OUT/vggt_formula.safetensors" timeout_s=5.0  # a float: the parameter is a double
  [ -f "$weights" ] || python3 -c "
from safetensors.torch import save_file
from vggt_ros.model.formula_weights import fill_module_
from vggt_ros.model.vggt import VGGT
m = VGGT.empty(); fill_module_(m); save_file(m.state_dict(), '$weights')" || { bad "ctrl_c: no weights"; return; }
  sample_bag
  for i in $(seq 1 10); do
    "$(node_exe)" --ros-args -r __ns:=/$NS -p "weights_path:=$weights" -p device:=cpu -p autostart:=true \
      -p image_topic:=/camera/image_raw -p camera_info_topic:=/camera/camera_info -p window_anchors:=1 \
      -p window_new_frames:=2 -p shutdown_timeout:=$timeout_s >"$OUT/ctrl_c_$i.log" 2>&1 &
    NODE_PID=$!
    wait_active "$OUT/ctrl_c_$i.log" 300 || { bad "ctrl_c $i: never active"; kill -INT "$NODE_PID"; continue; }
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
  timeout 310 ros2 bag play -s mcap "$SAMPLE/sample.mcap" --clock --loop >/dev/null 2>&1 &
  local play=$! t0=$SECONDS
  : >"$OUT/soak.txt"
  for k in $(seq 1 10); do
    while [ $((SECONDS - t0)) -lt $((30 * k - 8)) ]; do sleep 1; done  # a sample every 30 s, inside the play
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

watch_topics() {  # SECONDS FILE: path / map / loop closures / window stats as the node publishes them
  timeout "$1" python3 - "$NS" >"$2" 2>&1 <<'PY'
import sys, numpy as np, rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from nav_msgs.msg import Path
from sensor_msgs.msg import PointCloud2
from vggt_ros_msgs.msg import LoopClosure, WindowStats
ns = sys.argv[1]
rclpy.init()
node = rclpy.create_node("vggt_live_watch")
latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)
paths = []
def on_path(m):
    paths.append({(p.header.stamp.sec, p.header.stamp.nanosec): np.array([p.pose.position.x, p.pose.position.y,
                  p.pose.position.z]) for p in m.poses})
def on_map(m):
    print(f"map: {m.width * m.height} points, stamp {m.header.stamp.sec}.{m.header.stamp.nanosec:09d}", flush=True)
def on_loop(m):
    print(f"loop_closure: query kf {m.query_keyframe_id} -> kf {m.match_keyframe_id}, score {m.score:.3f}, "
          f"inliers {m.num_inliers}, correction {m.correction_m:.4f} m / {m.correction_deg:.3f} deg / "
          f"scale {m.correction_scale:.4f}; path messages so far {len(paths)}", flush=True)
def on_stats(m):
    if m.window_id % 5 == 0 or m.scale_state not in ("none", "not_metric_yet"):
        print(f"window {m.window_id}: {m.tracking_state}, scale_state {m.scale_state}, "
              f"metric_scale {m.metric_scale:.4f} +- {m.metric_scale_sigma:.4f}", flush=True)
node.create_subscription(Path, f"/{ns}/path", on_path, latched)
node.create_subscription(PointCloud2, f"/{ns}/map", on_map, latched)
node.create_subscription(LoopClosure, f"/{ns}/loop_closures", on_loop, 10)
node.create_subscription(WindowStats, f"/{ns}/window_stats", on_stats, 50)
try:
    rclpy.spin(node)
except BaseException:
    pass
finally:  # how far each published path moved the poses it shares with the one before
    moves = []
    for a, b in zip(paths, paths[1:]):
        common = set(a) & set(b)
        moves.append(max((float(np.linalg.norm(a[k] - b[k])) for k in common), default=0.0))
    print(f"path messages {len(paths)}; largest move of already-published poses between two path "
          f"messages: {max(moves, default=0.0):.4f} m (in message {int(np.argmax(moves)) + 1 if moves else 0})",
          flush=True)
PY
}

check_loop_closure() {  # issue 9: a 600-frame loop sample (one slow lap): the loop closes in the last window, which the
  # live node processes idle_flush (1 s) after the bag ended; the closure moves /vggt/path and /vggt/map
  local s2="$OUT/sample600"
  [ -f "$s2/sample.mcap" ] || ros2 run vggt_ros vggt-ros sample "$s2" --frames 600 --no-progress >"$OUT/sample600.log" 2>&1
  start_simulated loop_closure
  watch_topics 200 "$OUT/loop_closure.txt" &
  local watch=$!
  sleep 2
  ros2 bag play -s mcap "$s2/sample.mcap" --clock --rate "${RATE:-1}" >/dev/null 2>&1
  sleep 5; kill -INT "$watch"; wait "$watch"
  cat "$OUT/loop_closure.txt"
  grep -q "^loop_closure:" "$OUT/loop_closure.txt" && pass "loop_closure: published live" \
    || bad "loop_closure: none (see $OUT/loop_closure.txt, $OUT/node_loop_closure.log)"
  kill -INT "$NODE_PID"; wait "$NODE_PID"
}

check_metric_scale() {  # issue 13: scale_source depth and odometry on the sample bag: metric state, metres
  sample_bag
  local src
  for src in depth odometry; do
    if [ "$src" = depth ]; then
      start_simulated "scale_$src" -p scale_source:=depth -p metric_depth_topic:=/camera/depth/image_rect_raw
    else
      start_simulated "scale_$src" -p scale_source:=odometry -p publish_tf:=none
    fi
    watch_topics 60 "$OUT/scale_$src.txt" &
    local watch=$!
    sleep 2
    ros2 bag play -s mcap "$SAMPLE/sample.mcap" --clock --rate "${RATE:-1}" >/dev/null 2>&1 &
    local play=$!
    sleep 8
    timeout 5 ros2 topic echo --once /$NS/depth 2>/dev/null | grep -E "encoding|height|width" \
      | tee "$OUT/scale_${src}_depth.txt"
    wait "$play"; sleep 3; kill -INT "$watch"; wait "$watch"
    grep -E "scale_state metric" "$OUT/scale_$src.txt" | tail -2
    grep -q "scale_state metric" "$OUT/scale_$src.txt" && pass "metric_scale $src: metric" \
      || bad "metric_scale $src: never metric (see $OUT/scale_$src.txt, $OUT/node_scale_$src.log)"
    kill -INT "$NODE_PID"; wait "$NODE_PID"
  done
}

case "${1:-all}" in
  save_map) check_save_map ;;
  ctrl_c) check_ctrl_c ;;
  big_images) check_big_images ;;
  loop_soak) check_loop_soak ;;
  loop_closure) check_loop_closure ;;
  metric_scale) check_metric_scale ;;
  all) check_save_map; check_big_images; check_loop_closure; check_metric_scale; check_loop_soak; check_ctrl_c ;;
  *) echo "usage: $0 save_map|ctrl_c|big_images|loop_soak|loop_closure|metric_scale|all"; exit 2 ;;
esac
exit $fail
