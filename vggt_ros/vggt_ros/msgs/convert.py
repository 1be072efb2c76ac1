"""ROS messages back to numpy: the inverse of the builders' pose and transform fields.

Duck-typed on message fields, so it works for rosbags classes, rclpy classes and ROS 1 messages.
Quaternions go through vggt_ros.geometry.quaternion (the one conversion point).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw
from vggt_ros.geometry.se3 import make_T


def _rigid(t: Any, q: Any) -> np.ndarray:
    R = np.asarray(matrix_from_quat_xyzw(np.array([q.x, q.y, q.z, q.w], dtype=np.float64)))
    return make_T(R, np.array([t.x, t.y, t.z], dtype=np.float64))


def pose_to_matrix(pose: Any) -> np.ndarray:
    """geometry_msgs/Pose -> (4, 4) T_frame_body: maps body points into the header's frame."""
    return _rigid(pose.position, pose.orientation)


def transform_to_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform (or a TransformStamped's .transform) -> (4, 4) T_parent_child.

    tf2's lookup_transform(target, source) returns the transform that maps source-frame points into
    the target frame, i.e. T_target_source. The inverse of MessageBuilder.transform_stamped.
    """
    return _rigid(transform.translation, transform.rotation)
