"""Keyframe chain: where the open-loop rotation drift of the map comes from (issue 9, scale drift).

Runs the shipped node configuration (loop closure off by default: the open chain of keyframes) on the
robustness cases (sim.cases) and prints, per case and simulated-noise ablation, the median [min-max] over
seeds of these figures of the longest segment's keyframes, against ground truth:

  kf               keyframes
  unpinned         keyframes whose pose PnP did not pin to the map (Keyframe.pinned False: they kept the
                   window's Sim(3)-aligned network pose: too few tracks, or a gate of the refinement)
  step deg (pinned / unpinned)
                   RMS change of a keyframe's orientation error from the previous keyframe's, for the
                   pinned and the unpinned keyframes: what each link adds to the chain
  unpinned share   the unpinned keyframes' part of the summed squared steps (of the chain's rotation
                   variance)
  walk deg 1 / 10 / 30
                   RMS change of the orientation error over 1, 10 and 30 keyframes (a random walk grows
                   as the square root of the lag; white error does not grow)

The orientation error of keyframe k is dR_k = R_est_k R_true_k^T; dR_{k+L} dR_k^T does not depend on how
the map's world frame sits in the simulator's. Ablations (--ablate) switch one part of the simulated
network's error off: none, depth_bias (depth_bias_frac 0), tracks (track_px 0 and no outliers), track_px
(the tracks' 1 px noise only), track_outliers (their outliers only), pose (the predicted camera rotation and
translation noise 0).

Usage (from the repository root; ~10-30 s per run on one core):
    python vggt_ros/bench/keyframe_chain.py [--cases figure8,kidnapped] [--seeds 0,1,2,3] [--noise 1]
        [--ablate none,pose] [--loop-closure off|on] [--param track_queries=1024]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import slam_robustness as sr  # noqa: E402
from vggt_ros.geometry.se3 import rotation_angle  # noqa: E402
from vggt_ros.sim.cases import CASES, Case, make_case_predictor, make_case_sequence  # noqa: E402
from vggt_ros.sim.sequence import SyntheticSequence  # noqa: E402
from vggt_ros.sim.simulated_predictor import SimNoise  # noqa: E402
from vggt_ros.slam.config import PipelineConfig  # noqa: E402
from vggt_ros.slam.keyframes import Keyframe  # noqa: E402
from vggt_ros.slam.pipeline import Pipeline  # noqa: E402

#: SimNoise fields each ablation sets to 0
ABLATIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "depth_bias": ("depth_bias_frac",),
    "tracks": ("track_px", "track_outlier_frac"),
    "track_px": ("track_px",),
    "track_outliers": ("track_outlier_frac",),
    "pose": ("rot_deg", "trans_frac"),
}
WALK_LAGS = (1, 10, 30)


def ablated(noise: SimNoise, ablation: str) -> SimNoise:
    """noise with the fields of ABLATIONS[ablation] set to 0."""
    return dataclasses.replace(noise, **{k: 0.0 for k in ABLATIONS[ablation]})


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else float("nan")


def chain_figures(keyframes: Sequence[Keyframe], seq: SyntheticSequence) -> dict[str, float]:
    """The figures of the module doc (degrees; NaN where a lag or a class of keyframes is missing) for the
    longest segment of `keyframes` (any order), against seq's ground-truth poses."""
    nan = float("nan")
    if not keyframes:
        return {"kf": 0.0}
    seg = Counter(k.segment_id for k in keyframes).most_common(1)[0][0]
    ks = sorted((k for k in keyframes if k.segment_id == seg), key=lambda k: k.keyframe_id)
    dR = [k.T_world_cam[:3, :3] @ seq.poses[seq.index_of(k.stamp_ns)][:3, :3].T for k in ks]

    def change(i: int, L: int) -> float:
        return float(np.degrees(rotation_angle(dR[i + L] @ dR[i].T)))

    out = {"kf": float(len(ks)), "unpinned": float(sum(k.pinned is False for k in ks))}
    steps = np.array([change(i - 1, 1) for i in range(1, len(ks))])
    pinned = np.array([ks[i].pinned is True for i in range(1, len(ks))], bool)
    unpinned = np.array([ks[i].pinned is False for i in range(1, len(ks))], bool)
    out["step_pinned"], out["step_unpinned"] = _rms(steps[pinned]), _rms(steps[unpinned])
    total = float(np.sum(np.square(steps)))
    out["unpinned_share"] = float(np.sum(np.square(steps[unpinned]))) / total if total > 0 else nan
    for L in WALK_LAGS:
        out[f"walk{L}"] = _rms(np.array([change(i, L) for i in range(len(ks) - L)]))
    return out


