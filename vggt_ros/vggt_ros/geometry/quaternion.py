"""Quaternions (x, y, z, w) <-> rotation matrices: the ONE conversion point of the package.

Order (x, y, z, w), scalar last, as ROS messages (REP 103 / geometry_msgs) and VGGT's
absT_quaR_FoV encoding (docs/architecture.md#reference-conventions) both use. Works on numpy arrays
or torch tensors and
returns the same kind; leading batch dimensions are kept.
"""

from __future__ import annotations

from typing import Any

from vggt_ros.geometry._backend import as_array, xp


def matrix_from_quat_xyzw(q: Any) -> Any:
    """(..., 4) quaternion (x, y, z, w) -> (..., 3, 3) rotation matrix.

    The quaternion need not be unit: it is normalised by |q|^2 (as VGGT's quat_to_mat),
    so a network's raw output gives a proper rotation.
    """
    q = as_array(q)
    b = xp(q)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    two_s = 2.0 / (x * x + y * y + z * z + w * w)
    rows = [
        1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y),
    ]
    m = b.stack(rows, -1)
    return m.reshape(tuple(q.shape[:-1]) + (3, 3))


def quat_xyzw_from_matrix(R: Any) -> Any:
    """(..., 3, 3) rotation matrix -> (..., 4) unit quaternion (x, y, z, w) with w >= 0.

    Shepperd's method: of the four algebraically equal candidates, each element uses the one
    with the largest denominator (no cancellation near 180 degrees). The sign is fixed so
    w >= 0 (q and -q are the same rotation; VGGT standardises the same way).
    """
    R = as_array(R)
    b = xp(R)
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4*w^2, 4*x^2, 4*y^2, 4*z^2
    d = b.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    # the selected root is >= 1 (the four d's sum to 4); the clamp only keeps the others finite
    r = b.sqrt(b.clamp_min(d, 1e-12))
    rw, rx, ry, rz = r[..., 0], r[..., 1], r[..., 2], r[..., 3]
    # candidate k is (x, y, z, w) computed from the k-th diagonal root
    cands = b.stack(
        [
            b.stack([(m21 - m12) / rw, (m02 - m20) / rw, (m10 - m01) / rw, rw], -1),
            b.stack([rx, (m01 + m10) / rx, (m02 + m20) / rx, (m21 - m12) / rx], -1),
            b.stack([(m01 + m10) / ry, ry, (m12 + m21) / ry, (m02 - m20) / ry], -1),
            b.stack([(m02 + m20) / rz, (m12 + m21) / rz, rz, (m10 - m01) / rz], -1),
        ],
        -2,
    ) * 0.5
    best = b.argmax(d)
    onehot = best[..., None] == b.arange_like(4, R)
    q = b.where(onehot[..., None], cands, b.full_like(cands, 0.0)).sum(-2)
    q = q / b.sqrt((q * q).sum(-1))[..., None]
    sign = b.where(q[..., 3:4] < 0, b.full_like(q[..., 3:4], -1.0), b.full_like(q[..., 3:4], 1.0))
    return q * sign
