"""Evaluation report of one run: metrics (eval.metrics, evo), PNG plots, report.json and report.md.

Metrics: ATE after Sim(3) alignment (evo APE, translation part; Umeyama with scale, the TUM/evo
convention for monocular SLAM) and RPE, in ground-truth units. Run numbers (frames processed/dropped,
windows rejected, latency, throughput) come from the runtime's `Diagnostics`.
Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vggt_ros.eval.metrics import TrajectoryMetrics, associate, evaluate_trajectory
from vggt_ros.io.atomic import atomic_write_text

PLOT_TOP_VIEW = "trajectory_top_view.png"
PLOT_ERROR = "ate_over_time.png"


@dataclass(frozen=True)
class AlignedTrajectories:
    """Matched poses after Sim(3) alignment (ground-truth units).

    t_s (M,) seconds from the first matched stamp; p_gt, p_est (M, 3) positions; error (M,) metres.
    """

    t_s: np.ndarray
    p_gt: np.ndarray
    p_est: np.ndarray
    error: np.ndarray


def align_for_plots(stamps_gt: np.ndarray, T_gt: np.ndarray, stamps_est: np.ndarray, T_est: np.ndarray,
                    max_diff_ns: int = 1_000_000) -> AlignedTrajectories:
    """Associate by stamp (eval.metrics.associate) and Sim(3)-align the estimate with evo, as metrics does."""
    from evo.core.trajectory import PoseTrajectory3D

    og, oe = np.argsort(stamps_gt, kind="stable"), np.argsort(stamps_est, kind="stable")
    sg, Tg, se, Te = np.asarray(stamps_gt)[og], np.asarray(T_gt)[og], np.asarray(stamps_est)[oe], \
        np.asarray(T_est)[oe]
    ig, ie = associate(sg, se, max_diff_ns)
    ts = sg[ig].astype(np.float64) * 1e-9
    ref = PoseTrajectory3D(poses_se3=list(Tg[ig]), timestamps=ts)
    est = PoseTrajectory3D(poses_se3=list(Te[ie]), timestamps=ts)
    est.align(ref, correct_scale=True)
    p_gt, p_est = ref.positions_xyz, est.positions_xyz
    return AlignedTrajectories(ts - ts[0], p_gt, p_est, np.linalg.norm(p_est - p_gt, axis=1))


def _top_axes(p: np.ndarray) -> tuple[int, int]:
    """The two coordinate axes along which the ground truth extends most (the 'top view' plane)."""
    extent = np.ptp(p, axis=0)
    a, b = sorted(np.argsort(extent)[-2:])
    return int(a), int(b)


def plot_trajectories(al: AlignedTrajectories, out_dir: Path, title: str = "") -> list[Path]:
    """Write the top view (estimate vs ground truth) and the error-over-time plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = "xyz"
    a, b = _top_axes(al.p_gt)
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    ax.plot(al.p_gt[:, a], al.p_gt[:, b], "-", color="0.3", lw=2, label="ground truth")
    ax.plot(al.p_est[:, a], al.p_est[:, b], "-", color="tab:red", lw=1.2, label="estimate (Sim(3)-aligned)")
    ax.plot(al.p_gt[0, a], al.p_gt[0, b], "o", color="0.3", label="start")
    ax.set_xlabel(f"{names[a]} [m]")
    ax.set_ylabel(f"{names[b]} [m]")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title(f"Top view{': ' + title if title else ''}")
    top = out_dir / PLOT_TOP_VIEW
    fig.tight_layout()
    fig.savefig(top)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.plot(al.t_s, al.error, "-", color="tab:blue", lw=1.2)
    rmse = float(np.sqrt(np.mean(al.error**2)))
    ax.axhline(rmse, color="tab:red", ls="--", lw=1, label=f"RMSE {rmse:.4f} m")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("ATE [m]")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    ax.set_title(f"Absolute trajectory error (Sim(3)-aligned){': ' + title if title else ''}")
    err = out_dir / PLOT_ERROR
    fig.tight_layout()
    fig.savefig(err)
    plt.close(fig)
    return [top, err]


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def build_report(metrics: TrajectoryMetrics | None, run: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.json content: the headline numbers at top level, the details beside them.

    run: runtime numbers (Diagnostics.as_dict() plus 'throughput_fps', 'wall_time_s', ...).
    Keys: predictor, predictor_note, ate_rmse (m), ate_percent, rpe_trans_rmse (m), rpe_rot_deg, scale
    (Sim(3) scale estimate -> ground truth), scale_drift, scale_drift_floor, frames_processed,
    frames_dropped, drops,
    windows_rejected, rejections, latency_p50_s, latency_p95_s, throughput_fps, the map's consistency
    (tracking_state, segments, loop_closures, relocalisations, loop_verifications, loop_checks_skipped),
    oom_retries, metrics (all of them).
    """
    run = dict(run or {})
    rep: dict[str, Any] = {
        "predictor": run.get("predictor", ""),
        "predictor_note": run.get("predictor_note", ""),
    }
    if metrics is not None:
        rep.update(ate_rmse=metrics.ate_rmse, ate_percent=metrics.ate_percent,
                   ate_se3_rmse=metrics.ate_se3_rmse, ate_se3_percent=metrics.ate_se3_percent,
                   rpe_trans_rmse=metrics.rpe_trans_rmse, rpe_rot_deg=metrics.rpe_rot_deg,
                   scale=metrics.align_scale, scale_drift=metrics.scale_drift,
                   scale_drift_floor=metrics.scale_drift_floor,
                   poses_matched=metrics.num_matched)
    for key in ("frames_received", "frames_processed", "frames_dropped", "drops", "windows_accepted",
                "windows_rejected", "rejections", "keyframes", "map_points", "latency_p50_s", "latency_p95_s",
                "throughput_fps", "wall_time_s", "scale_source", "scale_state", "metric_scale",
                "metric_scale_sigma", "scale_rejected", "tracking_state", "segments", "loop_closures",
                "relocalisations", "loop_verifications", "loop_checks_skipped", "oom_retries"):
        if key in run:
            rep[key] = run[key]
    if metrics is not None:
        rep["metrics"] = metrics.as_dict()
    if extra:
        rep.update(extra)
    return _clean(rep)


def _fmt(v: Any, unit: str = "", digits: int = 4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}{unit}"
    return f"{v}{unit}"


def reason_key(reason: str) -> str:
    """A rejection's kind without its numbers: the text before ' (' or ': ' ('residual too high (0.3)' ->
    'residual too high'), so report.md groups windows by kind, not by exception text."""
    return reason.split(" (", 1)[0].split(": ", 1)[0].strip() or reason


def _by_key(counts: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, v in counts.items():
        out[reason_key(str(k))] = out.get(reason_key(str(k)), 0) + int(v)
    return out


def _input_lines(rep: dict[str, Any]) -> list[str]:
    """Camera-info problems, resolution changes and a truncated bag: what happened to the input."""
    lines: list[str] = []
    info = rep.get("camera_info_problems") or {}
    if info:
        lines += ["", "CameraInfo messages not used, by reason: "
                  + ", ".join(f"{k}: {v}" for k, v in sorted(info.items()))]
    res = rep.get("resolution") or {}
    if res.get("changes"):
        hw = res.get("working_size_hw") or [0, 0]
        lines += ["", f"Camera resolution changed {res['changes']} time(s); {res.get('frames_rescaled', 0)} "
                  f"frames rescaled to the working size {hw[1]}x{hw[0]} (K scaled)."]
    if rep.get("bag_truncated"):
        lines += ["", f"The bag is truncated ({rep['bag_truncated']}); only its readable part was replayed "
                  "(`mcap recover` may rescue more)."]
    return lines


def render_markdown(rep: dict[str, Any], plots: list[str]) -> str:
    """A short report.md of report.json's headline numbers."""
    lines = ["# vggt_ros evaluation", ""]
    if rep.get("partial"):
        lines += [f"> **PARTIAL: {rep.get('partial_reason') or 'interrupted'}**", ""]
    if rep.get("predictor_note"):
        lines += [f"> **{rep['predictor_note']}**", ""]
    lines += ["| metric | value |", "|---|---|"]
    rows = [
        ("predictor", rep.get("predictor")),
        ("ATE RMSE (Sim(3)-aligned)", _fmt(rep.get("ate_rmse"), " m")),
        ("ATE / path length", _fmt(rep.get("ate_percent"), " %", 3)),
        ("ATE RMSE (SE(3) only: metric, no scale)", _fmt(rep.get("ate_se3_rmse"), " m")),
        ("ATE SE(3) / path length", _fmt(rep.get("ate_se3_percent"), " %", 3)),
        ("scale source / state", f"{rep['scale_source']} / {rep.get('scale_state')}"
         if rep.get("scale_source") not in (None, "none") else None),
        ("metric scale (m per first-window unit)",
         f"{_fmt(rep.get('metric_scale'))} +- {_fmt(100 * (rep.get('metric_scale_sigma') or 0.0), ' %', 2)}"
         if rep.get("metric_scale") is not None else None),
        ("RPE translation RMSE", _fmt(rep.get("rpe_trans_rmse"), " m")),
        ("RPE rotation RMSE", _fmt(rep.get("rpe_rot_deg"), " deg")),
        ("scale (estimate -> ground truth)", _fmt(rep.get("scale"))),
        ("scale drift", _fmt(rep.get("scale_drift"))),
        ("scale drift floor (the poses' own error, no drift)", _fmt(rep.get("scale_drift_floor"))),
        ("poses matched", _fmt(rep.get("poses_matched"))),
        ("frames processed", _fmt(rep.get("frames_processed"))),
        ("frames dropped", _fmt(rep.get("frames_dropped"))),
        ("windows rejected", _fmt(rep.get("windows_rejected"))),
        ("latency p50 / p95",
         f"{_fmt(rep.get('latency_p50_s'), ' s')} / {_fmt(rep.get('latency_p95_s'), ' s')}"),
        ("throughput", _fmt(rep.get("throughput_fps"), " frames/s", 3)),
    ]
    lines += [f"| {k} | {v} |" for k, v in rows if v not in (None, "n/a", "n/a / n/a")]
    drops = rep.get("drops") or {}
    if drops:
        lines += ["", "Dropped frames by reason: " + ", ".join(f"{k}: {v}" for k, v in sorted(drops.items()))]
    rej = _by_key(rep.get("rejections") or {})
    if rej:
        lines += ["", "Rejected windows by reason: " + ", ".join(f"{k}: {v}" for k, v in sorted(rej.items()))]
    lines += _input_lines(rep)
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, stamps_est: np.ndarray | None = None, T_est: np.ndarray | None = None,
                 stamps_gt: np.ndarray | None = None, T_gt: np.ndarray | None = None,
                 run: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                 max_diff_ns: int = 1_000_000) -> dict[str, Any]:
    """Score (when ground truth is given), plot, and write report.json + report.md into out_dir.

    Returns the report dict. Without ground truth (or with too few matched poses) the report holds the
    run numbers only and says why under 'evaluation'.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = None
    plots: list[str] = []
    note: dict[str, Any] = {}
    if stamps_gt is not None and T_gt is not None and stamps_est is not None and T_est is not None:
        try:
            metrics = evaluate_trajectory(stamps_gt, T_gt, stamps_est, T_est, max_diff_ns=max_diff_ns)
            al = align_for_plots(stamps_gt, T_gt, stamps_est, T_est, max_diff_ns)
            title = str((run or {}).get("predictor", ""))
            if title == "simulated":
                title = "SIMULATED predictor (test double)"
            if (extra or {}).get("partial"):
                title += " - PARTIAL run"
            plots = [p.name for p in plot_trajectories(al, out, title)]
            note["evaluation"] = "ok"
        except ValueError as exc:  # TrajectoryMismatchError: too few matched poses, NaN, degenerate
            note["evaluation"] = f"not scored: {exc}"
    else:
        note["evaluation"] = "not scored: no ground truth"
    for stale in {PLOT_TOP_VIEW, PLOT_ERROR} - set(plots):  # no plot of an earlier run may pass for this one
        (out / stale).unlink(missing_ok=True)
    rep = build_report(metrics, run, {**note, **(extra or {}), "plots": plots})
    atomic_write_text(out / "report.json", json.dumps(rep, indent=2, sort_keys=False) + "\n")
    atomic_write_text(out / "report.md", render_markdown(rep, plots))
    return rep
