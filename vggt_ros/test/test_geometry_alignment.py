"""Umeyama and robust Sim(3): exact recovery, chaining, degeneracy errors, outlier robustness."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.alignment import DegenerateInputError, robust_sim3, umeyama_sim3
from vggt_ros.geometry.se3 import Sim3, rot_x, rot_z, rotation_angle

TRUE = Sim3(1.8, rot_z(0.4), np.array([1.0, -0.5, 0.3]))


def _pts(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2, 2, (n, 3))


def test_umeyama_recovers_sim3_from_8_points() -> None:
    src = _pts(8)
    dst = TRUE.apply(src)
    est = umeyama_sim3(src, dst)
    assert abs(est.scale - 1.8) < 1e-9
    np.testing.assert_allclose(est.R, rot_z(0.4), atol=1e-9)
    np.testing.assert_allclose(est.t, [1.0, -0.5, 0.3], atol=1e-9)
    assert np.linalg.norm(est.apply(src) - dst, axis=1).max() < 1e-6
    res = robust_sim3(src, dst)
    assert res.num_inliers == 8 and res.rms < 1e-6 and res.residuals.max() < 1e-6


def test_chaining_two_windows_within_1e6() -> None:
    """Window b = Sim(s=2.3, Rz(0.5)) of window a; fits a->b and b->c chain back to a->c."""
    src = _pts(20, 1)
    S_ab = Sim3(2.3, rot_z(0.5), np.array([0.3, 0.2, -0.1]))
    S_bc = Sim3(0.6, rot_x(-0.3), np.array([-1.0, 0.0, 0.4]))
    pb = S_ab.apply(src)
    pc = S_bc.apply(pb)
    est_ab = umeyama_sim3(src, pb)
    est_bc = umeyama_sim3(pb, pc)
    chained = est_bc.compose(est_ab)
    np.testing.assert_allclose(chained.matrix(), (S_bc @ S_ab).matrix(), atol=1e-6)
    np.testing.assert_allclose(est_ab.inverse().apply(pb), src, atol=1e-6)
    assert abs(est_ab.scale - 2.3) < 1e-9 and abs(rotation_angle(est_ab.R) - 0.5) < 1e-9


def test_weights_and_without_scale() -> None:
    src = _pts(30, 2)
    dst = TRUE.apply(src)
    dst[:5] += 10.0  # corrupted, but weight 0
    w = np.ones(30)
    w[:5] = 0.0
    est = umeyama_sim3(src, dst, weights=w)
    assert abs(est.scale - 1.8) < 1e-9
    rigid = Sim3(1.0, rot_z(0.4), np.array([1.0, -0.5, 0.3]))
    est = umeyama_sim3(src, rigid.apply(src), with_scale=False)
    assert est.scale == 1.0
    np.testing.assert_allclose(est.R, rot_z(0.4), atol=1e-9)


def test_planar_points_are_fine() -> None:
    src = _pts(10, 3)
    src[:, 2] = 0.0
    est = umeyama_sim3(src, TRUE.apply(src))
    assert abs(est.scale - 1.8) < 1e-9
    np.testing.assert_allclose(est.R, rot_z(0.4), atol=1e-9)


@pytest.mark.parametrize("fit", [umeyama_sim3, robust_sim3])
def test_degenerate_inputs_raise(fit) -> None:  # type: ignore[no-untyped-def]
    line = np.linspace(0, 1, 10)[:, None] * np.array([1.0, 2.0, 3.0]) + np.array([5.0, 0, 0])
    with pytest.raises(DegenerateInputError, match="collinear"):
        fit(line, TRUE.apply(line))
    # collinear up to rounding noise only
    with pytest.raises(DegenerateInputError, match="collinear"):
        fit(line + 1e-12 * _pts(10), TRUE.apply(line))
    same = np.tile([[1.0, 2.0, 3.0]], (6, 1))
    with pytest.raises(DegenerateInputError, match="coincident"):
        fit(same, TRUE.apply(same))
    src = _pts(8)
    dst = TRUE.apply(src)
    bad = src.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DegenerateInputError, match="NaN"):
        fit(bad, dst)
    with pytest.raises(DegenerateInputError, match="NaN"):
        fit(src, np.where(np.arange(8)[:, None] == 2, np.inf, dst))
    with pytest.raises(DegenerateInputError):
        fit(src[:2], dst[:2])
    with pytest.raises(DegenerateInputError):
        fit(src, dst[:7])
    # collinear destination with a good source cannot define a similarity either
    with pytest.raises(DegenerateInputError, match="collinear"):
        fit(src, np.linspace(0, 1, 8)[:, None] * np.ones(3))
    assert issubclass(DegenerateInputError, ValueError)


def test_robust_with_30_percent_gross_outliers() -> None:
    rng = np.random.default_rng(7)
    n = 200
    src = rng.uniform(-2, 2, (n, 3))
    dst = TRUE.apply(src) + rng.normal(0, 0.01, (n, 3))
    bad = rng.choice(n, int(0.3 * n), replace=False)
    dst[bad] = rng.uniform(-8, 8, (len(bad), 3))
    # plain least squares is wrecked...
    assert abs(umeyama_sim3(src, dst).scale - 1.8) / 1.8 > 0.05
    res = robust_sim3(src, dst, seed=1)
    assert abs(res.sim3.scale - 1.8) / 1.8 < 0.01
    assert rotation_angle(res.sim3.R.T @ rot_z(0.4)) < np.deg2rad(0.5)
    truth = np.ones(n, bool)
    truth[bad] = False
    assert (res.inliers == truth).mean() > 0.97
    assert 130 <= res.num_inliers <= 145 and res.num_inliers == res.inliers.sum()
    assert res.rms < 0.04
    np.testing.assert_allclose(res.residuals, np.linalg.norm(res.sim3.apply(src) - dst, axis=1))
    # deterministic for a seed
    res2 = robust_sim3(src, dst, seed=1)
    np.testing.assert_array_equal(res2.inliers, res.inliers)
    assert res2.sim3.scale == res.sim3.scale


def test_robust_fixed_threshold_and_prior_weights() -> None:
    rng = np.random.default_rng(8)
    src = rng.uniform(-2, 2, (100, 3))
    dst = TRUE.apply(src) + rng.normal(0, 0.005, (100, 3))
    dst[:40] += rng.normal(0, 3.0, (40, 3))  # 40% outliers
    res = robust_sim3(src, dst, inlier_threshold=0.05, seed=3)
    assert abs(res.sim3.scale - 1.8) < 0.01 * 1.8
    assert res.inliers[40:].mean() > 0.95 and res.inliers[:40].mean() < 0.1
    assert res.threshold == 0.05
    w = np.ones(100)
    w[:40] = 0.0  # weights alone remove them
    res_w = robust_sim3(src, dst, weights=w)
    assert not res_w.inliers[:40].any()
    assert abs(res_w.sim3.scale - 1.8) < 0.005 * 1.8


def test_robust_raises_when_too_few_inliers_requested() -> None:
    src = _pts(20, 9)
    dst = TRUE.apply(src)
    dst[10:] += 5 * _pts(10, 10)
    with pytest.raises(DegenerateInputError, match="inliers"):
        robust_sim3(src, dst, inlier_threshold=1e-3, min_inliers=15)


def test_robust_minimal_and_far_from_origin() -> None:
    src = _pts(3, 11)
    res = robust_sim3(src, TRUE.apply(src))
    assert res.num_inliers == 3 and abs(res.sim3.scale - 1.8) < 1e-9
    # kilometres away from the origin, centimetre spread: still exact, every point an inlier
    far = 1e4 + 0.01 * _pts(50, 12)
    res = robust_sim3(far, TRUE.apply(far))
    assert res.num_inliers == 50 and abs(res.sim3.scale - 1.8) < 1e-6
    # unit-free: the same problem in millimetres or kilometres gives the same scale and rotation
    src = _pts(30, 13)
    for unit in (1e-3, 1e3):
        est = umeyama_sim3(unit * src, unit * TRUE.apply(src))
        assert abs(est.scale - 1.8) < 1e-9
        np.testing.assert_allclose(est.R, rot_z(0.4), atol=1e-9)


def test_robust_near_breakdown_45_percent_outliers() -> None:
    rng = np.random.default_rng(21)
    n = 300
    src = rng.uniform(-2, 2, (n, 3))
    dst = TRUE.apply(src) + rng.normal(0, 0.005, (n, 3))
    bad = rng.random(n) < 0.45
    dst[bad] = rng.uniform(-8, 8, (bad.sum(), 3))
    res = robust_sim3(src, dst, seed=0)
    assert abs(res.sim3.scale - 1.8) / 1.8 < 0.01
    assert (res.inliers == ~bad).mean() > 0.95


def test_sim3_copies_inputs() -> None:
    R = rot_z(0.1)
    S = Sim3(1.0, R, np.zeros(3))
    R[0, 0] = 5.0
    assert S.R[0, 0] != 5.0
    with pytest.raises(ValueError):
        S.R[0, 0] = 2.0
