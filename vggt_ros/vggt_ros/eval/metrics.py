"""Trajectory accuracy with `evo`: Sim(3)-aligned ATE, RPE and end-to-end scale drift.

Inputs are numpy arrays (integer stamps in ns + 4x4 camera->world poses), so the pipeline,
the replay and the benchmarks all score through this one module. Monocular estimates have
an arbitrary scale and gauge, so the estimate is aligned to the reference with a Sim(3)
(Umeyama, evo's `align(correct_scale=True)`) before ATE/RPE, as in the TUM/evo convention
for monocular SLAM. Errors are then in reference units (metres for ground truth).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from evo.core import metrics as evo_metrics
from evo.core.trajectory import PoseTrajectory3D

from vggt_ros.geometry.alignment import DegenerateInputError, umeyama_sim3


class TrajectoryMismatchError(ValueError):
    """Too few associated poses (or invalid input) to score a trajectory."""


@dataclass(frozen=True)
class TrajectoryMetrics:
    """Scores of one estimated trajectory against its reference (reference units).

    ate_rmse / ate_mean / ate_max: absolute translation error after Sim(3) alignment.
    ate_percent: 100 * ate_rmse / path_length of the reference (over the matched poses).
    rpe_trans_rmse: relative translation error over `rpe_delta` frames (after alignment).
    rpe_rot_deg: relative rotation error RMSE (degrees) over the same pairs.
    scale_drift: |s_end / s_start - 1|, s = Sim(3) scale (estimate per reference unit) of the first
        and last `drift_fraction` of the matched poses while the reference moves (a standing start or
        end is left out: moving_span), each aligned on its own (see scale_drift).
    scale_drift_floor: what scale_drift reads from the estimate's own position errors moved along the
        path (no drift in them; see scale_drift_floor): a scale_drift near it is pose error, not scale.
    align_scale: the Sim(3) scale that maps the estimate into reference units.
    ate_se3_rmse / ate_se3_percent: ATE after an SE(3)-only alignment (no scale: `evo_ape -a`): the
        error of an estimate that claims metres (scale_source depth/odometry, docs/architecture.md#scale).
    num_matched: poses associated by stamp; num_reference / num_estimate: input sizes.
    """

    ate_rmse: float
    ate_mean: float
    ate_max: float
    ate_percent: float
    rpe_trans_rmse: float
    rpe_rot_deg: float
    scale_drift: float
    path_length: float
    align_scale: float
    num_matched: int
    num_reference: int
    num_estimate: int
    ate_se3_rmse: float = float("nan")
    ate_se3_percent: float = float("nan")
    scale_drift_floor: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _check(name: str, stamps: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(stamps).astype(np.int64).reshape(-1)
    P = np.asarray(T, dtype=np.float64)
    if P.ndim != 3 or P.shape[1:] != (4, 4) or len(P) != len(s):
        raise TrajectoryMismatchError(f"{name}: need stamps (N,) and poses (N,4,4), got {s.shape}, {P.shape}")
    if not np.all(np.isfinite(P)):
        raise TrajectoryMismatchError(f"{name}: poses contain NaN or inf")
    order = np.argsort(s, kind="stable")
    return s[order], P[order]


def associate(
    stamps_ref: np.ndarray, stamps_est: np.ndarray, max_diff_ns: int = 1_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i_ref, i_est) of nearest stamps within max_diff_ns, one-to-one, both sorted inputs."""
    if len(stamps_ref) == 0 or len(stamps_est) == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    j = (
        np.clip(np.searchsorted(stamps_ref, stamps_est), 1, len(stamps_ref) - 1)
        if len(stamps_ref) > 1
        else np.zeros(len(stamps_est), np.intp)
    )
    cand = np.stack([j - 1, j], 1) if len(stamps_ref) > 1 else j[:, None]
    d = np.abs(stamps_ref[cand] - stamps_est[:, None])
    best = cand[np.arange(len(stamps_est)), np.argmin(d, 1)]
    ok = np.abs(stamps_ref[best] - stamps_est) <= max_diff_ns
    i_ref, i_est = best[ok], np.flatnonzero(ok)
    _, first = np.unique(i_ref, return_index=True)  # one-to-one: keep the first estimate per reference
    return i_ref[first], i_est[first]


def _segment_scale(p_ref: np.ndarray, p_est: np.ndarray) -> float:
    """Scale of an estimate segment relative to the reference (estimate units per reference unit).

    Umeyama Sim(3) of the segment (estimate -> reference): its scale's inverse. Unlike summed step
    lengths, this is nearly unbiased by per-frame jitter (the bias is sigma^2 / segment variance).
    Falls back to the ratio of the segments' end-to-end extents when the positions are collinear.
    """
    try:
        return 1.0 / umeyama_sim3(p_est, p_ref).scale
    except DegenerateInputError:
        d_ref = float(np.linalg.norm(p_ref - p_ref.mean(0), axis=1).sum())
        d_est = float(np.linalg.norm(p_est - p_est.mean(0), axis=1).sum())
        return d_est / d_ref if d_ref > 1e-9 else float("nan")


#: a reference position within this fraction of the path's extent of its first (last) one is standing
STANDING_TOL_REL = 1e-3


def moving_span(p_ref: np.ndarray) -> slice:
    """The poses of positions p_ref (N,3) between the reference's standing ends: leading poses within
    STANDING_TOL_REL x its extent (largest bounding-box side) of the first position and trailing ones of
    the last are left out (a camera standing still has no scale to measure). The whole range when the
    reference never moves."""
    p = np.asarray(p_ref, np.float64)
    if len(p) == 0:
        return slice(0, 0)
    tol = STANDING_TOL_REL * float(np.ptp(p, axis=0).max())
    moved0 = np.flatnonzero(np.linalg.norm(p - p[0], axis=1) > tol)
    moved1 = np.flatnonzero(np.linalg.norm(p - p[-1], axis=1) > tol)
    if moved0.size == 0:
        return slice(0, len(p))
    return slice(max(int(moved0[0]) - 1, 0), min(int(moved1[-1]) + 2, len(p)))


def scale_drift(p_ref: np.ndarray, p_est: np.ndarray, drift_fraction: float = 0.2) -> float:
    """End-to-end scale drift |s_end/s_start - 1| of positions (N,3) (any estimate scale).

    s = Sim(3) scale of the first / last `drift_fraction` of the poses against the reference, taken
    over the reference's motion (moving_span: a standing start or end is left out, so 150 standing
    frames do not make the first segment's scale undefined). NaN when the span has < 10 poses or the
    reference does not move in a segment.
    """
    span = moving_span(p_ref)
    p_ref, p_est = np.asarray(p_ref)[span], np.asarray(p_est)[span]
    n = len(p_ref)
    m = max(5, int(round(drift_fraction * n)))
    if n < 2 * m:
        return float("nan")
    s0 = _segment_scale(p_ref[:m], p_est[:m])
    s1 = _segment_scale(p_ref[-m:], p_est[-m:])
    return float(abs(s1 / s0 - 1.0)) if np.isfinite(s0) and np.isfinite(s1) and s0 > 0 else float("nan")


def scale_drift_floor(p_ref: np.ndarray, p_est: np.ndarray, drift_fraction: float = 0.2,
                      shifts: int = 16) -> float:
    """What scale_drift reads from this estimate's own position errors once they carry no drift.

    p_ref, p_est (N,3) positions, any estimate scale and gauge. The estimate is Sim(3)-aligned to the
    reference as a whole and its errors e (N,3) are moved along the path: circular shifts by
    k * N / shifts frames (k = 1 .. shifts - 1), forwards and reversed. A shift keeps the errors' size and
    smoothness but ties each to another place, so the drift it reads is chance. Returns the median
    scale_drift(p_ref, p_ref + shifted e): a measured drift near it is within what the poses' own
    error produces (a true drift adds its own error too, so this is an upper estimate of the floor);
    NaN when scale_drift is NaN or the alignment is degenerate.
    """
    p_ref, p_est = np.asarray(p_ref, np.float64), np.asarray(p_est, np.float64)
    try:
        e = umeyama_sim3(p_est, p_ref).apply(p_est) - p_ref
    except DegenerateInputError:
        return float("nan")
    n = len(e)
    ks = sorted({int(round(k * n / shifts)) % n for k in range(1, shifts)} - {0})
    reads = [scale_drift(p_ref, p_ref + np.roll(x, k, axis=0), drift_fraction)
             for x in (e, e[::-1]) for k in ks]
    reads = [r for r in reads if np.isfinite(r)]
    return float(np.median(reads)) if reads else float("nan")


def _ate_se3(ref: PoseTrajectory3D, P_est: np.ndarray, ts: np.ndarray) -> float:
    """ATE RMSE after a rigid (SE(3)) alignment only: the estimate's own scale is kept (NaN when the
    alignment is degenerate)."""
    est = PoseTrajectory3D(poses_se3=list(P_est), timestamps=ts)
    try:
        est.align(ref, correct_scale=False)
    except Exception:  # evo's GeometryException on degenerate positions
        return float("nan")
    ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    return float(ape.get_statistic(evo_metrics.StatisticsType.rmse))


def evaluate_trajectory(
    stamps_ref: np.ndarray,
    T_ref: np.ndarray,
    stamps_est: np.ndarray,
    T_est: np.ndarray,
    *,
    rpe_delta: int = 10,
    max_diff_ns: int = 1_000_000,
    drift_fraction: float = 0.2,
) -> TrajectoryMetrics:
    """Score an estimate (stamps_est (M,), T_est (M,4,4)) against a reference (N,), (N,4,4).

    Poses are camera->world of the same camera (frames may differ by any Sim(3)). Association by
    nearest stamp within max_diff_ns; at least 3 matched poses are required.
    """
    s_ref, P_ref = _check("reference", stamps_ref, T_ref)
    s_est, P_est = _check("estimate", stamps_est, T_est)
    i_ref, i_est = associate(s_ref, s_est, max_diff_ns)
    if len(i_ref) < 3:
        raise TrajectoryMismatchError(f"only {len(i_ref)} poses matched by stamp")
    ts = s_ref[i_ref].astype(np.float64) * 1e-9
    ref = PoseTrajectory3D(poses_se3=list(P_ref[i_ref]), timestamps=ts)
    est = PoseTrajectory3D(poses_se3=list(P_est[i_est]), timestamps=ts)
    ate_se3 = _ate_se3(ref, P_est[i_est], ts)
    try:
        _, _, align_scale = est.align(ref, correct_scale=True)
    except Exception as exc:  # evo raises GeometryException on degenerate positions (e.g. all equal)
        raise TrajectoryMismatchError(f"Sim(3) alignment failed: {exc}") from exc
    ape = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    ape.process_data((ref, est))
    ate = ape.get_all_statistics()
    path_length = float(ref.path_length)
    delta = max(1, min(int(rpe_delta), len(i_ref) - 1))
    rpe_t = evo_metrics.RPE(
        evo_metrics.PoseRelation.translation_part,
        delta=delta,
        delta_unit=evo_metrics.Unit.frames,
        all_pairs=False,
    )
    rpe_t.process_data((ref, est))
    rpe_r = evo_metrics.RPE(
        evo_metrics.PoseRelation.rotation_angle_deg,
        delta=delta,
        delta_unit=evo_metrics.Unit.frames,
        all_pairs=False,
    )
    rpe_r.process_data((ref, est))
    p_ref, p_est = P_ref[i_ref][:, :3, 3], P_est[i_est][:, :3, 3]
    drift = scale_drift(p_ref, p_est, drift_fraction)
    floor = scale_drift_floor(p_ref, p_est, drift_fraction) if np.isfinite(drift) else float("nan")
    return TrajectoryMetrics(
        ate_rmse=float(ate["rmse"]),
        ate_mean=float(ate["mean"]),
        ate_max=float(ate["max"]),
        ate_percent=100.0 * float(ate["rmse"]) / path_length if path_length > 0 else float("nan"),
        ate_se3_rmse=ate_se3,
        ate_se3_percent=100.0 * ate_se3 / path_length if path_length > 0 else float("nan"),
        rpe_trans_rmse=float(rpe_t.get_statistic(evo_metrics.StatisticsType.rmse)),
        rpe_rot_deg=float(rpe_r.get_statistic(evo_metrics.StatisticsType.rmse)),
        scale_drift=drift,
        scale_drift_floor=floor,
        path_length=path_length,
        align_scale=float(align_scale),
        num_matched=int(len(i_ref)),
        num_reference=int(len(s_ref)),
        num_estimate=int(len(s_est)),
    )
