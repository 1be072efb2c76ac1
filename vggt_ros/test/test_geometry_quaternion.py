"""Quaternion (x, y, z, w) <-> matrix: known values, round trips, numpy and torch."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw, quat_xyzw_from_matrix
from vggt_ros.geometry.se3 import rot_x, rot_z, so3_exp


def test_rz90_is_xyzw_0_0_07071_07071() -> None:
    q = quat_xyzw_from_matrix(rot_z(np.pi / 2))
    np.testing.assert_allclose(q, [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    np.testing.assert_allclose(q, [0, 0, 0.7071, 0.7071], atol=1e-4)


def test_identity_and_180_degrees() -> None:
    np.testing.assert_allclose(quat_xyzw_from_matrix(np.eye(3)), [0, 0, 0, 1], atol=1e-15)
    # 180 deg about x: w = 0, the case where the trace-based formula cancels
    q = quat_xyzw_from_matrix(rot_x(np.pi))
    np.testing.assert_allclose(np.abs(q), [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(matrix_from_quat_xyzw(q), rot_x(np.pi), atol=1e-12)


def test_round_trip_random_batch_and_w_nonnegative() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(500, 3))
    w *= (rng.uniform(0, np.pi, 500) / np.linalg.norm(w, axis=1))[:, None]
    R = so3_exp(w)
    q = quat_xyzw_from_matrix(R)
    assert q.shape == (500, 4)
    assert np.all(q[:, 3] >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(matrix_from_quat_xyzw(q), R, atol=1e-12)
    # angle of the rotation equals 2 acos(w)
    np.testing.assert_allclose(2 * np.arccos(np.clip(q[:, 3], -1, 1)), np.linalg.norm(w, axis=1), atol=1e-6)


def test_non_unit_quaternion_is_normalised() -> None:
    q = np.array([0.1, -0.4, 0.2, 0.7])
    R = matrix_from_quat_xyzw(3.7 * q)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R, matrix_from_quat_xyzw(q / np.linalg.norm(q)), atol=1e-12)


def test_matches_independent_axis_angle_formula() -> None:
    axis = np.array([1.0, 2.0, -0.5])
    axis /= np.linalg.norm(axis)
    ang = 1.1
    q = np.r_[axis * np.sin(ang / 2), np.cos(ang / 2)]
    np.testing.assert_allclose(matrix_from_quat_xyzw(q), so3_exp(axis * ang), atol=1e-12)


def test_torch_in_torch_out() -> None:
    torch = pytest.importorskip("torch")
    R = torch.tensor(rot_z(0.3), dtype=torch.float32)[None].repeat(2, 1, 1)
    q = quat_xyzw_from_matrix(R)
    assert isinstance(q, torch.Tensor) and q.dtype == torch.float32 and q.shape == (2, 4)
    np.testing.assert_allclose(q.numpy()[0], [0, 0, np.sin(0.15), np.cos(0.15)], atol=1e-6)
    R2 = matrix_from_quat_xyzw(q)
    assert isinstance(R2, torch.Tensor)
    np.testing.assert_allclose(R2.numpy(), R.numpy(), atol=1e-6)
