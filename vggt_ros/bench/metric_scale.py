"""Metric scale benchmark (issue 13): does the map come out in metres, from a depth camera or odometry?

Synthetic world, simulated predictor (TEST DOUBLE of VGGT: ground truth + documented noise), robot
sensors of sim/sensors.py: a half-resolution 16UC1 depth camera (1 % noise, mm quantisation, 10 % holes,
2 % outliers) and wheel odometry (2 % drift, a slip event every 120 frames). For the loop, forward and
rotation sequences, seeds 0-2, predictor noise 1x and 2x, and scale_source depth / odometry, prints:

- ATE without scale alignment (SE(3) only, evo) as % of path length: the error of outputs claiming metres
  (targets: depth <= 1 %, odometry <= 3 %), next to the Sim(3)-aligned ATE;
- scale error at keyframes after the first window: |median(published depth / true depth) - 1| of each
  keyframe's depth image when it was published, over keyframes published with a metric estimate (median
  and max; target < 1 % for depth), and how many keyframes came before the first estimate (odometry needs
  0.9 m of travel). This includes the predictor's own per-frame depth bias (SimNoise.depth_bias_frac, up
  to 3 % at 1x), which no global scale can remove;
- the final scale state.

Then the hold: forward 120 frames, a 150-frame pure rotation, 60 frames standing still, odometry: the
published depth's scale error at the end of the forward part and at the end (target: unchanged within
0.5 %).

  python bench/metric_scale.py              # the full table (~36 runs of 300 frames at 160x120)
  python bench/metric_scale.py --frames 150 --seeds 1   # quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from vggt_ros.eval.metrics import evaluate_trajectory  # noqa: E402
from vggt_ros.sim.scene import Scene  # noqa: E402
from vggt_ros.sim.sensors import DepthSensor, OdometrySensor  # noqa: E402
from vggt_ros.sim.sequence import SyntheticSequence, intrinsics  # noqa: E402
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor  # noqa: E402
from vggt_ros.sim.trajectories import TRAJECTORIES, forward, look_at  # noqa: E402
from vggt_ros.slam.config import PipelineConfig, ScaleConfig  # noqa: E402
from vggt_ros.slam.pipeline import Pipeline  # noqa: E402
from vggt_ros.slam.updates import DepthFrame, KeyframeAdded, WindowStats  # noqa: E402

W, H = 160, 120
NOISE_KEYS = ("rot_deg", "trans_frac", "focal_frac", "depth_frac", "depth_bias_frac", "depth_outlier_frac",
              "track_px", "track_outlier_frac")


def scaled_noise(factor: float) -> SimNoise:
    """SimNoise with every error magnitude multiplied by factor (as bench/slam_accuracy.py)."""
    base = SimNoise()
    return dataclasses.replace(base, **{k: getattr(base, k) * factor for k in NOISE_KEYS})


def hold_poses(n_fwd: int = 120, n_rot: int = 150, n_still: int = 60) -> np.ndarray:
    """Forward, then a pure rotation in place (yaw sweep 150 deg), then standing still."""
    fwd = forward(n_fwd)
    eye = fwd[-1, :3, 3]
    yaw = np.deg2rad(np.linspace(0.0, 150.0, n_rot))
    d = np.stack([np.cos(yaw), np.sin(yaw), np.full(n_rot, np.tan(np.deg2rad(-8.0)))], -1)
    rot = look_at(np.broadcast_to(eye, (n_rot, 3)), eye + d)
    return np.concatenate([fwd, rot, np.repeat(rot[-1:], n_still, axis=0)])


@dataclasses.dataclass
class Run:
    ate_se3_pct: float
    ate_sim3_pct: float
    kf_err_med: float
    kf_err_max: float
    state: str
    depth_err: dict[int, float]  # stamp -> |published depth / true - 1| of every frame
    scale_at: list[tuple[int, float]]  # (window stamp, metric scale after it)
    kf_before_metric: int  # keyframes after the first window published before the first estimate


def run(seq: SyntheticSequence, source: str, seed: int, noise: float) -> Run:
    pipe = Pipeline(SimulatedPredictor(seq.image_truth, scaled_noise(noise), seed=seed),
                    PipelineConfig(seed=seed, scale=ScaleConfig(source=source)))
    dsens, osens = DepthSensor(), OdometrySensor()
    odom = osens.poses(seq.poses, seed)
    K_d = dsens.intrinsics(seq.K)
    out = []
    for i in range(len(seq)):
        f = seq[i]
        if source == "depth":
            mm = dsens.measure(seq.ground_truth_at(i).depth, seed * 1_000_003 + i).astype(np.float32) / 1000
            mm[mm == 0] = np.nan
            pipe.push_metric_depth(f.stamp_ns, mm, K_d)
        else:
            pipe.push_odometry(f.stamp_ns, odom[i] @ osens.T_base_cam)
        out += pipe.push(f)
    out += pipe.flush()
    depth_err: dict[int, float] = {}
    for u in out:
        if isinstance(u, DepthFrame):
            truth = seq.ground_truth(u.stamp_ns).depth
            ok = np.isfinite(u.depth) & np.isfinite(truth) & (truth > 0)
            if ok.sum() > 100:
                depth_err[u.stamp_ns] = abs(float(np.median(u.depth[ok] / truth[ok])) - 1)
    state_of = {u.window_id: u.scale_state for u in out if isinstance(u, WindowStats)}
    kfs = [u for u in out if isinstance(u, KeyframeAdded) and u.window_id > 0 and u.stamp_ns in depth_err]
    kf = [depth_err[u.stamp_ns] for u in kfs if state_of.get(u.window_id) in ("metric", "held")]
    before = sum(1 for u in kfs if state_of.get(u.window_id) not in ("metric", "held"))
    stamps, T = pipe.trajectory()
    G = np.stack([seq.ground_truth(int(s)).T_world_cam for s in stamps])
    try:
        m = evaluate_trajectory(stamps, G, stamps, T)
        se3, sim3 = m.ate_se3_percent, m.ate_percent
    except Exception:  # a pure rotation has no path length to align on
        se3 = sim3 = float("nan")
    state = [u.scale_state for u in out if isinstance(u, WindowStats)][-1]
    scale_at = [(u.stamp_ns, u.metric_scale) for u in out if isinstance(u, WindowStats)]
    return Run(se3, sim3, float(np.median(kf)) if kf else float("nan"), max(kf) if kf else float("nan"),
               state, depth_err, scale_at, before)


def table(args: argparse.Namespace) -> None:
    print("| sequence | source | noise | seed | ATE SE(3) % path | ATE Sim(3) % | kf scale err med / max "
          "| kf before metric | state |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst: dict[tuple[str, str], float] = {}
    for kind in args.kinds.split(","):
        for seed in range(args.seeds):
            poses = TRAJECTORIES[kind](args.frames)
            seq = SyntheticSequence(Scene(seed=seed), poses, intrinsics(W, H), (W, H))
            for noise in (1.0, 2.0):
                for source in ("depth", "odometry"):
                    r = run(seq, source, seed, noise)
                    key = (kind, source)
                    if np.isfinite(r.ate_se3_pct):
                        worst[key] = max(worst.get(key, 0.0), r.ate_se3_pct)
                    print(f"| {kind} | {source} | {noise:.0f}x | {seed} | {r.ate_se3_pct:.3f} | "
                          f"{r.ate_sim3_pct:.3f} | {100 * r.kf_err_med:.2f} / {100 * r.kf_err_max:.2f} % | "
                          f"{r.kf_before_metric} | {r.state} |", flush=True)
    print("\nworst ATE SE(3) % of path: " + ", ".join(f"{k[0]}/{k[1]} {v:.3f}" for k, v in worst.items()))


def hold(args: argparse.Namespace) -> None:
    print("\nHold: forward 120, pure rotation 150, still 60 frames (odometry)")
    print("| seed | noise | published depth scale err, end of forward | at end | change "
          "| filter scale change |")
    print("|---|---|---|---|---|---|")
    for seed in range(args.seeds):
        poses = hold_poses()
        seq = SyntheticSequence(Scene(seed=seed), poses, intrinsics(W, H), (W, H))
        for noise in (1.0, 2.0):
            r = run(seq, "odometry", seed, noise)
            st = sorted(r.depth_err)
            fwd_end = [s for s in st if s <= int(seq.stamps_ns[119])]
            a = float(np.median([r.depth_err[s] for s in fwd_end[-12:]]))
            b = float(np.median([r.depth_err[s] for s in st[-12:]]))
            s0 = [s for t, s in r.scale_at if t <= int(seq.stamps_ns[119])][-1]
            s1 = r.scale_at[-1][1]
            print(f"| {seed} | {noise:.0f}x | {100 * a:.2f} % | {100 * b:.2f} % | {100 * (b - a):+.2f} % | "
                  f"{100 * (s1 / s0 - 1):+.3f} % |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--kinds", default="loop,forward,rotation")
    p.add_argument("--no-hold", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print("SIMULATED predictor (test double): the numbers measure the metric-scale machinery, not VGGT.")
    table(args)
    if not args.no_hold:
        hold(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
