"""OpenCV optical camera frame <-> ROS body frame (REP 103).

REP 103: a camera's optical frame has x right, y down, z forward; its body frame has
x forward, y left, z up. The optical frame is the body frame rotated by
rpy(-pi/2, 0, -pi/2) (REP 103 "Suffix Frames"; the static transform every ROS camera driver
publishes for `<camera>_optical_frame`). So optical z -> body +x, optical x -> body -y,
optical y -> body -z.
"""

from __future__ import annotations

import numpy as np

from vggt_ros.geometry.se3 import invert_T

#: maps optical-frame points into the body frame (R = Rz(-pi/2) @ Rx(-pi/2), no translation)
T_BODY_OPTICAL = np.array(
    [
        [0.0, 0.0, 1.0, 0.0],
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
T_BODY_OPTICAL.setflags(write=False)

#: maps body-frame points into the optical frame
T_OPTICAL_BODY = invert_T(T_BODY_OPTICAL)
T_OPTICAL_BODY.setflags(write=False)


def optical_pose_to_body(T_world_opt: np.ndarray) -> np.ndarray:
    """Pose of a camera's optical frame (...,4,4) -> pose of its body frame: T_world_opt @ T_opt_body."""
    return np.asarray(T_world_opt, dtype=np.float64) @ T_OPTICAL_BODY


def body_pose_to_optical(T_world_body: np.ndarray) -> np.ndarray:
    """Pose of a camera's body frame (...,4,4) -> pose of its optical frame: T_world_body @ T_body_opt."""
    return np.asarray(T_world_body, dtype=np.float64) @ T_BODY_OPTICAL


def optical_world_to_body_world(T_optw_x: np.ndarray) -> np.ndarray:
    """Re-express a pose (...,4,4) given in a camera's OPTICAL frame in that camera's BODY frame.

    Used to turn VGGT's window/map poses (world = first camera, optical axes) into the map frame
    (= first keyframe's camera body frame, docs/architecture.md#frames): T_body_x = T_BODY_OPTICAL @ T_opt_x.
    """
    return T_BODY_OPTICAL @ np.asarray(T_optw_x, dtype=np.float64)


def points_optical_to_body(pts: np.ndarray) -> np.ndarray:
    """Points (...,3) in an optical frame -> the same points in the body frame: (z, -x, -y)."""
    pts = np.asarray(pts)
    return np.stack([pts[..., 2], -pts[..., 0], -pts[..., 1]], axis=-1)
