"""VGGT's `absT_quaR_FoV` camera encoding <-> extrinsics / intrinsics.

Encoding (..., 9) = [t (3) of the camera-from-world extrinsic (OpenCV optical axes),
quaternion (x, y, z, w) of its rotation, fov_h, fov_w (radians)] (VGGT
`vggt/utils/pose_enc.py`; docs/architecture.md#reference-conventions). Intrinsics: fy = (H/2)/tan(fov_h/2),
fx = (W/2)/tan(fov_w/2), principal point at (W/2, H/2), no skew.

Both functions accept numpy arrays or torch tensors (any float dtype, any device) and
return the same kind and dtype.
"""

from __future__ import annotations

from typing import Any

from vggt_ros.geometry._backend import as_array, is_torch, xp
from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw, quat_xyzw_from_matrix


def _check_hw(image_hw: tuple[int, int]) -> tuple[float, float]:
    H, W = (float(v) for v in image_hw)
    if not (H > 0 and W > 0):
        raise ValueError(f"image_hw must be positive, got {image_hw}")
    return H, W


def pose_encoding_to_extri_intri(pose_enc: Any, image_hw: tuple[int, int]) -> tuple[Any, Any]:
    """(..., 9) absT_quaR_FoV -> (extrinsics (..., 3, 4) camera-from-world, intrinsics (..., 3, 3)).

    The quaternion need not be unit (normalised by |q|^2, as VGGT's quat_to_mat).
    """
    pe = as_array(pose_enc)
    if pe.shape[-1] != 9:
        raise ValueError(f"pose encoding must end in 9, got shape {tuple(pe.shape)}")
    H, W = _check_hw(image_hw)
    b = xp(pe)
    R = matrix_from_quat_xyzw(pe[..., 3:7])
    E = b.stack([R[..., 0], R[..., 1], R[..., 2], pe[..., :3]], -1)  # columns -> (...,3,4)
    fy = (H / 2.0) / b.tan(pe[..., 7] / 2.0)
    fx = (W / 2.0) / b.tan(pe[..., 8] / 2.0)
    zero = 0.0 * fx
    one = zero + 1.0
    K = b.stack([fx, zero, zero + W / 2.0, zero, fy, zero + H / 2.0, zero, zero, one], -1)
    K = K.reshape(tuple(pe.shape[:-1]) + (3, 3))
    return E, K


def extri_intri_to_pose_encoding(extrinsics: Any, intrinsics: Any, image_hw: tuple[int, int]) -> Any:
    """(extrinsics (..., 3, 4) or (..., 4, 4) camera-from-world, intrinsics (..., 3, 3)) -> (..., 9).

    The principal point is not encoded (VGGT assumes the image centre).
    """
    E = as_array(extrinsics)
    K = as_array(intrinsics)
    if is_torch(E) != is_torch(K):
        raise TypeError("extrinsics and intrinsics must both be numpy arrays or both torch tensors")
    if tuple(E.shape[-2:]) not in ((3, 4), (4, 4)) or tuple(K.shape[-2:]) != (3, 3):
        raise ValueError(f"bad shapes extrinsics {tuple(E.shape)}, intrinsics {tuple(K.shape)}")
    H, W = _check_hw(image_hw)
    b = xp(E)
    q = quat_xyzw_from_matrix(E[..., :3, :3])
    fov_h = 2.0 * b.arctan((H / 2.0) / K[..., 1, 1])
    fov_w = 2.0 * b.arctan((W / 2.0) / K[..., 0, 0])
    parts = [E[..., 0, 3], E[..., 1, 3], E[..., 2, 3],
             q[..., 0], q[..., 1], q[..., 2], q[..., 3], fov_h, fov_w]
    return b.stack(parts, -1)
