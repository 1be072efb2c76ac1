"""SE(3)/Sim(3): compose, inverse, apply, transform_pose."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.se3 import (
    Sim3,
    apply_T,
    invert_T,
    make_T,
    nearest_rotation,
    rot_x,
    rot_y,
    rot_z,
    rotation_angle,
    so3_exp,
)


def _rand_T(rng: np.random.Generator) -> np.ndarray:
    return make_T(so3_exp(rng.normal(size=3)), rng.normal(size=3))


def test_invert_T_batch_and_apply() -> None:
    rng = np.random.default_rng(0)
    Ts = np.stack([_rand_T(rng) for _ in range(5)])
    np.testing.assert_allclose(Ts @ invert_T(Ts), np.broadcast_to(np.eye(4), Ts.shape), atol=1e-12)
    pts = rng.normal(size=(7, 3))
    back = apply_T(invert_T(Ts[0]), apply_T(Ts[0], pts))
    np.testing.assert_allclose(back, pts, atol=1e-12)
    np.testing.assert_allclose(apply_T(Ts[1], pts), (Ts[1] @ np.c_[pts, np.ones(7)].T).T[:, :3], atol=1e-12)


def test_sim3_inverse_twice_is_identity() -> None:
    S = Sim3(1.8, rot_z(0.4) @ rot_x(-0.2), np.array([1.0, -0.5, 0.3]))
    SS = S.inverse().inverse()
    np.testing.assert_allclose(SS.matrix(), S.matrix(), atol=1e-12)
    np.testing.assert_allclose(S.compose(S.inverse()).matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(S.inverse().compose(S).matrix(), np.eye(4), atol=1e-12)


def test_sim3_compose_is_self_after_other_and_matches_matrices() -> None:
    rng = np.random.default_rng(3)
    A = Sim3(2.3, rot_z(0.5), rng.normal(size=3))
    B = Sim3(0.7, rot_y(-1.0), rng.normal(size=3))
    pts = rng.normal(size=(10, 3))
    np.testing.assert_allclose(A.compose(B).apply(pts), A.apply(B.apply(pts)), atol=1e-12)
    np.testing.assert_allclose((A @ B).matrix(), A.matrix() @ B.matrix(), atol=1e-12)
    M = Sim3.from_matrix(A.matrix())
    assert abs(M.scale - 2.3) < 1e-12
    np.testing.assert_allclose(M.R, A.R, atol=1e-12)


def test_transform_pose_is_rigid_and_consistent_with_points() -> None:
    rng = np.random.default_rng(4)
    S = Sim3(2.3, rot_z(0.5), np.array([0.2, 0.1, -1.0]))
    T_a_cam = _rand_T(rng)
    T_b_cam = S.transform_pose(T_a_cam)
    np.testing.assert_allclose(T_b_cam[:3, :3] @ T_b_cam[:3, :3].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(T_b_cam[3], [0, 0, 0, 1])
    # a point at camera coords p maps to S(T_a_cam p) when p is scaled by s in the new units
    p = rng.normal(size=(4, 3))
    np.testing.assert_allclose(apply_T(T_b_cam, S.scale * p), S.apply(apply_T(T_a_cam, p)), atol=1e-12)
    # camera centre maps like a point
    np.testing.assert_allclose(T_b_cam[:3, 3], S.apply(T_a_cam[:3, 3][None])[0], atol=1e-12)


def test_two_windows_chained_back_within_1e6() -> None:
    """Window 2's frame is window 1's scaled by 2.3 and rotated Rz(0.5): chaining recovers poses."""
    rng = np.random.default_rng(5)
    S_w2_w1 = Sim3(2.3, rot_z(0.5), np.array([0.4, -0.2, 0.1]))
    T_w1_cams = np.stack([_rand_T(rng) for _ in range(4)])
    T_w2_cams = S_w2_w1.transform_pose(T_w1_cams)
    back = S_w2_w1.inverse().transform_pose(T_w2_cams)
    np.testing.assert_allclose(back, T_w1_cams, atol=1e-6)
    assert np.abs(back - T_w1_cams).max() < 1e-12  # in practice exact to rounding
    # ratio of camera baselines is the scale
    d1 = np.linalg.norm(T_w1_cams[1, :3, 3] - T_w1_cams[0, :3, 3])
    d2 = np.linalg.norm(T_w2_cams[1, :3, 3] - T_w2_cams[0, :3, 3])
    assert abs(d2 / d1 - 2.3) < 1e-9


def test_sim3_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        Sim3(0.0, np.eye(3), np.zeros(3))
    with pytest.raises(ValueError):
        Sim3(1.0, np.eye(3), np.array([np.nan, 0, 0]))
    M = np.eye(4)
    M[:3, :3] = np.diag([1.0, 2.0, 1.0])
    with pytest.raises(ValueError):
        Sim3.from_matrix(M)


def test_rotation_angle_and_exp() -> None:
    assert abs(rotation_angle(rot_z(0.4)) - 0.4) < 1e-12
    assert abs(rotation_angle(rot_x(np.pi)) - np.pi) < 1e-9
    np.testing.assert_allclose(so3_exp(np.array([0, 0, 0.4])), rot_z(0.4), atol=1e-12)


def test_nearest_rotation_is_the_chordal_mean_of_rotations():
    R = so3_exp(np.array([0.3, -0.2, 1.1]))
    assert np.allclose(nearest_rotation(3.0 * R), R, atol=1e-12)  # a sum of equal rotations
    rng = np.random.default_rng(0)
    Rs = [R @ so3_exp(rng.normal(0.0, 0.05, 3)) for _ in range(50)]
    M = nearest_rotation(np.sum(Rs, axis=0))
    assert np.allclose(M @ M.T, np.eye(3), atol=1e-12) and np.linalg.det(M) > 0
    assert np.degrees(rotation_angle(R.T @ M)) < 2.0  # 50 draws of ~5 deg: the mean is within ~1 deg
    # a reflection-like input still gives a proper rotation
    assert np.linalg.det(nearest_rotation(np.diag([1.0, 1.0, -1.0]))) > 0
