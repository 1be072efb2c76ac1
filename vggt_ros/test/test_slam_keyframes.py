"""KeyframeManager: bounded storage, active set, covisibility and motion criteria."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.se3 import make_T, rot_y
from vggt_ros.slam.config import KeyframeConfig
from vggt_ros.slam.keyframes import KeyframeManager, image_stride_for, track_parallax_deg
from vggt_ros.types import Frame

H, W = 120, 160
K = np.array([[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]])


def _add(m: KeyframeManager, i: int, T=None, depth_value=2.0):
    rgb = (np.arange(H * W * 3) % 251).astype(np.uint8).reshape(H, W, 3)
    depth = np.full((H, W), depth_value, np.float32)
    depth[:10] = np.nan
    conf = np.full((H, W), 5.0, np.float32)
    return m.add(
        frame_index=i,
        frame=Frame(1000 + i, rgb, K),
        window_id=0,
        T_world_cam=np.eye(4) if T is None else T,
        K=K,
        K_known=True,
        depth=depth,
        conf=conf,
    )


def test_points_cam_are_the_world_points_in_the_camera_frame():
    """points_cam: the same pixels as points_world (also subsampled), in the optical camera frame."""
    m = KeyframeManager(KeyframeConfig(depth_stride=4))
    T = make_T(rot_y(0.3), np.array([0.5, -0.2, 1.0]))
    kf = _add(m, 0, T=T)
    for kw in ({}, {"max_points": 50, "seed": 3}):
        uv_c, X_c, c_c = kf.points_cam(**kw)
        uv_w, X_w, c_w = kf.points_world(**kw)
        assert np.array_equal(uv_c, uv_w) and np.array_equal(c_c, c_w)
        np.testing.assert_allclose(X_c[:, 2], 2.0)  # depth along optical z, not the world's z
        np.testing.assert_allclose(X_c @ T[:3, :3].T + T[:3, 3], X_w, atol=1e-12)
    assert len(kf.points_cam(max_points=50, seed=3)[0]) == 50


def test_storage_is_strided_and_bounded():
    m = KeyframeManager(KeyframeConfig(depth_stride=4, max_image_pixels=40 * 30, max_active=3))
    kf = _add(m, 0)
    assert kf.depth.shape == (30, 40) and kf.image.shape == (30, 40, 3) and kf.image_stride == 4
    assert kf.median_depth == 2.0
    uv, X, c = kf.points_world()
    assert len(uv) == 40 * (30 - 3)  # rows 0..9 are NaN -> stored rows 0, 1, 2 invalid
    np.testing.assert_allclose(X[:, 2], 2.0)
    np.testing.assert_allclose(X[0, :2], (uv[0] - K[:2, 2]) * 2.0 / 100.0)
    f = kf.as_frame()
    assert f.size == (H, W) and f.stamp_ns == 1000 and np.array_equal(f.K, K)
    assert np.array_equal(f.rgb[::4, ::4], kf.image)
    for i in range(1, 6):
        _add(m, i)
    assert [k.keyframe_id for k in m.active(10)] == [5, 4, 3]
    # older keyframes are archived (JPEG image, float16 depth): still verifiable loop targets
    old = m.keyframes[0]
    assert not old.active and old.verifiable and old.image is None and old.depth.dtype == np.float16
    f0 = old.as_frame()
    assert f0.size == (H, W) and np.abs(f0.rgb.astype(int) - f.rgb.astype(int)).mean() < 8
    uv0, X0, _ = old.points_world()
    assert len(uv0) == len(uv) and np.abs(X0 - X).max() < 2e-3 * 2.0
    active_bytes = 30 * 40 * 11  # f32 depth + f32 conf + 3 x u8 image
    assert all(k.nbytes() < 0.75 * active_bytes for k in m.keyframes[:3])  # a noise image: JPEG ~1:2
    # beyond max_archived the oldest archives are dropped for good
    cfg2 = KeyframeConfig(depth_stride=4, max_image_pixels=40 * 30, max_active=2, max_archived=2)
    m2 = KeyframeManager(cfg2)
    for i in range(6):
        _add(m2, i)
    assert [k.verifiable for k in m2.keyframes] == [False, False, True, True, True, True]
    assert image_stride_for((480, 640), 640 * 480) == 1 and image_stride_for((480, 640), 320 * 240) == 2


def test_criteria():
    m = KeyframeManager(KeyframeConfig(min_covisible=0.7, max_motion_rel=0.15))
    kf = _add(m, 0)
    assert m.motion_rel(kf, make_T(np.eye(3), [0.2, 0, 0])) == 0.1
    assert not m.is_keyframe(0.9, 0.1) and m.is_keyframe(0.6, 0.0) and m.is_keyframe(1.0, 0.2)
    # geometric covisibility: same pose sees everything, a 90 deg turn sees nothing
    assert m.covisible_geometric(kf, np.eye(4), K, (H, W)) == 1.0
    assert m.covisible_geometric(kf, make_T(rot_y(np.pi / 2), [0, 0, 0]), K, (H, W)) == 0.0
    tracks = np.array([[10.0, 10], [500, 10], [20, 20], [30, 30]])
    vis = np.array([0.9, 0.9, 0.1, 0.9])
    conf = np.array([0.9, 0.9, 0.9, 0.9])
    valid = np.array([True, True, True, False])
    assert m.covisible_tracks(tracks, vis, conf, valid, (H, W), 0.5, 0.5) == 1 / 3


def test_the_last_anchor_slot_goes_to_the_oldest_keyframe_still_seen_well():
    """Eight keyframes 0.3 m apart along x over a wall 2 m away, the camera at x = 2.25 m: the covisibility
    ranking gives the gauge and the three newest; with long_anchor_rel 0.5 the last slot takes the oldest
    keyframe seen at least half as well as the best (x = 0.6 m: 48 % of its points in view, 0.5 in the
    ranking's tenths, against 86 %, 0.9), not the older ones seen less (x = 0.3, 0.0: 0.4, 0.3)."""
    def ids(rel: float, posed: bool = True) -> list[int]:
        m = KeyframeManager(KeyframeConfig(depth_stride=4, long_anchor_rel=rel))
        for i in range(8):
            _add(m, i, T=make_T(np.eye(3), [0.3 * i, 0, 0]))
        return [k.keyframe_id for k in m.anchors(4, 0, make_T(np.eye(3), [2.25, 0, 0]) if posed else None)]

    assert ids(0.0) == [7, 6, 5, 4]  # by covisibility alone
    assert ids(0.5) == [7, 6, 5, 2]
    assert ids(0.7) == [7, 6, 5, 4]  # bar 0.63: x = 1.2 m (0.7) is the oldest seen that well
    assert ids(0.5, posed=False) == [7, 6, 5, 4]  # without a pose: the newest
    assert KeyframeConfig().long_anchor_rel == 0.5


def test_a_motion_keyframe_needs_the_image_to_have_moved():
    """The pose says the camera moved 20 % of the depth; a keyframe only when the tracks moved too
    (min_motion_parallax_deg): a camera standing at close range otherwise keyframes its own pose noise."""
    m = KeyframeManager(KeyframeConfig(min_covisible=0.7, max_motion_rel=0.15, min_motion_parallax_deg=2.0))
    assert m.is_keyframe(0.9, 0.2)  # parallax not measured: the pose decides
    assert not m.is_keyframe(0.9, 0.2, parallax_deg=0.5) and m.is_keyframe(0.9, 0.2, parallax_deg=3.0)
    assert m.is_keyframe(0.5, 0.0, 10, parallax_deg=0.1)  # the view changed: covisibility still decides
    rng = np.random.default_rng(0)
    uv = rng.uniform(0, 500, (100, 2))
    seen = np.ones(100, bool)
    moved = uv + np.array([6.0, 8.0])  # 10 px at a 500 px focal length
    assert track_parallax_deg(moved, uv, seen, 500.0) == pytest.approx(np.degrees(10.0 / 500.0))
    moved[:40] += 300.0  # a minority of wild tracks does not move the median
    assert track_parallax_deg(moved, uv, seen, 500.0) == pytest.approx(np.degrees(10.0 / 500.0))
    seen[11:] = False
    assert np.isnan(track_parallax_deg(moved, uv, seen, 500.0))  # 11 tracks: too few


def test_fuse_depth_averages_and_skips_outliers():
    m = KeyframeManager(KeyframeConfig(depth_stride=4))
    kf = _add(m, 0)  # depth 2.0, rows < 10 NaN
    conf = np.full((H, W), 7.0, np.float32)
    d1 = np.full((H, W), 2.2, np.float32)
    d1[:, :80] = 5.0  # disagrees by 150 %: an outlier, skipped
    n = kf.fuse_depth(d1, conf)
    # right half of the stored 40x30 grid fused, plus the 3 invalid rows of the left half filled
    assert n == 20 * 30 + 3 * 20
    assert np.allclose(kf.depth[:3, :20], 5.0)
    assert np.allclose(kf.depth[3:, 20:], 2.1) and np.allclose(kf.depth[:, :20][3:], 2.0)
    assert np.allclose(kf.depth[:3, 20:], 2.2)  # previously invalid pixels take the new depth
    kf.fuse_depth(np.full((H, W), 2.4, np.float32), conf)
    assert np.allclose(kf.depth[3:, 20:], (2.0 + 2.2 + 2.4) / 3)
    assert kf.conf.max() == 7.0
    kf.release()
    assert kf.fuse_depth(d1, conf) == 0 and kf.colors_at(np.zeros((2, 2))).shape == (2, 3)
    # min_conf (what the pipeline passes) fuses what a depth pre-masked by confidence fuses
    low = conf.copy()
    low[:, 120:] = 1.0  # low confidence: stored columns 30.. are not fused
    masked, gated = _add(m, 1), _add(m, 2)
    n_low = masked.fuse_depth(np.where(low >= 2.0, d1, np.nan), low)
    assert gated.fuse_depth(d1, low, min_conf=2.0) == n_low == n - 10 * 30  # 10 stored columns x 30 rows
    np.testing.assert_array_equal(masked.depth, gated.depth)
    np.testing.assert_array_equal(masked.conf, gated.conf)


def test_measured_depth_replaces_agreeing_pixels_and_fusion_leaves_them():
    m = KeyframeManager(KeyframeConfig(depth_stride=4))
    kf = _add(m, 0)  # depth 2.0, rows < 10 NaN (stored rows 0..2)
    rng = np.random.default_rng(0)
    measured = (2.0 * (1.0 + np.clip(rng.normal(0.0, 0.01, (H, W)), -0.025, 0.025))).astype(np.float32)
    measured[:, :8] = 6.0  # a sensor outlier band: stored columns 0, 1
    measured[40:60] = np.nan  # a hole: stored rows 10..14
    n = kf.set_measured_depth(measured)
    took = kf.depth_measured
    assert took is not None and n == int(took.sum()) == (30 - 3 - 5) * (40 - 2)
    assert not took[:, :2].any() and not took[10:15].any() and not took[:3].any()
    np.testing.assert_array_equal(kf.depth[took], measured[::4, ::4][took])
    assert np.all(np.isnan(kf.depth[:3])) and np.all(kf.depth[3:, :2] == 2.0)  # no fill, outliers kept out
    before = kf.depth.copy()
    kf.fuse_depth(np.full((H, W), 2.2, np.float32), np.full((H, W), 7.0, np.float32))
    np.testing.assert_array_equal(kf.depth[took], before[took])  # a re-prediction never dilutes a measurement
    assert np.allclose(kf.depth[3:, :2], 2.1)  # unmeasured pixels still average
    assert kf.set_measured_depth(np.full((H, W), np.nan, np.float32)) == 0  # nothing usable: unchanged
    kf.archive()
    assert kf.depth_measured is None
