"""`vggt-ros eval --estimate TUM --ground-truth TUM|BAG[:topic] -o DIR`: score a trajectory.

Ground truth is a TUM file or a bag's pose / TF topic (io/ground_truth.py reads it; `BAG:/tf:child_frame`
picks a TF child).
Writes DIR/report.json, DIR/report.md and the PNG plots (eval.report).
Exit codes: 0 scored; 1 not scored (too few matched poses, ...); 2 bad input or output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vggt_ros.eval.report import write_report
from vggt_ros.io.ground_truth import GroundTruthError, load_ground_truth
from vggt_ros.io.tum import TumFormatError, read_tum


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval", help="score a TUM trajectory against ground truth (ATE Sim(3), RPE, plots, report)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--estimate", required=True, help="estimated trajectory, TUM file")
    p.add_argument("--ground-truth", required=True, help="TUM file, or BAG[:/topic[:tf_child]]")
    p.add_argument("-o", "--output", required=True, help="output directory (report.json, report.md, PNGs)")
    p.add_argument("--run-report", default=None,
                   help="report.json of a replay whose run numbers (drops, latency, ...) are carried over")
    p.add_argument("--max-diff", type=float, default=0.001,
                   help="stamp association tolerance in seconds (default 0.001)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vggt_ros.io.outputs import OutputDirError, check_output_dir

    try:
        check_output_dir(args.output)
    except OutputDirError as exc:
        print(f"vggt-ros eval: {exc}", file=sys.stderr)
        return 2
    try:
        s_est, T_est = read_tum(args.estimate)
    except (TumFormatError, OSError) as exc:
        print(f"vggt-ros eval: estimate {args.estimate}: {exc}", file=sys.stderr)
        return 2
    try:
        s_gt, T_gt, desc = load_ground_truth(args.ground_truth)
    except (GroundTruthError, OSError) as exc:
        print(f"vggt-ros eval: {exc}", file=sys.stderr)
        return 2
    run_numbers: dict[str, Any] = {}
    if args.run_report:
        try:
            run_numbers = json.loads(Path(args.run_report).read_text())
        except (OSError, ValueError) as exc:
            print(f"vggt-ros eval: run report {args.run_report}: {exc}", file=sys.stderr)
            return 2
        run_numbers = {k: v for k, v in run_numbers.items() if not isinstance(v, dict) or k in
                       ("drops", "rejections")}
    try:
        rep = write_report(args.output, s_est, T_est, s_gt, T_gt, run=run_numbers,
                           extra={"estimate": str(args.estimate), "ground_truth": desc},
                           max_diff_ns=int(round(args.max_diff * 1e9)))
    except OSError as exc:  # disk full, a folder that became unwritable: one line, exit 2
        print(f"vggt-ros eval: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if rep.get("evaluation") != "ok":
        print(f"vggt-ros eval: {rep.get('evaluation')}", file=sys.stderr)
        return 1
    print(f"ATE RMSE {rep['ate_rmse']:.6f} m ({rep['ate_percent']:.3f} % of path) Sim(3)-aligned, "
          f"{rep.get('ate_se3_rmse', float('nan')):.6f} m ({rep.get('ate_se3_percent', float('nan')):.3f} %) "
          f"SE(3)-aligned without scale (metric), "
          f"RPE {rep['rpe_trans_rmse']:.6f} m / {rep['rpe_rot_deg']:.4f} deg, scale {rep['scale']:.6f}, "
          f"{rep['poses_matched']} poses matched -> {args.output}")
    if rep.get("predictor_note"):
        print(rep["predictor_note"])
    return 0
