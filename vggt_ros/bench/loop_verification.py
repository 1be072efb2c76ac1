"""How well does loop verification measure a loop's scale? (issue 9: relocalisation fixes a segment's scale)

In isolation from the rest of the SLAM core: keyframes sit at their ground-truth poses (world = metres), so
the true scale ratio of every loop is 1. Each keyframe's stored depth carries what a map keyframe carries:
a smooth regional bias (bicubic 3x4 field, max |b| = 0.06 / sqrt 2 x noise factor, a keyframe fused from
about two predictions) and a scale offset N(0, (1 % x noise factor)^2). Per trial, on the default room loop:
candidate-side keyframes at frames i-3, i, i+3 (segment 0, the candidate m = frame i), query-side keyframes
at frames i+1, i+4 (segment 1, a relocalising camera, the query q = frame i+4). LoopCloser._verify runs
with the simulated predictor (TEST DOUBLE of VGGT, SimNoise.harsh() x factor) for several
(verify_anchors, verify_query_keyframes): (1, 1) is the former 2-frame verification [m, q].

Printed per setting: loops verified / failed, error of log(scale_ratio) in % (RMS, median |e|, 90th
percentile |e|, mean).

  python bench/loop_verification.py                  # 60 trials, noise 1x and 2x (~1 min, 1 core)
  python bench/loop_verification.py --trials 20 --noise 1
"""

from __future__ import annotations

import argparse
import dataclasses
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from vggt_ros.sim.sequence import SyntheticSequence, make_sequence  # noqa: E402
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor, smooth_field  # noqa: E402
from vggt_ros.slam.config import LoopConfig, PipelineConfig  # noqa: E402
from vggt_ros.slam.keyframes import Keyframe, KeyframeManager  # noqa: E402
from vggt_ros.slam.loop_closure import LoopCloser  # noqa: E402
from vggt_ros.slam.stitching import TrackStitcher  # noqa: E402

W, H, STRIDE = 160, 120, 4
NOISE_KEYS = ("rot_deg", "trans_frac", "focal_frac", "depth_frac", "depth_bias_frac", "depth_outlier_frac",
              "track_px", "track_outlier_frac", "scale_jitter")
SETTINGS = ((1, 1), (3, 1), (1, 2), (3, 2))  #: (verify_anchors, verify_query_keyframes)


def keyframe(seq: SyntheticSequence, kf_id: int, frame: int, segment: int, rng: np.random.Generator,
             factor: float) -> Keyframe:
    """Keyframe at the ground-truth pose; stored depth (H/4, W/4) metres with a regional bias, an offset."""
    gt = seq.ground_truth_at(frame)
    g = gt.depth[::STRIDE, ::STRIDE].astype(np.float64)
    bias = smooth_field(rng, g.shape, 0.06 * factor / np.sqrt(2.0))
    d = g * (1.0 + bias) * (1.0 + rng.normal(0.0, 0.01 * factor))
    d = np.where(g > 0, d, np.nan).astype(np.float32)
    conf = np.full(d.shape, 10.0, np.float32)
    return Keyframe(kf_id, frame, int(seq.stamps_ns[frame]), seq.frame_id, kf_id, gt.T_world_cam.copy(),
                    seq.K.copy(), (H, W), True, STRIDE, 1, d, conf, seq.image(frame).copy(),
                    float(np.nanmedian(d)), segment_id=segment)


def run_setting(seq: SyntheticSequence, noise: SimNoise, factor: float, anchors: int, query: int,
                trials: int) -> tuple[np.ndarray, int]:
    """(errors of log(scale_ratio) in %, failed verifications) over `trials` loops."""
    cfg = LoopConfig(verify_anchors=anchors, verify_query_keyframes=query)
    config = PipelineConfig(loop=cfg)
    errs, fails = [], 0
    for t in range(trials):
        rng = np.random.default_rng(1000 + t)
        i = 10 + 6 * t
        kfs = [keyframe(seq, 0, i - 3, 0, rng, factor), keyframe(seq, 1, i, 0, rng, factor),
               keyframe(seq, 2, i + 3, 0, rng, factor), keyframe(seq, 3, i + 1, 1, rng, factor),
               keyframe(seq, 4, i + 4, 1, rng, factor)]
        manager = KeyframeManager()
        manager.keyframes = kfs
        predictor = SimulatedPredictor(seq.ground_truth, noise, seed=t)
        ver = LoopCloser(cfg, seed=t)._verify(kfs[4], kfs[1], 0.9, predictor, TrackStitcher(config.stitch),
                                              config, manager)
        if ver is None:
            fails += 1
        else:
            errs.append(100.0 * np.log(ver.scale_ratio))
    return np.array(errs), fails


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=60)
    ap.add_argument("--noise", default="1,2", help="noise factors on SimNoise.harsh()")
    args = ap.parse_args()
    seq = make_sequence("loop", 10 + 6 * args.trials + 8, width=W, height=H)
    print("| noise | verify_anchors | verify_query_keyframes | window frames | verified / failed | "
          "RMS % | median abs % | p90 abs % | mean % |")
    print("|---|---|---|---|---|---|---|---|---|")
    for factor in (float(x) for x in args.noise.split(",")):
        base = SimNoise.harsh()
        noise = dataclasses.replace(base, **{k: getattr(base, k) * factor for k in NOISE_KEYS})
        for a, q in SETTINGS:
            e, fails = run_setting(seq, noise, factor, a, q, args.trials)
            stats = "n/a | n/a | n/a | n/a"
            if e.size:
                stats = (f"{np.sqrt(np.mean(e**2)):.2f} | {np.median(np.abs(e)):.2f} | "
                         f"{np.percentile(np.abs(e), 90):.2f} | {np.mean(e):+.2f}")
            print(f"| {factor:g}x | {a} | {q} | {a + q} | {e.size} / {fails} | {stats} |", flush=True)


if __name__ == "__main__":
    main()
