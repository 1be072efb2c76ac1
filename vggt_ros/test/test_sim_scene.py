"""Rendering: analytic depths, texture, speed, photo- and depth-consistency between views."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from vggt_ros.geometry.depth import (
    project_points,
    reprojection_depth_error,
    sample_nearest,
    unproject_depth,
)
from vggt_ros.geometry.se3 import invert_T, make_T
from vggt_ros.sim.scene import Scene, render
from vggt_ros.sim.sequence import intrinsics
from vggt_ros.sim.trajectories import forward, look_at, loop, rotation

K = intrinsics(320, 240, 65.0)
HW = (240, 320)


@pytest.fixture(scope="module")
def scene() -> Scene:
    return Scene()


def test_depth_of_a_fronto_parallel_wall_and_the_floor(scene: Scene) -> None:
    # looking +x at the wall x = 4 from x = 0, above every box: every pixel that hits that wall has depth 4
    T = look_at(np.array([0.0, -1.0, 2.0]), np.array([1.0, -1.0, 2.0]))
    _, depth = render(scene, K, T, HW)
    assert depth.dtype == np.float32 and depth.shape == HW
    assert abs(depth[120, 160] - 4.0) < 1e-5
    assert np.isclose(depth, 4.0, atol=1e-4).mean() > 0.3
    assert np.all(depth <= 4.0 + 1e-4)
    # looking straight down from z = 1.5 (optical z = -world z): floor everywhere at depth 1.5
    R = np.column_stack([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    _, depth = render(scene, K, make_T(R, [-1.5, 0.5, 1.5]), HW)
    np.testing.assert_allclose(depth, 1.5, atol=1e-5)


def test_box_face_depth_and_occlusion(scene: Scene) -> None:
    # the central pillar (x in [-0.4, 0.4], top z = 1) seen head-on from x = -3 at z = 0.5
    T = look_at(np.array([-3.0, 0.0, 0.5]), np.array([0.0, 0.0, 0.5]))
    _, depth = render(scene, K, T, HW)
    assert abs(depth[120, 160] - 2.6) < 1e-5  # front face at x = -0.4
    assert depth[120, 5] > 4.0  # a wall visible beside it


def test_camera_inside_a_box_or_outside_the_room_is_refused(scene: Scene) -> None:
    with pytest.raises(ValueError):
        render(scene, K, make_T(np.eye(3), [0.0, 0.0, 0.5]), HW)
    with pytest.raises(ValueError):
        render(scene, K, make_T(np.eye(3), [5.0, 0.0, 1.0]), HW)
    assert not scene.is_free(np.array([[0.0, 0.0, 0.5]]))[0]
    assert scene.is_free(np.array([[0.0, 0.0, 1.5]]))[0]


def test_images_have_texture_everywhere(scene: Scene) -> None:
    for T in (loop(8)[2], forward(8)[4], rotation(8)[6]):
        rgb, _ = render(scene, K, T, HW)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        corners = cv2.goodFeaturesToTrack(gray, maxCorners=500, qualityLevel=0.01, minDistance=5)
        assert corners is not None and len(corners) > 150
        # corners spread over the image: every quadrant has some
        c = corners.reshape(-1, 2)
        for qx in (c[:, 0] < 160, c[:, 0] >= 160):
            for qy in (c[:, 1] < 120, c[:, 1] >= 120):
                assert (qx & qy).sum() > 10
        assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 1000


def test_render_speed_320x240(scene: Scene) -> None:
    T = loop(10)[3]
    render(scene, K, T, HW)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        render(scene, K, T, HW)
        times.append(time.perf_counter() - t0)
    # target well under 50 ms on one core (~20 ms measured); loose bound for a loaded CI machine
    assert np.median(times) < 0.1


@pytest.mark.parametrize(
    "traj,i,j", [("loop", 0, 6), ("loop", 10, 13), ("forward", 0, 8), ("rotation", 2, 9)]
)
def test_reprojected_depth_matches_other_view(scene: Scene, traj: str, i: int, j: int) -> None:
    poses = {"loop": loop(40), "forward": forward(40), "rotation": rotation(40)}[traj]
    rgb_i, d_i = render(scene, K, poses[i], HW)
    rgb_j, d_j = render(scene, K, poses[j], HW)
    err = reprojection_depth_error(d_i, K, poses[i], d_j, K, poses[j])
    ok = np.isfinite(err)
    assert ok.mean() > 0.3  # enough overlap to mean something
    assert np.median(err[ok]) < 0.01
    assert np.mean(err[ok] < 0.02) > 0.9
    # a wrong pose does not pass the same test
    bad = poses[j] @ make_T(np.eye(3), [0.0, 0.0, 0.2])  # 20 cm along the optical axis
    err_bad = reprojection_depth_error(d_i, K, poses[i], d_j, K, bad)
    assert np.nanmedian(err_bad) > 0.03
    # photo-consistency: a surface point has the same colour in both views (Lambertian shading)
    pts = unproject_depth(d_i, K, poses[i]).reshape(-1, 3)[ok.reshape(-1)]
    uv, _ = project_points(K, invert_T(poses[j]), pts)
    col_j = sample_nearest(rgb_j, uv)
    col_i = rgb_i.reshape(-1, 3)[ok.reshape(-1)].astype(np.float64)
    good = np.isfinite(col_j).all(1)
    assert np.median(np.abs(col_j[good] - col_i[good]).max(1)) < 25
