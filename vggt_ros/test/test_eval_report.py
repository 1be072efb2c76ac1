"""eval.report: Sim(3)-aligned ATE agrees with the evo_ape command line; plots, JSON and markdown."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from vggt_ros.eval.report import PLOT_ERROR, PLOT_TOP_VIEW, align_for_plots, write_report
from vggt_ros.geometry.se3 import Sim3, make_T, rot_z, so3_exp
from vggt_ros.io.tum import write_tum

EVO_APE = Path(sys.executable).parent / "evo_ape"


def evo_ape_rmse(gt: Path, est: Path) -> float:
    """ATE RMSE printed by `evo_ape tum GT EST -as` (Sim(3) alignment)."""
    out = subprocess.run([str(EVO_APE), "tum", str(gt), str(est), "-as"], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    m = re.search(r"^\s*rmse\s+([0-9.eE+-]+)\s*$", out, re.M)
    assert m, out
    return float(m.group(1))


def loop_trajectory(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 2 m circle at 30 Hz with yaw following the path: stamps (n,), T_world_cam (n,4,4)."""
    t = np.arange(n)
    a = 2 * np.pi * t / n
    stamps = 1_700_000_000_000_000_000 + t * 33_333_333
    T = np.stack([make_T(rot_z(ai + np.pi / 2), np.array([np.cos(ai), np.sin(ai), 0.1 * np.sin(3 * ai)]))
                  for ai in a])
    return stamps.astype(np.int64), T


def noisy_estimate(T_gt: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    """GT moved by a Sim(3) (s=0.37) with position noise sigma (GT units) and small rotation noise."""
    rng = np.random.default_rng(seed)
    g = Sim3(0.37, so3_exp(np.array([0.3, -0.2, 1.1])), np.array([4.0, -1.0, 2.0]))
    out = []
    for T in T_gt:
        Tn = T.copy()
        Tn[:3, 3] += rng.normal(0, sigma, 3)
        Tn[:3, :3] = so3_exp(rng.normal(0, 0.002, 3)) @ Tn[:3, :3]
        out.append(g.transform_pose(Tn))
    return np.stack(out)


def test_report_ate_matches_evo_ape_command_line(tmp_path):
    stamps, T_gt = loop_trajectory(120)
    T_est = noisy_estimate(T_gt, 0.02)
    gt_file = write_tum(tmp_path / "gt.tum", stamps, T_gt)
    est_file = write_tum(tmp_path / "est.tum", stamps, T_est)
    run = {"predictor": "simulated", "predictor_note": "SIMULATED predictor (test double)",
           "frames_processed": 120, "frames_dropped": 3, "drops": {"queue_full": 3}, "windows_rejected": 1,
           "rejections": {"high_residual": 1}, "latency_p50_s": 0.25, "latency_p95_s": 0.5,
           "throughput_fps": 41.5}
    rep = write_report(tmp_path / "out", stamps, T_est, stamps, T_gt, run=run)
    # noise 0.02 per axis -> about 0.02*sqrt(3) = 0.035 RMSE before alignment absorbs a little
    assert 0.025 < rep["ate_rmse"] < 0.045
    assert rep["ate_rmse"] == pytest.approx(evo_ape_rmse(gt_file, est_file), rel=1e-4)
    assert rep["scale"] == pytest.approx(1 / 0.37, rel=0.01)
    assert rep["poses_matched"] == 120 and rep["evaluation"] == "ok"
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["ate_rmse"] == rep["ate_rmse"] and on_disk["frames_dropped"] == 3
    assert on_disk["drops"] == {"queue_full": 3} and on_disk["predictor"] == "simulated"
    for name in (PLOT_TOP_VIEW, PLOT_ERROR):
        png = tmp_path / "out" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    md = (tmp_path / "out" / "report.md").read_text()
    assert "SIMULATED predictor" in md and f"{rep['ate_rmse']:.4g} m" in md and "queue_full: 3" in md


def test_aligned_errors_give_the_same_rmse_as_the_metric(tmp_path):
    stamps, T_gt = loop_trajectory(90)
    T_est = noisy_estimate(T_gt, 0.01, seed=4)
    al = align_for_plots(stamps, T_gt, stamps, T_est)
    rep = write_report(tmp_path, stamps, T_est, stamps, T_gt)
    assert float(np.sqrt(np.mean(al.error**2))) == pytest.approx(rep["ate_rmse"], rel=1e-9)
    assert al.p_gt.shape == (90, 3) and al.t_s[0] == 0.0


def test_exact_estimate_scores_zero_and_partial_overlap_matches_by_stamp(tmp_path):
    stamps, T_gt = loop_trajectory(60)
    g = Sim3(2.5, rot_z(0.7), np.array([1.0, 2.0, 3.0]))
    T_est = np.stack([g.transform_pose(T) for T in T_gt])[10:50]
    rep = write_report(tmp_path, stamps[10:50], T_est, stamps, T_gt)
    assert rep["ate_rmse"] < 1e-9 and rep["poses_matched"] == 40
    assert rep["scale"] == pytest.approx(0.4, rel=1e-9)


def test_without_ground_truth_or_overlap_the_report_says_why(tmp_path):
    stamps, T_gt = loop_trajectory(30)
    rep = write_report(tmp_path / "a", stamps, T_gt, run={"frames_processed": 30})
    assert rep["evaluation"] == "not scored: no ground truth" and "ate_rmse" not in rep
    assert rep["frames_processed"] == 30 and rep["plots"] == []
    write_report(tmp_path / "b", stamps, T_gt, stamps, T_gt)  # scored: plots written
    rep = write_report(tmp_path / "b", stamps + 10**9 * 100, T_gt, stamps, T_gt)  # same folder, unscored
    assert rep["evaluation"].startswith("not scored: only 0 poses matched")
    assert (tmp_path / "b" / "report.md").exists() and not (tmp_path / "b" / PLOT_TOP_VIEW).exists()


def test_report_md_groups_rejections_by_kind_and_shows_input_problems():
    """Old report.md: one row per exception text ('residual_too_high (0.31 > 0.05)', ...) and no
    camera-info, resolution or partial lines."""
    from vggt_ros.eval.report import render_markdown

    rep = {"predictor": "simulated", "partial": True, "partial_reason": "interrupted by SIGTERM after 7",
           "rejections": {"residual_too_high (0.31 > 0.05)": 1, "residual_too_high (0.4 > 0.05)": 2,
                          "predictor_error (KeyError: 'x')": 1},
           "camera_info_problems": {"zero_K": 5},
           "resolution": {"working_size_hw": [120, 160], "changes": 2, "frames_rescaled": 9}}
    md = render_markdown(rep, [])
    assert "Rejected windows by reason: predictor_error: 1, residual_too_high: 3" in md
    assert "CameraInfo messages not used, by reason: zero_K: 5" in md
    assert "changed 2 time(s); 9 frames rescaled to the working size 160x120" in md
    assert md.splitlines()[2] == "> **PARTIAL: interrupted by SIGTERM after 7**"
