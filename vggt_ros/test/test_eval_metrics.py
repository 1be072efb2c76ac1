"""Trajectory metrics with evo: Sim(3) invariance, known noise levels, scale drift, association."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.eval.metrics import (
    TrajectoryMismatchError,
    associate,
    evaluate_trajectory,
    moving_span,
    scale_drift,
    scale_drift_floor,
)
from vggt_ros.geometry.se3 import Sim3, so3_exp


def _circle(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(0, 2 * np.pi, n)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 0, 3], T[:, 1, 3], T[:, 2, 3] = 2 * np.cos(a), 1.5 * np.sin(a), 0.2 * np.sin(3 * a)
    T[:, :3, :3] = so3_exp(np.stack([0 * a, 0 * a, a], 1))
    return 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 33_333_333, T


def test_sim3_transformed_reference_scores_zero():
    s, T = _circle()
    S = Sim3(0.37, so3_exp(np.array([0.3, -0.2, 1.0])), np.array([4.0, -1.0, 2.0]))
    m = evaluate_trajectory(s, T, s, S.transform_pose(T))
    assert m.ate_rmse < 1e-9 and m.rpe_trans_rmse < 1e-9 and m.rpe_rot_deg < 1e-6
    assert abs(m.align_scale - 1 / 0.37) < 1e-9 and m.scale_drift < 1e-9 and m.scale_drift_floor < 1e-9
    assert m.num_matched == len(s) and m.path_length == pytest.approx(
        np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1).sum()
    )


def test_known_position_noise_gives_expected_ate():
    s, T = _circle(2000)
    E = T.copy()
    E[:, :3, 3] += np.random.default_rng(1).normal(0, 0.01, (len(T), 3))
    m = evaluate_trajectory(s, T, s, E)
    assert m.ate_rmse == pytest.approx(0.01 * np.sqrt(3), rel=0.05)
    assert m.ate_percent == pytest.approx(100 * m.ate_rmse / m.path_length)


def test_scale_drift_detects_growing_scale():
    s, T = _circle(500)
    E = T.copy()
    # the estimate's step length grows linearly to +10 % at the end
    steps = np.diff(T[:, :3, 3], axis=0) * np.linspace(1.0, 1.1, len(T) - 1)[:, None]
    E[1:, :3, 3] = T[0, :3, 3] + np.cumsum(steps, axis=0)
    m = evaluate_trajectory(s, T, s, E)
    assert 0.06 < m.scale_drift < 0.1
    p = T[:, :3, 3]
    assert scale_drift(p, 3.0 * p) < 1e-12
    # a true drift stands well above what its own errors, moved along the path, read (7.8 % vs 2.1 %)
    assert m.scale_drift > 3.0 * m.scale_drift_floor > 0.0


def test_scale_drift_is_measured_over_the_motion_between_standing_ends():
    """150 standing poses before a drifting circle and 40 after it: the standing poses carry no scale
    (a Sim(3) of one repeated position is undefined, the drift read NaN before), so the drift is that of
    the motion, the same figure as without them; a pose that moves by less than the tolerance stands."""
    _, T = _circle(500)
    p = T[:, :3, 3]
    q = p[0] + np.concatenate([[np.zeros(3)], np.cumsum(
        np.diff(p, axis=0) * np.linspace(1.0, 1.1, len(p) - 1)[:, None], axis=0)])
    moving = scale_drift(p, q)
    assert 0.06 < moving < 0.1
    jitter = np.random.default_rng(0).normal(0, 1e-4, (150, 3))  # 0.1 mm on a 4 m path: standing
    P = np.concatenate([p[0] + jitter, p, np.repeat(p[-1:], 40, axis=0)])
    Q = np.concatenate([np.repeat(q[:1], 150, axis=0), q, np.repeat(q[-1:], 40, axis=0)])
    span = moving_span(P)
    assert (span.start, span.stop) == (150, 150 + 500)
    assert scale_drift(P, Q) == pytest.approx(moving, abs=1e-3)
    # what the estimate does while the reference stands is not scale (the ATE scores it)
    Q[:150] += np.linspace(0, 1, 150)[:, None] * np.array([0.5, 0.0, 0.0])
    assert scale_drift(P, Q) == pytest.approx(moving, abs=1e-3)
    assert moving_span(np.zeros((7, 3))) == slice(0, 7)


def _smooth_error(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """(n,3) smooth position error (periods of 1/7 to all of the path), RMS norm `rms`."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    e = sum(rng.normal(0, 1, (1, 3)) * np.sin(2 * np.pi * (f * t + rng.random((1, 3)))) / f
            for f in range(1, 8))
    return rms * e / np.sqrt((e**2).sum(1).mean())


def test_scale_drift_floor_reads_what_smooth_pose_error_alone_reads():
    """5 cm smooth error on a 4 x 3 m loop, no scale drift: scale_drift reads chance (median 2.4 % over
    20 draws), and the floor reads the same size (1.9 %) from each draw's own errors."""
    _, T = _circle(500)
    p = T[:, :3, 3]
    rng = np.random.default_rng(3)
    drifts, floors = [], []
    for _ in range(20):
        q = p + _smooth_error(rng, len(p), 0.05)
        drifts.append(scale_drift(p, q))
        floors.append(scale_drift_floor(p, q))
    assert 0.005 < np.median(floors) and 0.5 < np.median(floors) / np.median(drifts) < 2.0
    assert scale_drift_floor(p[:9], p[:9] * 2.0) != scale_drift_floor(p[:9], p[:9] * 2.0)  # NaN: too short


def test_association_skips_missing_and_mismatched_stamps():
    s, T = _circle(100)
    keep = np.setdiff1d(np.arange(100), np.arange(10, 40))
    se = s[keep] + 200  # 200 ns jitter still associates
    m = evaluate_trajectory(s, T, se, T[keep])
    assert m.num_matched == 70 and m.num_reference == 100 and m.ate_rmse < 1e-9
    i_ref, i_est = associate(s, s[:5] + 10_000_000, max_diff_ns=1_000_000)
    assert len(i_ref) == 0 and len(i_est) == 0
    with pytest.raises(TrajectoryMismatchError):
        evaluate_trajectory(s, T, s[:2], T[:2])
    bad = T.copy()
    bad[3, 0, 3] = np.nan
    with pytest.raises(TrajectoryMismatchError):
        evaluate_trajectory(s, T, s, bad)
