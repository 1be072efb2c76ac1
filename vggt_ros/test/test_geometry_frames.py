"""REP 103 optical <-> body frames."""

from __future__ import annotations

import numpy as np
from vggt_ros.geometry.frames import (
    T_BODY_OPTICAL,
    T_OPTICAL_BODY,
    body_pose_to_optical,
    optical_pose_to_body,
    optical_world_to_body_world,
    points_optical_to_body,
)
from vggt_ros.geometry.se3 import apply_T, make_T, rot_x, rot_z


def test_optical_axes_map_to_body_axes() -> None:
    R = T_BODY_OPTICAL[:3, :3]
    np.testing.assert_array_equal(R @ [0, 0, 1], [1, 0, 0])  # optical z (forward) -> body +x
    np.testing.assert_array_equal(R @ [1, 0, 0], [0, -1, 0])  # optical x (right)  -> body -y
    np.testing.assert_array_equal(R @ [0, 1, 0], [0, 0, -1])  # optical y (down)   -> body -z
    np.testing.assert_allclose(T_BODY_OPTICAL @ T_OPTICAL_BODY, np.eye(4), atol=0)


def test_matches_rep103_rpy() -> None:
    # REP 103: optical frame = body rotated by rpy(-pi/2, 0, -pi/2): R = Rz(yaw) Ry(pitch) Rx(roll)
    np.testing.assert_allclose(T_BODY_OPTICAL[:3, :3], rot_z(-np.pi / 2) @ rot_x(-np.pi / 2), atol=1e-15)


def test_pose_conversions_round_trip() -> None:
    T_world_opt = make_T(rot_z(0.3) @ rot_x(1.0), [1.0, 2.0, 3.0])
    T_world_body = optical_pose_to_body(T_world_opt)
    np.testing.assert_allclose(body_pose_to_optical(T_world_body), T_world_opt, atol=1e-15)
    # the body x axis (forward) is the optical z axis in the world
    np.testing.assert_allclose(T_world_body[:3, 0], T_world_opt[:3, 2], atol=1e-15)
    np.testing.assert_allclose(T_world_body[:3, 3], T_world_opt[:3, 3])


def test_points_and_world_reexpression() -> None:
    p = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]])
    np.testing.assert_allclose(points_optical_to_body(p), apply_T(T_BODY_OPTICAL, p))
    # a camera 2 m ahead of the first (optical world) is 2 m along body +x of the map
    T_optw_cam = make_T(np.eye(3), [0, 0, 2.0])
    T_map_cam = optical_world_to_body_world(T_optw_cam)
    np.testing.assert_allclose(T_map_cam[:3, 3], [2.0, 0, 0])
