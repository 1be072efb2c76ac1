"""Geometry: SE(3)/Sim(3), quaternions (x, y, z, w), REP 103 frames, VGGT pose encoding, depth, alignment.

numpy throughout; pose_encoding and quaternion also accept torch tensors.
"""

from vggt_ros.geometry.alignment import AlignmentResult, DegenerateInputError, robust_sim3, umeyama_sim3
from vggt_ros.geometry.depth import project_points, unproject_depth
from vggt_ros.geometry.frames import T_BODY_OPTICAL, T_OPTICAL_BODY, optical_pose_to_body
from vggt_ros.geometry.pose_encoding import extri_intri_to_pose_encoding, pose_encoding_to_extri_intri
from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw, quat_xyzw_from_matrix
from vggt_ros.geometry.se3 import Sim3, apply_T, invert_T, make_T

__all__ = [
    "AlignmentResult", "DegenerateInputError", "robust_sim3", "umeyama_sim3",
    "project_points", "unproject_depth",
    "T_BODY_OPTICAL", "T_OPTICAL_BODY", "optical_pose_to_body",
    "extri_intri_to_pose_encoding", "pose_encoding_to_extri_intri",
    "matrix_from_quat_xyzw", "quat_xyzw_from_matrix",
    "Sim3", "apply_T", "invert_T", "make_T",
]