def run_chain(case: Case, seq: SyntheticSequence, cfg: PipelineConfig, noise: SimNoise, seed: int
              ) -> dict[str, float]:
    """One pipeline run over seq with the simulated network at `noise`; chain_figures of its keyframes."""
    p = Pipeline(make_case_predictor(case, seq, noise, seed), cfg)
    for i in range(len(seq)):
        p.push(seq[i])
    p.flush()
    return chain_figures(p.keyframes.keyframes, seq)


def table(name: str, rows: dict[str, list[dict[str, float]]]) -> str:
    """Markdown table of one case: a row per ablation, cells median [min-max] over its runs."""
    def cell(runs: list[dict[str, float]], key: str, fmt: str) -> str:
        return sr._med([r.get(key, float("nan")) for r in runs], fmt)

    head = ("| ablation | kf | unpinned | step deg pinned / unpinned | unpinned share | "
            + " / ".join(f"walk {L}" for L in WALK_LAGS) + " deg |")
    lines = [f"### {name}", "", head, "|" + "---|" * 6]
    for ab, runs in rows.items():
        walks = " / ".join(cell(runs, f"walk{L}", "{:.2f}") for L in WALK_LAGS)
        lines.append(
            f"| {ab} | {cell(runs, 'kf', '{:.0f}')} | {cell(runs, 'unpinned', '{:.0f}')} | "
            f"{cell(runs, 'step_pinned', '{:.2f}')} / {cell(runs, 'step_unpinned', '{:.2f}')} | "
            f"{cell(runs, 'unpinned_share', '{:.2f}')} | {walks} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="figure8,kidnapped")
    ap.add_argument("--seeds", default="0,1,2,3")
    ap.add_argument("--noise", type=float, default=1.0, help="multiple of SimNoise.harsh()")
    ap.add_argument("--ablate", default="none,pose", help=f"comma list of {', '.join(ABLATIONS)}")
    ap.add_argument("--loop-closure", choices=("off", "on"), default="off")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="node parameter override (runtime/params.py name, YAML value), repeatable")
    args = ap.parse_args(argv)
    params = sr.param_overrides(ap, args.param)
    cases = [c for c in args.cases.split(",") if c]
    ablations = [a for a in args.ablate.split(",") if a]
    bad = [c for c in cases if c not in CASES] + [a for a in ablations if a not in ABLATIONS]
    if bad:
        ap.error(f"unknown case or ablation: {', '.join(bad)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    cfg = sr.node_config(loop_closure=args.loop_closure == "on", overrides=params)
    noise = sr.scaled_noise(SimNoise.harsh(), args.noise)
    print(f"# keyframe_chain: shipped node defaults{f' but {params}' if params else ''}, loop closure "
          f"{args.loop_closure}, {args.noise:g}x SimNoise.harsh(), seeds {seeds}; cells: median [min-max] "
          "over seeds\n")
    for name in cases:
        case, t0 = CASES[name], time.perf_counter()
        seq = make_case_sequence(case)
        rows = {ab: [run_chain(case, seq, cfg, ablated(noise, ab), s) for s in seeds] for ab in ablations}
        print(table(f"{name}: {case.description} ({len(seq)} frames)", rows))
        print(f"\n({time.perf_counter() - t0:.0f} s wall)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
