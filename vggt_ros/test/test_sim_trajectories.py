"""Trajectories: valid rigid poses, inside free space, loop closes, rotation keeps the centre."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.se3 import rotation_angle
from vggt_ros.sim.scene import Scene
from vggt_ros.sim.trajectories import TRAJECTORIES, forward, look_at, loop, rotation, still


@pytest.mark.parametrize("kind", sorted(TRAJECTORIES))
@pytest.mark.parametrize("n", [1, 2, 300])
def test_valid_poses_in_free_space(kind: str, n: int) -> None:
    P = TRAJECTORIES[kind](n)
    assert P.shape == (n, 4, 4)
    R = P[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    np.testing.assert_array_equal(P[:, 3], np.broadcast_to([0, 0, 0, 1.0], (n, 4)))
    assert Scene().is_free(P[:, :3, 3], margin=0.3).all()
    # no roll: the image x axis is horizontal and image y points down (world z up)
    assert np.abs(P[:, 2, 0]).max() < 1e-9
    assert np.all(P[:, 2, 1] < 0)


def test_loop_closes_exactly_and_moves() -> None:
    P = loop(241)
    np.testing.assert_array_equal(P[-1], P[0])
    c = P[:, :3, 3]
    steps = np.linalg.norm(np.diff(c, axis=0), axis=1)
    assert steps.min() > 0.02 and steps.max() < 0.1  # smooth: ~1.75 cm..9 cm per frame
    assert np.ptp(c[:, 0]) > 4.0 and np.ptp(c[:, 1]) > 3.0
    # looks inward: optical axis points towards the room centre side
    to_centre = -c[:, :2] / np.linalg.norm(c[:, :2], axis=1, keepdims=True)
    assert np.all((P[:, :2, 2] * to_centre).sum(1) > 0.5)
    # heading turns a full circle
    yaw = np.unwrap(np.arctan2(P[:, 1, 2], P[:, 0, 2]))
    assert abs(abs(yaw[-1] - yaw[0]) - 2 * np.pi) < 1e-9


def test_forward_moves_along_optical_axis() -> None:
    P = forward(100)
    d = P[-1, :3, 3] - P[0, :3, 3]
    assert d[0] > 4.5 and abs(d[1]) < 0.2
    assert np.all(P[:, 0, 2] > 0.95)  # optical z mostly along +x


def test_rotation_keeps_centre_fixed() -> None:
    P = rotation(60)
    np.testing.assert_array_equal(P[:, :3, 3], np.broadcast_to(P[0, :3, 3], (60, 3)))
    total = rotation_angle(P[0, :3, :3].T @ P[-1, :3, :3])
    assert np.deg2rad(100) < total < np.deg2rad(140)


def test_still_is_constant() -> None:
    P = still(5)
    assert np.all(P == P[0])


def test_look_at_points_at_target() -> None:
    T = look_at(np.array([1.0, 2.0, 1.0]), np.array([3.0, 2.0, 1.0]))
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0])
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0], atol=1e-15)  # image right = world -y
    with pytest.raises(ValueError):
        look_at(np.zeros(3), np.array([0.0, 0.0, 1.0]))
