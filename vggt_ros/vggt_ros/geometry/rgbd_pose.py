"""Camera pose from 2D-3D matches plus a measured depth at each observed pixel (RGB-D PnP).

Plain PnP from a narrow field of view is badly conditioned along one direction: a small rotation
of the camera plus a translation of depth x angle moves every point at that depth by the same
pixels, so pixel noise turns into correlated rotation / translation error. A depth measured at the
observed pixel (a registered depth camera) fixes it: the rotation then changes the observed depth
of points across the image. This module refines a pose by Gauss-Newton on both residuals:

- reprojection: (project(K, T_cam_world X) - uv) / sigma_px, two per point (pixels);
- depth: (z of X in the camera - D) / depth_sigma, one per point with a valid D (depth_sigma per point:
  the caller knows how the measurement's noise varies, e.g. with range or with the depth gradient at a
  pixel that is itself uncertain).

Huber weights (normalised residuals, delta 2) keep stray matches from dominating. Frames: X in the
world, T_world_cam maps camera points to the world (OpenCV optical camera), D along optical z in the
same units as X.
"""

from __future__ import annotations

import numpy as np

from vggt_ros.geometry.se3 import invert_T, so3_exp

HUBER_DELTA = 2.0


def _residuals(
    T_cw: np.ndarray, X: np.ndarray, uv: np.ndarray, D: np.ndarray, D_sigma: np.ndarray, K: np.ndarray,
    sigma_px: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised residuals r (M,) and Jacobian J (M,6) w.r.t. a left perturbation (rho, phi) of T_cw
    (P -> P + rho + phi x P for a camera point P). Rows: u and v of every point, then the depth of the
    points with a finite D and D_sigma."""
    P = X @ T_cw[:3, :3].T + T_cw[:3, 3]
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    fx, fy = K[0, 0], K[1, 1]
    a, b, iz = x / z, y / z, 1.0 / z
    zero = np.zeros_like(z)
    J_u = np.stack([fx * iz, zero, -fx * a * iz, -fx * a * b, fx * (1.0 + a * a), -fx * b], -1) / sigma_px
    J_v = np.stack([zero, fy * iz, -fy * b * iz, -fy * (1.0 + b * b), fy * a * b, fy * a], -1) / sigma_px
    r_u = (fx * a + K[0, 2] - uv[:, 0]) / sigma_px
    r_v = (fy * b + K[1, 2] - uv[:, 1]) / sigma_px
    ok = np.isfinite(D) & (D > 0) & np.isfinite(D_sigma) & (D_sigma > 0)
    s = D_sigma[ok]
    r_d = (z[ok] - D[ok]) / s
    J_d = np.stack([zero[ok], zero[ok], 1.0 + zero[ok], y[ok], -x[ok], zero[ok]], -1) / s[:, None]
    return np.concatenate([r_u, r_v, r_d]), np.concatenate([J_u, J_v, J_d])


def refine_pose_rgbd(
    X_world: np.ndarray,
    uv: np.ndarray,
    depth: np.ndarray,
    depth_sigma: np.ndarray,
    K: np.ndarray,
    T_world_cam0: np.ndarray,
    sigma_px: float,
    iterations: int = 8,
) -> np.ndarray:
    """Refine T_world_cam (4,4) from X_world (N,3), their pixels uv (N,2) and measured depth (N,) (NaN =
    none) with depth_sigma (N,) its standard deviation (units of X: the measurement's and the map point's
    noise together), intrinsics K (3,3), starting at T_world_cam0; sigma_px: pixel noise (px). Returns
    the refined pose; the start pose when the system is singular or a point falls behind the camera."""
    X = np.asarray(X_world, dtype=np.float64)
    p = np.asarray(uv, dtype=np.float64)
    D = np.asarray(depth, dtype=np.float64)
    D_sigma = np.broadcast_to(np.asarray(depth_sigma, dtype=np.float64), D.shape)
    Kd = np.asarray(K, dtype=np.float64)
    T_cw = invert_T(np.asarray(T_world_cam0, dtype=np.float64))
    for _ in range(iterations):
        z = X @ T_cw[2, :3] + T_cw[2, 3]
        if np.any(z <= 1e-9):
            return np.asarray(T_world_cam0, dtype=np.float64).copy()
        r, J = _residuals(T_cw, X, p, D, D_sigma, Kd, sigma_px)
        a = np.abs(r)
        w = np.where(a <= HUBER_DELTA, 1.0, HUBER_DELTA / np.maximum(a, 1e-12))
        H = J.T @ (J * w[:, None])
        try:
            delta = np.linalg.solve(H + 1e-9 * np.trace(H) * np.eye(6), -(J.T @ (w * r)))
        except np.linalg.LinAlgError:
            return np.asarray(T_world_cam0, dtype=np.float64).copy()
        step = np.eye(4)
        step[:3, :3] = so3_exp(delta[3:])
        step[:3, 3] = delta[:3]
        T_cw = step @ T_cw
        if float(np.abs(delta).max()) < 1e-9:  # radians / units of X
            break
    return invert_T(T_cw)
