"""Robustness worlds and paths: free space, close-range passes, twin rooms identical, tour/kidnap design."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.sim.cases import (
    CASES,
    DROPOUT_BURSTS,
    dropout_keep,
    ring_laps,
    twin_circle,
    twin_tour,
    view_overlap,
)
from vggt_ros.sim.scene import Scene, render
from vggt_ros.sim.sequence import GroundTruth, intrinsics
from vggt_ros.sim.trajectories import figure_eight, laps_loop, waypoint_path
from vggt_ros.sim.worlds import (
    RING_BLOCK,
    RING_OUTER,
    TWIN_SHIFT,
    corridor_ring,
    pillar_hall,
    twin_room_of,
    twin_rooms,
)

K = intrinsics(80, 60)
HW = (60, 80)


def _gt(scene: Scene, T: np.ndarray) -> GroundTruth:
    return GroundTruth(0, T, K, render(scene, K, T, HW)[1])


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_paths_are_rigid_smooth_and_free(name: str) -> None:
    case = CASES[name]
    P = case.poses()
    R = P[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    assert case.scene().is_free(P[:, :3, 3], margin=0.2).all()
    steps = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
    jumps = np.flatnonzero(steps > (0.3 if name == "fast" else 0.06))  # 1.8 m/s at 30 Hz (fast: 5x)
    if name == "dropouts":  # jumps only where frames are missing, at every burst
        kept = np.flatnonzero(dropout_keep())
        assert (np.diff(kept)[jumps] > 1).all()
        assert {int(kept[j]) + 1 for j in jumps} >= {start for start, _ in DROPOUT_BURSTS}
    else:
        assert jumps.tolist() == ([599] if name == "kidnapped" else [])


@pytest.mark.parametrize("name", ["figure8", "loop3"])
def test_close_range_passes_near_a_pillar_while_walls_stay_far(name: str) -> None:
    case = CASES[name]
    P, scene = case.poses(), case.scene()
    d = scene.box_distance(P[:, :3, 3])
    assert 0.2 <= d.min() <= 1.0
    assert case.close_range is not None and abs(d.min() - case.close_range) < 0.05
    _, depth = render(scene, K, P[int(np.argmin(d))], HW)
    assert depth.min() < 0.8 and np.percentile(depth, 90) > 2.5  # near pillar and far walls in one view


def test_figure_eight_and_three_laps() -> None:
    f = figure_eight(720)
    np.testing.assert_array_equal(f[-1], f[0])
    assert np.ptp(f[:, 2, 3]) > 0.5  # height changes
    L = laps_loop(1800)
    assert len(CASES["loop3"].poses()) >= 1800
    angle = np.unwrap(np.arctan2(L[:, 1, 3] / 2.6, L[:, 0, 3] / 4.2))
    assert abs(angle[-1] - angle[0] - 3 * 2 * np.pi) < 1e-6
    np.testing.assert_array_equal(L[-1], L[0])
    # later laps pass near, not exactly on, the first lap's poses
    lap2 = L[600:1200, :3, 3]
    gap = np.linalg.norm(lap2[:, None] - L[None, :600, :3, 3], axis=2).min(axis=1)
    assert 0.0 < gap.max() < 0.2


def test_twin_rooms_render_identical_images_at_translated_poses() -> None:
    scene = twin_rooms()
    for T in twin_circle(7)[:6]:
        T_b = T.copy()
        T_b[0, 3] += TWIN_SHIFT
        rgb_a, d_a = render(scene, K, T, HW)
        rgb_b, d_b = render(scene, K, T_b, HW)
        assert (rgb_a == rgb_b).all(axis=2).mean() > 0.999
        np.testing.assert_allclose(d_a, d_b, rtol=1e-5)
    # the corridor is not periodic at its ends: the world is not one room repeated everywhere
    T_c = twin_circle(1)[0].copy()
    T_c[:3, 3] = [1.0, -1.1, 1.4]
    T_d = T_c.copy()
    T_d[0, 3] += TWIN_SHIFT
    assert not np.array_equal(render(scene, K, T_c, HW)[1], render(scene, K, T_d, HW)[1])


def test_twin_tour_goes_a_corridor_b_corridor_a_with_the_same_motion_in_b() -> None:
    P = twin_tour()
    rooms = twin_room_of(P[:, :3, 3])
    visits = [int(r) for i, r in enumerate(rooms) if r >= 0 and (i == 0 or rooms[i - 1] != r)]
    assert visits == [0, 1, 0]
    assert (rooms == -1).sum() > 100  # real corridor walks between the rooms
    a = twin_circle(240)
    shifted = P.copy()
    shifted[:, 0, 3] -= TWIN_SHIFT
    b_start = int(np.flatnonzero(np.abs(shifted - a[0]).sum(axis=(1, 2)) < 1e-9)[0])
    b = shifted[b_start: b_start + 240]
    np.testing.assert_allclose(b, a, atol=1e-9)


def test_corridor_ring_is_a_long_loop_whose_corridors_repeat_every_texture_tile() -> None:
    from vggt_ros.sim.trajectories import look_at

    P = ring_laps(2)
    c = P[:, :3, 3]
    lap = np.linalg.norm(np.diff(c[: len(c) // 2 + 1], axis=0), axis=1).sum()
    assert 63.0 < lap < 65.0 and np.allclose(P[0], P[-1])
    # the centre line: 1 m from the block and from the outer walls
    bx0, by0, bx1, by1 = RING_BLOCK
    ox0, oy0, ox1, oy1 = RING_OUTER
    to_block = np.maximum.reduce([bx0 - c[:, 0], c[:, 0] - bx1, by0 - c[:, 1], c[:, 1] - by1])
    to_outer = np.minimum.reduce([c[:, 0] - ox0, ox1 - c[:, 0], c[:, 1] - oy0, oy1 - c[:, 1]])
    assert to_block.min() > 0.9 and to_outer.min() > 0.9
    # the start is out of sight for most of the lap: the view of frame 0 is shared by few frames
    scene = corridor_ring()
    first = _gt(scene, P[0])
    seen = [view_overlap(first, _gt(scene, T)) > 0.1 for T in P[: len(P) // 2: 40]]
    assert np.mean(seen) < 0.4
    # looking at the block from the south corridor, 5.12 m apart (no object in view): the same image
    eye = np.array([-8.0, -5.0, 1.4])
    T_a = look_at(eye, eye + np.array([0.0, 1.0, -0.1]))
    T_b = T_a.copy()
    T_b[0, 3] += TWIN_SHIFT
    rgb_a, _ = render(scene, K, T_a, HW)
    rgb_b, _ = render(scene, K, T_b, HW)
    assert (rgb_a == rgb_b).all(axis=2).mean() > 0.999


def test_standing_start_and_kidnap() -> None:
    s = CASES["standing_start"].poses()
    assert len(s) == 750 and (s[:150] == s[0]).all() and not np.allclose(s[151], s[0])
    k, scene = CASES["kidnapped"].poses(), pillar_hall()
    f = figure_eight(720)
    np.testing.assert_array_equal(k[600], f[180])  # lands on a pose mapped at frame 180
    assert view_overlap(_gt(scene, k[599]), _gt(scene, k[600])) < 0.01  # no shared view across the jump
    assert view_overlap(_gt(scene, k[600]), _gt(scene, k[601])) > 0.5  # 0.35 m from a pillar


def test_waypoint_path_endpoints_speed_and_turns() -> None:
    w = np.array([[0.0, 0.0, 1.0, 0.0], [2.0, 0.0, 1.0, 0.0], [2.0, 2.0, 1.0, 90.0]])
    P = waypoint_path(w, 0.05)
    np.testing.assert_allclose(P[0, :3, 3], w[0, :3])
    np.testing.assert_allclose(P[-1, :3, 3], w[-1, :3])
    steps = np.linalg.norm(np.diff(P[:, :3, 3], axis=0), axis=1)
    assert steps.max() <= 0.05 + 1e-9 and 70 < len(P) < 100
    np.testing.assert_allclose(P[-1, :3, 2], [0.0, 1.0, 0.0], atol=0.1)  # looks +y at the end
    with pytest.raises(ValueError):
        waypoint_path(w[:1], 0.05)
