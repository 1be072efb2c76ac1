"""msgs/convert.py: pose and TF messages back to matrices, against the builders' own messages (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.se3 import apply_T, invert_T
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.convert import pose_to_matrix, transform_to_matrix
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.runtime.publishing import map_to_odom


def _random_T(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = q, rng.normal(size=3) * 3.0
    return T


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_through_transform_stamped(seed: int) -> None:
    T = _random_T(np.random.default_rng(seed))
    msg = MessageBuilder(RosbagsFamily()).transform_stamped(123, "odom", "camera_optical", T)
    back = transform_to_matrix(msg.transform)
    np.testing.assert_allclose(back, T, atol=1e-12)
    # direction: the child's origin is the translation in the parent (tf2: parent <- child)
    np.testing.assert_allclose(apply_T(back, np.zeros((1, 3)))[0], T[:3, 3], atol=1e-12)


def test_map_to_odom_from_a_looked_up_transform_reproduces_the_camera_pose() -> None:
    """The 'odom' TF mode: map->odom composed with the looked-up odom->camera gives map->camera."""
    rng = np.random.default_rng(7)
    T_map_cam, T_odom_cam = _random_T(rng), _random_T(rng)
    looked_up = transform_to_matrix(
        MessageBuilder(RosbagsFamily()).transform_stamped(5, "odom", "cam", T_odom_cam).transform)
    T_map_odom = map_to_odom(T_map_cam, looked_up)
    np.testing.assert_allclose(T_map_odom @ T_odom_cam, T_map_cam, atol=1e-10)
    assert not np.allclose(T_map_odom, invert_T(T_odom_cam))  # not a trivial identity case


@pytest.mark.parametrize("seed", [3, 4])
def test_pose_round_trip_through_the_builders_pose(seed: int) -> None:
    T = _random_T(np.random.default_rng(seed))
    back = pose_to_matrix(MessageBuilder(RosbagsFamily()).pose(T))
    np.testing.assert_allclose(back, T, atol=1e-12)
    np.testing.assert_allclose(invert_T(back) @ T, np.eye(4), atol=1e-12)
