"""GlobalMap: voxel fusion, pose corrections move points, memory cap, atomic save/load."""

from __future__ import annotations

import numpy as np
import pytest
import vggt_ros.io.map_store as ms
from vggt_ros.geometry.se3 import make_T, rot_z
from vggt_ros.io.map_store import load_map, read_saved, save_map
from vggt_ros.slam.global_map import GlobalMap, MapSnapshot, voxel_fuse

K = np.array([[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]])


def _cloud(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pts = rng.uniform([-1, -1, 1], [1, 1, 3], (n, 3)).astype(np.float32)
    return pts, rng.integers(0, 256, (n, 3)).astype(np.uint8), rng.uniform(1, 10, n).astype(np.float32)


def _map(n_kf: int = 3, **kw) -> GlobalMap:
    m = GlobalMap(**kw)
    for i in range(n_kf):
        p, c, w = _cloud(500, i)
        m.add_keyframe(i, 1000 + i, 10 * i, make_T(np.eye(3), [i, 0, 0]), K, (120, 160), p, c, w)
    return m


def test_voxel_fusion_weights_by_confidence():
    raw = MapSnapshot(
        np.array([[0.01, 0.01, 0.01], [0.03, 0.01, 0.01], [0.5, 0.5, 0.5]], np.float32),
        np.array([[0, 0, 0], [200, 100, 50], [1, 2, 3]], np.uint8),
        np.array([1.0, 3.0, 2.0], np.float32),
    )
    f = voxel_fuse(raw, 0.1)
    assert len(f) == 2
    i = int(np.argmin(f.points[:, 0]))
    np.testing.assert_allclose(f.points[i], [0.025, 0.01, 0.01], atol=1e-6)
    # confidence: confidence-weighted mean, (1*1 + 3*3) / (1 + 3)
    assert f.colors[i].tolist() == [150, 75, 38] and f.confidence[i] == 2.5


def test_pose_correction_moves_points_and_snapshot_is_cached():
    m = _map(2, voxel_size=0.05)
    s1 = m.snapshot()
    assert m.snapshot() is s1
    before = m.points_map().points[500:].copy()
    m.update_pose(1, make_T(rot_z(0.1), [1, 2, 0]))
    after = m.points_map().points[500:]
    p, _, _ = _cloud(500, 1)
    np.testing.assert_allclose(after, p @ rot_z(0.1).T.astype(np.float32) + [1, 2, 0], atol=1e-5)
    assert not np.allclose(before, after) and m.snapshot() is not s1
    with pytest.raises(ValueError):
        m.add_keyframe(1, 0, 0, np.eye(4), K, (120, 160), *_cloud(3))


def test_memory_stays_under_cap_for_many_keyframes():
    cap = 400_000
    m = GlobalMap(voxel_size=0.02, max_bytes=cap, points_per_keyframe=5000)
    for i in range(300):
        p, c, w = _cloud(8000, i)
        m.add_keyframe(i, i, i, make_T(np.eye(3), [0.05 * i, 0, 0]), K, (120, 160), p, c, w)
        if i % 50 == 0:
            m.snapshot()
    m.snapshot()
    assert len(m) == 300 and m.peak_bytes <= cap and m.nbytes() <= cap and m.thinning_events > 0
    # thinning keeps the highest-confidence points of each keyframe
    kf = m.keyframes[0]
    _, _, w = _cloud(8000, 0)
    assert kf.confidence.min() >= np.sort(w)[-len(kf.confidence)] - 1e-6


def test_save_load_round_trip(tmp_path):
    m = _map(3, voxel_size=0.05)
    stamps = np.array([1000, 1001, 1002, 1003])
    traj = np.tile(np.eye(4), (4, 1, 1))
    traj[:, 0, 3] = np.arange(4)
    save_map(m, tmp_path / "map", trajectory=(stamps, traj))
    names = sorted(p.name for p in (tmp_path / "map").iterdir())
    assert names == ["keyframe_points.npz", "keyframes.json", "keyframes.tum", "map.ply", "trajectory.tum"]
    m2 = load_map(tmp_path / "map")
    assert sorted(m2.keyframes) == [0, 1, 2] and m2.voxel_size == 0.05
    for i in range(3):
        np.testing.assert_array_equal(m2.keyframes[i].points_cam, m.keyframes[i].points_cam)
        np.testing.assert_array_equal(m2.keyframes[i].T_map_cam, m.keyframes[i].T_map_cam)
        np.testing.assert_array_equal(m2.keyframes[i].K, K)
    np.testing.assert_array_equal(m2.snapshot().points, m.snapshot().points)
    saved = read_saved(tmp_path / "map")
    np.testing.assert_array_equal(saved["points"], m.snapshot().points)
    assert saved["trajectory_tum"][0].tolist() == stamps.tolist()
    assert saved["keyframes_tum"][0].tolist() == [1000, 1001, 1002]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map"]  # no temp dirs left


def test_interrupted_save_leaves_previous_map(tmp_path, monkeypatch):
    old = _map(2, voxel_size=0.05)
    save_map(old, tmp_path / "map")
    before = {p.name: p.read_bytes() for p in (tmp_path / "map").iterdir()}
    new = _map(4, voxel_size=0.05)
    calls = {"n": 0}
    real = ms.write_tum

    def failing_write_tum(*a, **k):  # fail after map.ply and keyframes.json are written
        calls["n"] += 1
        raise OSError("disk full (injected)")

    monkeypatch.setattr(ms, "write_tum", failing_write_tum)
    with pytest.raises(OSError, match="injected"):
        save_map(new, tmp_path / "map")
    assert calls["n"] == 1
    after = {p.name: p.read_bytes() for p in (tmp_path / "map").iterdir()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map"]
    assert len(load_map(tmp_path / "map")) == 2
    monkeypatch.setattr(ms, "write_tum", real)
    save_map(new, tmp_path / "map")
    assert len(load_map(tmp_path / "map")) == 4


def test_load_recovers_when_stopped_between_renames(tmp_path):
    save_map(_map(2, voxel_size=0.05), tmp_path / "map")
    (tmp_path / "map").rename(tmp_path / ".map.old-abc")  # a crash after the first rename
    assert len(load_map(tmp_path / "map")) == 2
    with pytest.raises(FileNotFoundError):
        load_map(tmp_path / "nothing")


def test_replace_points_updates_the_cloud():
    m = _map(2, voxel_size=0.05)
    s0 = m.snapshot()
    p, c, w = _cloud(100, 7)
    p[0] = np.nan
    m.replace_points(1, p, c, w)
    assert len(m.keyframes[1].points_cam) == 99 and m.snapshot() is not s0
    np.testing.assert_array_equal(m.keyframes[1].points_cam, p[1:])


def _sorted_snapshot(s: MapSnapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    o = np.lexsort(s.points.T)
    return s.points[o], s.colors[o], s.confidence[o]


def test_incremental_grid_matches_a_fresh_fusion_after_every_kind_of_change():
    """The grid kept up to date through new keyframes, refined points, pose corrections and cap
    thinning holds the same voxels as fusing the stored points from scratch."""
    m = GlobalMap(voxel_size=0.05, max_bytes=2_000_000, points_per_keyframe=3000)
    for i in range(4):
        m.add_keyframe(i, i, i, make_T(np.eye(3), [0.1 * i, 0, 0]), K, (120, 160), *_cloud(3000, i))
    m.snapshot()  # the grid exists from here on
    for i in range(4, 40):
        m.add_keyframe(i, i, i, make_T(rot_z(0.02 * i), [0.1 * i, 0, 0]), K, (120, 160), *_cloud(3000, i))
        if i % 5 == 0:
            m.replace_points(i - 2, *_cloud(2500, 100 + i))
            m.update_pose(i - 3, make_T(rot_z(0.3), [0.1 * i, 0.5, 0]), scale_ratio=1.1)
    assert m.thinning_events > 0 and m.nbytes() <= m.max_bytes
    live = m.snapshot()
    fresh = voxel_fuse(m.points_map(), 0.05)
    assert len(live) == len(fresh) > 1000
    a, b = _sorted_snapshot(live), _sorted_snapshot(fresh)
    np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-5)
    assert np.abs(a[1].astype(int) - b[1]).max() <= 1
    np.testing.assert_allclose(a[2], b[2], rtol=1e-4)
    # fresh=True rebuilds canonically: bit-identical to a rebuild of the same keyframes
    np.testing.assert_array_equal(m.snapshot(fresh=True).points, m.snapshot(fresh=True).points)


def _map_counting_grid_points(monkeypatch) -> tuple[GlobalMap, list[int]]:
    """A 20-keyframe map whose grid exists; every later grid update appends its point count to the list."""
    from vggt_ros.slam.voxel_grid import VoxelGrid

    m = _map(20, voxel_size=0.05)
    m.snapshot()
    seen: list[int] = []
    real = VoxelGrid.add
    monkeypatch.setattr(
        VoxelGrid, "add", lambda self, p, *a, **k: (seen.append(len(p)), real(self, p, *a, **k))
    )
    return m, seen


def test_a_new_keyframe_updates_the_grid_with_its_own_points_only(monkeypatch):
    m, seen = _map_counting_grid_points(monkeypatch)
    m.add_keyframe(99, 0, 0, make_T(np.eye(3), [5, 0, 0]), K, (120, 160), *_cloud(500, 99))
    s = m.snapshot()
    assert seen == [500] and len(s) > len(_map(20, voxel_size=0.05).snapshot())


def test_changes_between_snapshots_reach_the_grid_in_one_update(monkeypatch):
    """An anchor refined in every window costs the grid one removal + one addition per snapshot."""
    m, seen = _map_counting_grid_points(monkeypatch)
    for r in range(3):
        m.replace_points(19, *_cloud(400, 50 + r))
    m.update_pose(18, make_T(rot_z(0.2), [0, 1, 0]))
    m.snapshot()
    assert seen == [500 + 400 + 500 + 500]  # kf 18 out and in, kf 19's original out, its last cloud in


def test_removing_every_point_leaves_an_empty_grid():
    from vggt_ros.slam.voxel_grid import VoxelGrid

    g = VoxelGrid(0.05)
    clouds = [_cloud(2000, i) for i in range(5)]
    for c in clouds:
        g.add(*c)
    for c in clouds[::-1]:
        g.add(*c, sign=-1)
    p, col, conf = g.fused()
    assert g.num_voxels == 0 and len(p) == len(col) == len(conf) == 0
    g.add(*clouds[0])
    np.testing.assert_array_equal(
        np.sort(g.fused()[0], axis=0), np.sort(voxel_fuse(MapSnapshot(*clouds[0]), 0.05).points, axis=0)
    )


def test_voxel_sums_follow_the_input_order():
    """Many points in one voxel: the grid's sums are the plain input-order sums (bincount), the same on
    any machine whatever order the key sort leaves equal keys in (a pairwise sum would differ)."""
    from vggt_ros.slam.voxel_grid import VoxelGrid

    rng = np.random.default_rng(7)
    n = 300
    pts = (0.01 + 0.03 * rng.random((n, 3))).astype(np.float32)  # one 0.05 voxel
    col = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    conf = (0.5 + 10 * rng.random(n)).astype(np.float32)
    g = VoxelGrid(0.05)
    g.add(pts, col, conf)
    w_sum, wx_sum = 0.0, 0.0
    for w, x in zip(conf.astype(np.float64), pts[:, 0].astype(np.float64)):
        w_sum += w
        wx_sum += w * x
    assert g.num_voxels == 1
    assert g._sums[0, 0] == w_sum and g._sums[0, 1] == wx_sum  # exact: the same additions, in order
