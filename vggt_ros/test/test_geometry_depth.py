"""Depth unprojection / projection / reprojection, incl. the reference's world_points_from_depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from vggt_ros.geometry.depth import (
    pixel_grid,
    project_points,
    reproject_depth,
    reprojection_depth_error,
    sample_bilinear,
    unproject_depth,
)
from vggt_ros.geometry.se3 import invert_T, make_T, rot_y, rot_z


def test_matches_reference_world_points_from_depth(data_dir: Path) -> None:
    g = np.load(data_dir / "geometry_golden.npz")
    H, W = (int(v) for v in g["image_hw"])
    r0, c0 = (int(v) for v in g["crop_origin"])
    ph, pw = g["depth_patch"].shape[1:]
    for i in range(2):
        depth = np.full((H, W), np.nan, np.float32)
        depth[r0:r0 + ph, c0:c0 + pw] = g["depth_patch"][i]
        T_cam_world = np.eye(4)
        T_cam_world[:3] = g["extrinsic"][i]
        pts = unproject_depth(depth, g["intrinsic"][i], invert_T(T_cam_world))
        assert pts.shape == (H, W, 3) and pts.dtype == np.float32
        ref = g["world_points_from_depth_patch"][i]
        np.testing.assert_allclose(pts[r0:r0 + ph, c0:c0 + pw], ref, atol=1e-5)
        assert np.isnan(pts[0, 0]).all()


def test_pixel_grid_has_no_half_pixel_offset() -> None:
    uv = pixel_grid((2, 3))
    np.testing.assert_array_equal(uv[1, 2], [2.0, 1.0])
    K = np.array([[100.0, 0, 1.0], [0, 100.0, 0.5], [0, 0, 1]])
    pts = unproject_depth(np.full((2, 3), 2.0), K)
    np.testing.assert_allclose(pts[0, 1], [0.0, -0.01, 2.0])  # u = cx -> x = 0


def test_project_inverts_unproject() -> None:
    rng = np.random.default_rng(0)
    K = np.array([[250.0, 0, 160], [0, 260.0, 120], [0, 0, 1]])
    depth = rng.uniform(1, 5, (24, 32))
    T_world_cam = make_T(rot_z(0.3) @ rot_y(0.2), [1, 2, 3])
    pts = unproject_depth(depth, K, T_world_cam).reshape(-1, 3)
    uv, z = project_points(K, invert_T(T_world_cam), pts)
    np.testing.assert_allclose(uv, pixel_grid((24, 32)).reshape(-1, 2), atol=1e-9)
    np.testing.assert_allclose(z, depth.reshape(-1), atol=1e-12)
    uv, z = project_points(K, None, np.array([[0.0, 0.0, -1.0]]))
    assert np.isnan(uv).all() and z[0] == -1.0


def test_reprojection_of_a_plane_between_two_views() -> None:
    """Plane z = 4 seen from two cameras: reprojected depth matches the other view's depth exactly."""
    K = np.array([[200.0, 0, 32], [0, 200.0, 24], [0, 0, 1]])
    T_w_i = np.eye(4)
    T_w_j = make_T(rot_y(0.05), [0.3, 0.0, 0.2])

    def plane_depth(T_w_c: np.ndarray) -> np.ndarray:
        rays = np.concatenate([(pixel_grid((48, 64)) - K[:2, 2]) / np.diag(K)[:2], np.ones((48, 64, 1))], -1)
        d_w = rays @ T_w_c[:3, :3].T
        lam = (4.0 - T_w_c[2, 3]) / d_w[..., 2]  # ray param to reach world z = 4
        return lam  # depth along optical z since rays have z = 1

    di, dj = plane_depth(T_w_i), plane_depth(T_w_j)
    uv, z = reproject_depth(di, K, T_w_i, K, T_w_j)
    zj = sample_bilinear(dj, uv)
    ok = np.isfinite(zj)
    assert ok.mean() > 0.5
    np.testing.assert_allclose(z[ok], zj[ok], rtol=1e-3)
    err = reprojection_depth_error(di, K, T_w_i, dj, K, T_w_j)
    assert np.nanmedian(err) < 2e-3
    # a wrong pose is detected
    err_bad = reprojection_depth_error(di, K, T_w_i, dj, K, make_T(rot_y(0.05), [0.3, 0.0, 0.6]))
    assert np.nanmedian(err_bad) > 0.05


def test_bilinear_sampling_is_exact_on_linear_images_and_nan_outside() -> None:
    uv = pixel_grid((5, 6))
    img = 2 * uv[..., 0] + 3 * uv[..., 1]
    q = np.array([[1.25, 2.5], [4.9, 3.1], [-1.0, 0.0], [np.nan, 1.0]])
    out = sample_bilinear(img, q)
    np.testing.assert_allclose(out[:2], 2 * q[:2, 0] + 3 * q[:2, 1])
    assert np.isnan(out[2:]).all()
