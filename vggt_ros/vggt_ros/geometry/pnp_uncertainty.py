"""How well a set of 2D-3D matches determines a camera's orientation (first-order PnP covariance).

A PnP pose fitted to few points on one small, close surface is badly conditioned: a rotation of the
camera plus a translation of depth x angle moves all those points by nearly the same pixels
(geometry.rgbd_pose describes the same ambiguity), so pixel noise becomes degrees of rotation error.
Its least-squares fit still reprojects well, so the residual alone cannot flag it; the covariance
does. Gauss-Newton at the solution: Cov = sigma^2 (J^T J)^-1 over the 6 pose parameters, J the
Jacobian of the projections with respect to a left perturbation of T_cam_world
(rotation omega, translation tau: X_cam -> X_cam + omega x X_cam + tau), sigma the pixel noise per
axis. Frames: X in the world, T_world_cam maps camera points to the world (OpenCV optical camera).
"""

from __future__ import annotations

import numpy as np

from vggt_ros.geometry.depth import project_points
from vggt_ros.geometry.se3 import apply_T, invert_T

#: median of the 2D residual's length over its per-axis sigma, sqrt(2 ln 2) for a Gaussian
_MEDIAN_NORM_PER_SIGMA = float(np.sqrt(2.0 * np.log(2.0)))


def pose_covariance(
    X_world: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, sigma_px: float
) -> np.ndarray:
    """(6,6) covariance of (omega rad, tau) of T_cam_world from the projections of X_world (N,3).

    sigma_px: pixel noise per image axis. Points behind the camera are ignored. Returns an all-inf
    matrix when the points do not determine the pose (fewer than 3 in front, or J^T J singular).
    """
    Xc = apply_T(invert_T(T_world_cam), np.asarray(X_world, np.float64))
    Xc = Xc[Xc[:, 2] > 1e-9]
    if len(Xc) < 3:
        return np.full((6, 6), np.inf)
    x, y, z = Xc[:, 0], Xc[:, 1], Xc[:, 2]
    fx, fy = float(K[0, 0]), float(K[1, 1])
    du = np.zeros((len(Xc), 2, 3))  # d(u, v) / d X_cam
    du[:, 0, 0], du[:, 0, 2] = fx / z, -fx * x / z**2
    du[:, 1, 1], du[:, 1, 2] = fy / z, -fy * y / z**2
    dX = np.zeros((len(Xc), 3, 6))  # d X_cam / d (omega, tau): -[X_cam]x and I
    dX[:, 0, 1], dX[:, 0, 2] = z, -y
    dX[:, 1, 0], dX[:, 1, 2] = -z, x
    dX[:, 2, 0], dX[:, 2, 1] = y, -x
    dX[:, :, 3:] = np.eye(3)
    J = (du @ dX).reshape(-1, 6)
    info = J.T @ J
    if np.linalg.cond(info) > 1e12:
        return np.full((6, 6), np.inf)
    return float(sigma_px) ** 2 * np.linalg.inv(info)


def fitted_pose_covariance(
    X_world: np.ndarray, uv: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, max_px: float = np.inf
) -> np.ndarray:
    """(6,6) pose_covariance of a PnP fit at its own pixel noise, or all inf with fewer than 4 inliers.

    X_world (N,3) the matched points, uv (N,2) their observed pixels, T_world_cam the fitted pose;
    only matches reprojecting within max_px count (the fit's inliers). The pixel noise is estimated
    from their residuals: median length / sqrt(2 ln 2), times sqrt(2n / (2n - 6)) for the 6 fitted
    parameters.
    """
    proj, _ = project_points(K, invert_T(T_world_cam), X_world)
    err = np.linalg.norm(proj - np.asarray(uv, np.float64), axis=1)
    inl = np.isfinite(err) & (err < max_px)
    n = int(np.count_nonzero(inl))
    if n < 4:
        return np.full((6, 6), np.inf)
    sigma = float(np.median(err[inl])) / _MEDIAN_NORM_PER_SIGMA * np.sqrt(2 * n / (2 * n - 6))
    return pose_covariance(np.asarray(X_world)[inl], K, T_world_cam, sigma)


def rotation_sigma_deg(
    X_world: np.ndarray, uv: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, max_px: float = np.inf
) -> float:
    """1-sigma orientation uncertainty (degrees, sqrt of the rotation block's trace) of a PnP pose
    (fitted_pose_covariance's arguments); inf with fewer than 4 inliers."""
    cov = fitted_pose_covariance(X_world, uv, K, T_world_cam, max_px)
    return float(np.degrees(np.sqrt(np.trace(cov[:3, :3]))))


def pose_sigmas(
    X_world: np.ndarray, uv: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray, max_px: float = np.inf
) -> tuple[float, float]:
    """Per-axis 1-sigma of a PnP pose (fitted_pose_covariance's arguments): orientation (rad, RMS over
    the 3 axes) and camera centre (world units, RMS over the 3 axes; the centre -R_cw^T t_cw moves by
    -R_cw^T tau to first order, so its covariance is tau's rotated); (inf, inf) with fewer than 4 inliers."""
    cov = fitted_pose_covariance(X_world, uv, K, T_world_cam, max_px)
    return float(np.sqrt(np.trace(cov[:3, :3]) / 3.0)), float(np.sqrt(np.trace(cov[3:, 3:]) / 3.0))
