"""Rigid SE(3) transforms as 4x4 matrices and similarity Sim(3) transforms.

Pose names state direction: `T_world_cam` maps camera-frame points into the world frame.
All numpy float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def make_T(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(3,3) rotation and (3,) translation -> (4,4) homogeneous transform [R t; 0 1]."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, dtype=np.float64)
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_T(T: np.ndarray) -> np.ndarray:
    """Closed-form inverse of rigid transforms (..., 4, 4): [R^T, -R^T t]."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


def apply_T(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a (4,4) transform to points (N,3) (any leading shape (...,3) works)."""
    T = np.asarray(T, dtype=np.float64)
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ T[:3, :3].T + T[:3, 3]


def rot_x(a: float) -> np.ndarray:
    """Rotation about +x by a radians (right-handed)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> np.ndarray:
    """Rotation about +y by a radians (right-handed)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def rot_z(a: float) -> np.ndarray:
    """Rotation about +z by a radians (right-handed)."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def so3_exp(w: np.ndarray) -> np.ndarray:
    """Rotation vector (...,3) (axis * angle, radians) -> rotation matrix (...,3,3) (Rodrigues)."""
    w = np.asarray(w, dtype=np.float64)
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    K = np.zeros(w.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2] = -w[..., 2], w[..., 1]
    K[..., 1, 0], K[..., 1, 2] = w[..., 2], -w[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -w[..., 1], w[..., 0]
    small = theta < 1e-8
    th = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta**2 / 6.0, np.sin(th) / th)
    b = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(th)) / th**2)
    return np.eye(3) + a * K + b * (K @ K)


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation closest to a (3,3) matrix in Frobenius norm (SVD, det +1): of a sum or mean of
    rotations, their chordal L2 mean."""
    U, _, Vt = np.linalg.svd(M)
    return U @ np.diag([1.0, 1.0, float(np.sign(np.linalg.det(U @ Vt)))]) @ Vt


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Angle in radians of rotations (...,3,3), robust near 0 and pi."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R, axis1=-2, axis2=-1)
    skew = np.stack(
        [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1
    )
    return np.arctan2(0.5 * np.linalg.norm(skew, axis=-1), 0.5 * (tr - 1.0))


@dataclass(frozen=True, eq=False)
class Sim3:
    """Similarity transform x -> scale * R @ x + t (maps frame a to frame b).

    scale: > 0, unitless ratio of b units to a units. R: (3,3) rotation. t: (3,) in b units.
    """

    scale: float
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def __post_init__(self) -> None:
        R = np.array(self.R, dtype=np.float64).reshape(3, 3)  # private read-only copies
        t = np.array(self.t, dtype=np.float64).reshape(3)
        s = float(self.scale)
        if not (np.isfinite(s) and s > 0.0):
            raise ValueError(f"Sim3 scale must be finite and > 0, got {s}")
        if not (np.all(np.isfinite(R)) and np.all(np.isfinite(t))):
            raise ValueError("Sim3 R and t must be finite")
        R.setflags(write=False)
        t.setflags(write=False)
        object.__setattr__(self, "scale", s)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)

    @staticmethod
    def identity() -> Sim3:
        return Sim3(1.0, np.eye(3), np.zeros(3))

    @staticmethod
    def from_matrix(M: np.ndarray) -> Sim3:
        """From a 4x4 [sR t; 0 1]. Raises ValueError if the block is not a scaled rotation."""
        M = np.asarray(M, dtype=np.float64)
        if M.shape != (4, 4):
            raise ValueError(f"expected (4,4), got {M.shape}")
        A = M[:3, :3]
        det = float(np.linalg.det(A))
        if not np.isfinite(det) or det <= 0.0:
            raise ValueError("Sim3 block must have a positive determinant")
        s = det ** (1.0 / 3.0)
        R = A / s
        if np.abs(R @ R.T - np.eye(3)).max() > 1e-6:
            raise ValueError("Sim3 block is not a scaled rotation")
        return Sim3(s, R, M[:3, 3])

    @staticmethod
    def from_T(T: np.ndarray, scale: float = 1.0) -> Sim3:
        """From a rigid (4,4) transform and an optional scale applied after the rotation."""
        T = np.asarray(T, dtype=np.float64)
        return Sim3(scale, T[:3, :3], T[:3, 3])

    def matrix(self) -> np.ndarray:
        """(4,4) [s R, t; 0 1]."""
        M = np.eye(4)
        M[:3, :3] = self.scale * self.R
        M[:3, 3] = self.t
        return M

    def inverse(self) -> Sim3:
        """x = (R^T (y - t)) / s."""
        Rt = self.R.T
        return Sim3(1.0 / self.scale, Rt, -(Rt @ self.t) / self.scale)

    def compose(self, other: Sim3) -> Sim3:
        """self after other: x -> self(other(x))."""
        return Sim3(
            self.scale * other.scale,
            self.R @ other.R,
            self.scale * (self.R @ other.t) + self.t,
        )

    def __matmul__(self, other: Sim3) -> Sim3:
        return self.compose(other)

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """Points (N,3) (or (...,3)) in frame a -> frame b."""
        pts = np.asarray(pts, dtype=np.float64)
        return self.scale * (pts @ self.R.T) + self.t

    def transform_pose(self, T_a_cam: np.ndarray) -> np.ndarray:
        """Camera pose in frame a (4,4 rigid) -> pose in frame b (rigid 4,4, b units).

        Rotation R @ R_a, translation s * R @ t_a + t. Leading batch dims (...,4,4) work too.
        """
        T = np.asarray(T_a_cam, dtype=np.float64)
        out = np.array(T, copy=True)
        out[..., :3, :3] = self.R @ T[..., :3, :3]
        out[..., :3, 3] = self.scale * np.einsum("ij,...j->...i", self.R, T[..., :3, 3]) + self.t
        return out

    def __repr__(self) -> str:
        return f"Sim3(scale={self.scale:.6g}, R={self.R.round(6).tolist()}, t={self.t.round(6).tolist()})"
