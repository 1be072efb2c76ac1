"""ROS-free conversions the rclpy transport needs beyond vggt_ros.msgs (duck-typed on message fields)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw
from vggt_ros.geometry.se3 import make_T


def transform_to_matrix(transform: Any) -> np.ndarray:
    """geometry_msgs/Transform (or a TransformStamped's .transform) -> (4, 4) T_parent_child.

    tf2's lookup_transform(target, source) returns the transform that maps source-frame points into
    the target frame, i.e. T_target_source. The inverse of MessageBuilder.transform_stamped.
    """
    t, q = transform.translation, transform.rotation
    R = np.asarray(matrix_from_quat_xyzw(np.array([q.x, q.y, q.z, q.w], dtype=np.float64)))
    return make_T(R, np.array([t.x, t.y, t.z], dtype=np.float64))
