"""Depth maps <-> 3D points: unprojection, projection, reprojection between views.

Pixel convention is VGGT's (`unproject_depth_map_to_point_map`, docs/architecture.md#reference-conventions):
pixel (u, v)
with u = 0..W-1 the column and v = 0..H-1 the row, NO +0.5 offset, so
x = (u - cx) * d / fx, y = (v - cy) * d / fy, z = d (depth along the optical z axis).
Cameras are OpenCV optical frames. Invalid depth is NaN (or <= 0, treated as invalid).
"""

from __future__ import annotations

import numpy as np

from vggt_ros.geometry.se3 import apply_T, invert_T


def pixel_grid(hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 2) float64 pixel coordinates (u, v) = (column, row), u = 0..W-1 (no +0.5)."""
    H, W = hw
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.stack([u, v], axis=-1)


def unproject_pixels(uv: np.ndarray, depth: np.ndarray, K: np.ndarray,
                     T_world_cam: np.ndarray | None = None) -> np.ndarray:
    """Pixels (N,2) with depth (N,) along optical z -> points (N,3) (camera frame or world if given)."""
    uv = np.asarray(uv, dtype=np.float64)
    d = np.asarray(depth, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    x = (uv[..., 0] - K[0, 2]) * d / K[0, 0]
    y = (uv[..., 1] - K[1, 2]) * d / K[1, 1]
    pts = np.stack([x, y, d], axis=-1)
    if T_world_cam is not None:
        pts = apply_T(T_world_cam, pts)
    return pts


def unproject_depth(depth: np.ndarray, K: np.ndarray, T_world_cam: np.ndarray | None = None) -> np.ndarray:
    """Depth (H,W) along optical z -> points (H,W,3) in the camera frame, or world if T_world_cam given.

    Computed in float64; returned as float32 when depth is float32 (VGGT's output dtype), else
    float64. Pixels with NaN depth give NaN points; depth <= 0 gives NaN too.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H,W), got {depth.shape}")
    d = depth.astype(np.float64)
    d = np.where(d > 0, d, np.nan)
    pts = unproject_pixels(pixel_grid(depth.shape), d, K, T_world_cam)
    return pts.astype(np.float32) if depth.dtype == np.float32 else pts


def project_points(K: np.ndarray, T_cam_world: np.ndarray | None,
                   pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points (N,3) -> (uv (N,2) pixels, z (N,) depth along optical z in the camera).

    T_cam_world maps world points into the camera (None: pts are already in the camera).
    Points with z <= 0 get uv = NaN (behind the camera).
    """
    K = np.asarray(K, dtype=np.float64)
    p = np.asarray(pts, dtype=np.float64)
    if T_cam_world is not None:
        p = apply_T(T_cam_world, p)
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.where(z > 0, z, np.nan)
        u = K[0, 0] * p[..., 0] / zs + K[0, 2]
        v = K[1, 1] * p[..., 1] / zs + K[1, 2]
    return np.stack([u, v], axis=-1), z


def in_image(uv: np.ndarray, hw: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """Bool mask (...,) of pixels inside [margin, W-1-margin] x [margin, H-1-margin] (NaN -> False)."""
    H, W = hw
    u, v = uv[..., 0], uv[..., 1]
    with np.errstate(invalid="ignore"):
        return (u >= margin) & (u <= W - 1 - margin) & (v >= margin) & (v <= H - 1 - margin)


def sample_nearest(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Nearest-pixel lookup of img (H,W[,C]) at uv (...,2); outside the image or NaN uv -> NaN."""
    H, W = img.shape[:2]
    ok = in_image(uv, (H, W), margin=-0.5 + 1e-9)
    ui = np.clip(np.rint(np.nan_to_num(uv[..., 0])), 0, W - 1).astype(np.intp)
    vi = np.clip(np.rint(np.nan_to_num(uv[..., 1])), 0, H - 1).astype(np.intp)
    out = img[vi, ui].astype(np.float64)
    out[~ok] = np.nan
    return out


def sample_bilinear(img: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of img (H,W[,C]) at uv (...,2); outside [0,W-1]x[0,H-1] or NaN uv -> NaN.

    NaNs in img propagate to any sample that touches them.
    """
    H, W = img.shape[:2]
    ok = in_image(uv, (H, W))
    u = np.clip(np.nan_to_num(uv[..., 0]), 0, W - 1)
    v = np.clip(np.nan_to_num(uv[..., 1]), 0, H - 1)
    u0 = np.clip(np.floor(u).astype(np.intp), 0, max(W - 2, 0))
    v0 = np.clip(np.floor(v).astype(np.intp), 0, max(H - 2, 0))
    u1 = np.minimum(u0 + 1, W - 1)
    v1 = np.minimum(v0 + 1, H - 1)
    a = u - u0
    b = v - v0
    if img.ndim == 3:
        a = a[..., None]
        b = b[..., None]

    def at(vi: np.ndarray, ui: np.ndarray) -> np.ndarray:  # float64 of the samples only, not the image
        return img[vi, ui].astype(np.float64)

    out = (at(v0, u0) * (1 - a) * (1 - b) + at(v0, u1) * a * (1 - b)
           + at(v1, u0) * (1 - a) * b + at(v1, u1) * a * b)
    out[~ok] = np.nan
    return out


def reproject_depth(depth_i: np.ndarray, K_i: np.ndarray, T_world_cam_i: np.ndarray,
                    K_j: np.ndarray, T_world_cam_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map each pixel of view i (with its depth) into view j.

    Returns (uv_j (H,W,2) pixels in view j, z_j (H,W) depth in view j along its optical z);
    NaN where depth_i is invalid or the point is behind camera j.
    """
    pts_w = unproject_depth(np.asarray(depth_i, dtype=np.float64), K_i, T_world_cam_i)
    T_j_w = invert_T(T_world_cam_j)
    return project_points(K_j, T_j_w, pts_w)


def reprojection_depth_error(depth_i: np.ndarray, K_i: np.ndarray, T_world_cam_i: np.ndarray,
                             depth_j: np.ndarray, K_j: np.ndarray, T_world_cam_j: np.ndarray,
                             occlusion_tol: float = 0.05) -> np.ndarray:
    """Relative depth disagreement |z_j(reprojected) - depth_j(sampled)| / depth_j, per pixel of view i.

    NaN where the reprojection falls outside view j, depth is invalid, or the point is occluded
    in view j (reprojected depth more than occlusion_tol relatively behind view j's surface).
    Nearest-pixel sampling of depth_j, so the error includes up to half a pixel of misplacement.
    """
    uv, z = reproject_depth(depth_i, K_i, T_world_cam_i, K_j, T_world_cam_j)
    dj = sample_nearest(np.asarray(depth_j, dtype=np.float64), uv)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(z - dj) / dj
        occluded = z > dj * (1.0 + occlusion_tol)
    rel[occluded] = np.nan
    return rel
