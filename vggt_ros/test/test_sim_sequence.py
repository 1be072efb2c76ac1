"""SyntheticSequence: lazy rendering, 30 Hz stamps, ground truth lookup."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.sim.sequence import DEFAULT_T0_NS, GroundTruth, SyntheticSequence, intrinsics, make_sequence
from vggt_ros.types import Frame


def test_stamps_size_intrinsics() -> None:
    seq = make_sequence("loop", 100)
    assert len(seq) == 100
    assert seq.stamps_ns[0] == DEFAULT_T0_NS > 0
    np.testing.assert_allclose(np.diff(seq.stamps_ns), 1e9 / 30, atol=1)
    assert seq.stamps_ns.dtype == np.int64
    f = seq[5]
    assert isinstance(f, Frame)
    assert f.rgb.shape == (240, 320, 3) and f.rgb.dtype == np.uint8 and f.size == (240, 320)
    assert f.stamp_ns == int(seq.stamps_ns[5])
    hfov = 2 * np.degrees(np.arctan(160.0 / f.K[0, 0]))
    assert 60 <= hfov <= 70
    np.testing.assert_array_equal(f.K, intrinsics())
    assert seq[-1].stamp_ns == int(seq.stamps_ns[99])
    with pytest.raises(IndexError):
        seq[100]


def test_ground_truth_by_stamp() -> None:
    seq = make_sequence("forward", 20, t0_ns=123)
    gt = seq.ground_truth(int(seq.stamps_ns[7]))
    assert isinstance(gt, GroundTruth)
    assert gt.stamp_ns == int(seq.stamps_ns[7])
    np.testing.assert_array_equal(gt.T_world_cam, seq.poses[7])
    assert gt.depth.shape == (240, 320) and gt.depth.dtype == np.float32 and np.all(gt.depth > 0)
    with pytest.raises(KeyError):
        seq.ground_truth(int(seq.stamps_ns[7]) + 1)
    # the same frame renders identically twice (also after leaving the cache)
    a = seq[3].rgb.copy()
    for i in range(seq._cache_size + 2):
        seq[i % 20]
    np.testing.assert_array_equal(seq[3].rgb, a)


def test_long_sequence_is_lazy() -> None:
    seq = make_sequence("loop", 5000, width=64, height=48)
    assert len(seq._cache) == 0
    for i in range(0, 5000, 50):
        seq[i]
    assert len(seq._cache) <= seq._cache_size


def test_scene_seed_changes_texture_not_geometry() -> None:
    a = make_sequence("still", 1, seed=0)
    b = make_sequence("still", 1, seed=1)
    assert np.mean(a[0].rgb != b[0].rgb) > 0.5
    np.testing.assert_array_equal(a.ground_truth_at(0).depth, b.ground_truth_at(0).depth)


def test_a_standing_camera_has_sensor_noise_and_a_frozen_one_repeats_its_bytes() -> None:
    """Two exposures of a standing camera differ by a grey level here and there (so a repeated buffer is a
    stalled driver, slam.validation), not enough to read as motion (the standstill hold still holds);
    a frozen cover repeats the shown frame's bytes, noise and all."""
    from vggt_ros.geometry.image import image_change, thumbnail
    from vggt_ros.sim.sequence import Cover

    still = make_sequence("still", 4, width=160, height=120)
    a, b = still[0].rgb.astype(np.int16), still[1].rgb.astype(np.int16)
    assert 0.3 < np.mean(a != b) < 0.9 and np.abs(a - b).max() <= 2
    assert image_change(thumbnail(still[0].rgb), thumbnail(still[1].rgb)) < 0.3  # the hold's: 1
    clean = SyntheticSequence(still.scene, still.poses, still.K, (160, 120), sensor_noise=0)
    np.testing.assert_array_equal(clean[0].rgb, clean[1].rgb)
    assert np.abs(clean[0].rgb.astype(np.int16) - a).max() == 1
    frozen = SyntheticSequence(still.scene, make_sequence("loop", 6).poses, intrinsics(160, 120), (160, 120),
                               covers=(Cover(2, 3, "frozen"),))
    assert all(np.array_equal(frozen[i].rgb, frozen[1].rgb) for i in (2, 3, 4))
    assert not np.array_equal(frozen[5].rgb, frozen[1].rgb)
    with pytest.raises(ValueError, match="sensor_noise"):
        SyntheticSequence(still.scene, still.poses, still.K, (160, 120), sensor_noise=-1)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_sequence("spiral", 10)
    with pytest.raises(ValueError):
        SyntheticSequence(make_sequence("still", 1).scene, np.eye(4), intrinsics())
    poses = np.repeat(np.eye(4)[None], 3, axis=0)
    poses[:, :3, 3] = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.5], [1.0, 1.0, 1.0]]  # frame 1 inside the pillar
    with pytest.raises(ValueError, match="camera 1"):
        SyntheticSequence(make_sequence("still", 1).scene, poses, intrinsics())
    seq = SyntheticSequence(make_sequence("still", 1).scene, poses[[0]], intrinsics(64, 48), (64, 48))
    assert seq[0].rgb.shape == (48, 64, 3) and seq.hw == (48, 64)
