"""SimulatedPredictor: gauge, scale normalisation, documented noise statistics, visibility."""

from __future__ import annotations

import numpy as np
import pytest
from vggt_ros.geometry.depth import (
    pixel_grid,
    project_points,
    sample_nearest,
    unproject_depth,
    unproject_pixels,
)
from vggt_ros.geometry.se3 import invert_T, rotation_angle
from vggt_ros.sim.scene import Scene
from vggt_ros.sim.sequence import SyntheticSequence, intrinsics, make_sequence
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor, depth_edges
from vggt_ros.sim.trajectories import look_at
from vggt_ros.types import Predictor


@pytest.fixture(scope="module")
def seq() -> SyntheticSequence:
    s = make_sequence("loop", 240)
    s._cache_size = 64
    return s


def _queries(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform([0, 0], [319, 239], (n, 2)).astype(np.float32)


def _gt_rel(seq: SyntheticSequence, idx: list[int]) -> np.ndarray:
    """GT T_cam_win in metres (window = first camera)."""
    T0 = seq.poses[idx[0]]
    return np.stack([invert_T(seq.poses[i]) @ T0 for i in idx])


def test_protocol_shapes_and_gauge(seq: SyntheticSequence) -> None:
    p = SimulatedPredictor(seq.ground_truth)
    assert isinstance(p, Predictor) and p.name == "simulated"
    idx = list(range(0, 48, 6))
    q = _queries(50)
    out = p.predict([seq[i] for i in idx], q, depth_for=[6, 7])
    S = len(idx)
    assert out.T_cam_win.shape == (S, 4, 4) and out.K.shape == (S, 3, 3)
    np.testing.assert_array_equal(out.T_cam_win[0], np.eye(4))
    assert sorted(out.depth) == [6, 7] and sorted(out.depth_conf) == [6, 7]
    assert out.depth[6].shape == (240, 320) and out.depth[6].dtype == np.float32
    assert out.depth_conf[6].dtype == np.float32 and out.depth_conf[6].min() >= 1.0
    assert out.tracks.shape == (S, 50, 2) and out.vis.shape == (S, 50) and out.conf.shape == (S, 50)
    assert out.tracks.dtype == np.float32
    np.testing.assert_array_equal(out.tracks[0], q)
    assert np.all((out.vis >= 0) & (out.vis <= 1)) and np.all((out.conf >= 0) & (out.conf <= 1))
    np.testing.assert_allclose(out.K[:, 0, 2], 160.0)
    np.testing.assert_allclose(out.K[:, 1, 2], 120.0)
    # rigid poses
    R = out.T_cam_win[:, :3, :3]
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    # no queries is fine
    out0 = p.predict([seq[i] for i in idx[:2]], np.zeros((0, 2), np.float32), depth_for=[])
    assert out0.tracks.shape == (2, 0, 2) and out0.depth == {}


def test_zero_noise_is_ground_truth_in_normalised_units(seq: SyntheticSequence) -> None:
    idx = [20, 24, 28, 32, 36]
    p = SimulatedPredictor(seq.ground_truth, noise=SimNoise.zero())
    out = p.predict([seq[i] for i in idx], _queries(100), depth_for=range(5))
    gt = _gt_rel(seq, idx)
    scale = out.timings["scale_m_to_win"]
    # rotations exact, translations = metric * scale
    np.testing.assert_allclose(out.T_cam_win[:, :3, :3], gt[:, :3, :3], atol=1e-9)
    np.testing.assert_allclose(out.T_cam_win[:, :3, 3], gt[:, :3, 3] * scale, atol=1e-9)
    np.testing.assert_allclose(out.K, np.broadcast_to(intrinsics(), (5, 3, 3)))
    # VGGT normalisation: mean distance of all frames' points from the first camera is 1 (full resolution)
    T_win_cam = invert_T(out.T_cam_win)
    pts = np.concatenate(
        [unproject_depth(out.depth[s], out.K[s], T_win_cam[s]).reshape(-1, 3) for s in range(5)]
    )
    assert abs(np.linalg.norm(pts, axis=1).mean() - 1.0) < 1e-5
    for s, i in enumerate(idx):
        np.testing.assert_allclose(out.depth[s], seq.ground_truth_at(i).depth * scale, rtol=1e-6)
    # tracks: exact reprojections where visible
    vis = out.vis > 0.5
    q = _queries(100)
    d0 = sample_nearest(seq.ground_truth_at(idx[0]).depth, q)
    pw = unproject_pixels(q, d0, intrinsics(), seq.poses[idx[0]])
    for s in range(1, 5):
        uv, _ = project_points(intrinsics(), invert_T(seq.poses[idx[s]]), pw)
        np.testing.assert_allclose(out.tracks[s][vis[s]], uv[vis[s]], atol=1e-3)
    assert vis[1:].mean() > 0.5


def test_deterministic_and_independent_between_windows(seq: SyntheticSequence) -> None:
    p = SimulatedPredictor(seq.ground_truth, seed=3)
    w1 = [seq[i] for i in (0, 5, 10, 15)]
    w2 = [seq[i] for i in (5, 10, 15, 20)]  # frames 5..15 seen again in another window
    a = p.predict(w1, _queries(30), depth_for=[3])
    b = p.predict(w1, _queries(30), depth_for=[3])
    np.testing.assert_array_equal(a.T_cam_win, b.T_cam_win)
    np.testing.assert_array_equal(a.depth[3], b.depth[3])
    np.testing.assert_array_equal(a.tracks, b.tracks)
    c = p.predict(w2, _queries(30), depth_for=[2])
    # frame 15: a.depth[3] and c.depth[2] share ground truth but not noise
    ra = a.depth[3] / a.timings["scale_m_to_win"]
    rc = c.depth[2] / c.timings["scale_m_to_win"]
    gt = seq.ground_truth_at(15).depth
    ea, ec = ra / gt - 1, rc / gt - 1
    assert np.abs(ea - ec).mean() > 0.01
    assert abs(np.corrcoef(ea.ravel(), ec.ravel())[0, 1]) < 0.2
    other_seed = SimulatedPredictor(seq.ground_truth, seed=4).predict(w1, _queries(30), depth_for=[3])
    assert not np.array_equal(other_seed.depth[3], a.depth[3])


def test_pose_and_focal_noise_statistics(seq: SyntheticSequence) -> None:
    p = SimulatedPredictor(seq.ground_truth)
    rot, trans, focal = [], [], []
    for start in range(0, 160, 4):  # 40 windows over 47 distinct frames (stay in the render cache)
        idx = [start + 4 * k for k in range(8)]
        out = p.predict([seq[i] for i in idx], np.zeros((0, 2)), depth_for=[])
        gt = _gt_rel(seq, idx)
        sc = out.timings["scale_m_to_win"]
        mean_d0 = float(np.mean(seq.ground_truth_at(idx[0]).depth)) * sc  # frame 0's mean depth, window units
        est = invert_T(out.T_cam_win)
        ref = invert_T(gt)
        ref[:, :3, 3] *= sc
        rot.extend(np.degrees(rotation_angle(np.swapaxes(ref[1:, :3, :3], 1, 2) @ est[1:, :3, :3])))
        trans.extend(np.linalg.norm(est[1:, :3, 3] - ref[1:, :3, 3], axis=1) / mean_d0)
        focal.extend(out.K[:, 0, 0] / intrinsics()[0, 0] - 1)
        K0 = intrinsics()
        np.testing.assert_allclose(out.K[:, 0, 0] / K0[0, 0], out.K[:, 1, 1] / K0[1, 1], rtol=1e-12)
    rot, trans, focal = np.array(rot), np.array(trans), np.array(focal)
    assert len(rot) == 280
    rms_rot = np.sqrt(np.mean(rot**2))
    rms_trans = np.sqrt(np.mean(trans**2))
    assert 0.43 < rms_rot < 0.57, rms_rot  # documented 0.5 deg RMS
    assert 0.0085 < rms_trans < 0.0115, rms_trans  # 1% of mean depth of frame 0
    assert 0.016 < np.std(focal) < 0.024 and abs(np.mean(focal)) < 0.005


def test_depth_noise_statistics(seq: SyntheticSequence) -> None:
    p = SimulatedPredictor(seq.ground_truth)
    idx = [40, 44, 48, 52]
    out = p.predict([seq[i] for i in idx], np.zeros((0, 2)), depth_for=[0, 1, 2, 3])
    sc = out.timings["scale_m_to_win"]
    outlier_fracs, noise_std, bias_max = [], [], []
    for s, i in enumerate(idx):
        r = out.depth[s] / (seq.ground_truth_at(i).depth * sc)
        gross = (r > 1.2) | (r < 1 / 1.2)
        outlier_fracs.append(gross.mean())
        # smooth bias: median over 15x15 blocks of the ratio; noise: ratio / local bias
        H, W = r.shape
        blocks = r[: H // 15 * 15, : W // 15 * 15].reshape(H // 15, 15, W // 15, 15)
        med = np.median(blocks, axis=(1, 3))
        bias_max.append(np.abs(med - 1).max())
        hp = blocks / med[:, None, :, None]
        ok = ~gross[: H // 15 * 15, : W // 15 * 15].reshape(blocks.shape)
        noise_std.append(np.std(hp[ok]))
    assert all(0.015 < f < 0.025 for f in outlier_fracs), outlier_fracs  # 2% outlier pixels
    assert all(0.018 < s < 0.022 for s in noise_std), noise_std  # 2% multiplicative noise
    assert all(0.01 < b < 0.035 for b in bias_max), bias_max  # smooth bias up to 3%


def test_depth_conf_drops_at_edges_and_far(seq: SyntheticSequence) -> None:
    p = SimulatedPredictor(seq.ground_truth)
    out = p.predict([seq[i] for i in (60, 64)], np.zeros((0, 2)), depth_for=[1])
    gt = seq.ground_truth_at(64).depth
    conf = out.depth_conf[1]
    edges = depth_edges(gt)
    assert 0.005 < edges.mean() < 0.2
    assert np.median(conf[edges]) < 0.3 * np.median(conf[~edges])
    near = (gt < np.percentile(gt, 20)) & ~edges
    far = (gt > np.percentile(gt, 80)) & ~edges
    assert np.median(conf[far]) < 0.7 * np.median(conf[near])


def test_track_noise_and_outliers(seq: SyntheticSequence) -> None:
    p = SimulatedPredictor(seq.ground_truth)
    idx = [100, 103, 106, 109, 112, 115]
    q = _queries(2000, 1)
    out = p.predict([seq[i] for i in idx], q, depth_for=[])
    zero = SimulatedPredictor(seq.ground_truth, noise=SimNoise.zero()).predict([seq[i] for i in idx], q, [])
    err = out.tracks[1:] - zero.tracks[1:]
    norm = np.linalg.norm(err, axis=-1)
    outl = norm > 10.0
    assert 0.04 < outl.mean() < 0.06, outl.mean()  # 5% outliers
    inl = err[~outl]
    assert 0.93 < inl.std() < 1.07, inl.std()  # 1 px per axis
    # visibility agrees between noisy and exact runs (not tied to the window's noise)
    np.testing.assert_array_equal(out.vis > 0.5, zero.vis > 0.5)
    # track confidence separates outliers on average
    assert out.conf[1:][outl].mean() < out.conf[1:][~outl & (out.vis[1:] > 0.5)].mean() - 0.2


def test_occluded_and_out_of_view_points_are_not_visible() -> None:
    """A wall point seen beside the central pillar from one camera is hidden behind it from the other."""
    K = intrinsics()
    poses = np.stack([look_at(np.array([-3.0, 1.2, 0.5]), np.array([4.0, 1.2, 0.5])),
                      look_at(np.array([-3.0, -0.9, 0.5]), np.array([4.0, -0.9, 0.5]))])
    seq = SyntheticSequence(Scene(), poses, K)
    wall = np.array([4.0, 0.8, 0.5])  # on the +x wall
    floor = np.array([-0.9, 0.15, 0.0])  # seen by both
    pts = np.stack([wall, floor])
    uv0, z0 = project_points(K, invert_T(poses[0]), pts)
    gt0, gt1 = seq.ground_truth_at(0), seq.ground_truth_at(1)
    # self-check of the set-up with the renderer: both points visible in frame 0; wall hidden in frame 1
    np.testing.assert_allclose(sample_nearest(gt0.depth, uv0), z0, rtol=0.02)
    uv1, z1 = project_points(K, invert_T(poses[1]), pts)
    d1 = sample_nearest(gt1.depth, uv1)
    assert d1[0] < 0.6 * z1[0] and abs(d1[1] / z1[1] - 1) < 0.02
    # a point visible in frame 0 that leaves frame 1's image: the left image border of frame 0
    q = np.vstack([uv0, [[2.0, 120.0]]]).astype(np.float32)
    for seed in range(5):
        out = SimulatedPredictor(seq.ground_truth, seed=seed).predict([seq[0], seq[1]], q, depth_for=[])
        assert out.vis[1, 0] < 0.3  # occluded
        assert out.vis[1, 1] > 0.7  # visible
        assert out.vis[1, 2] < 0.3  # out of view
        assert np.all(out.vis[0] == 1.0)


def test_bad_input() -> None:
    seq = make_sequence("still", 3)
    p = SimulatedPredictor(seq.ground_truth)
    with pytest.raises(ValueError):
        p.predict([], np.zeros((0, 2)), [])
    with pytest.raises(IndexError):
        p.predict([seq[0], seq[1]], np.zeros((0, 2)), [2])
    with pytest.raises(KeyError):
        from dataclasses import replace

        p.predict([replace(seq[0], stamp_ns=5)], np.zeros((0, 2)), [])
    small = make_sequence("still", 1, width=64, height=48)
    with pytest.raises(ValueError):
        p.predict([small[0]], np.zeros((0, 2)), [])


def test_pixel_grid_used_for_queries_matches_depth_lookup() -> None:
    # queries on integer pixels read exactly that pixel's depth (no half-pixel shift)
    uv = pixel_grid((4, 5)).reshape(-1, 2)
    img = np.arange(20.0).reshape(4, 5)
    np.testing.assert_array_equal(sample_nearest(img, uv), np.arange(20.0))


@pytest.mark.parametrize("shared", [0.0, 0.5, 1.0])
def test_depth_bias_shared_by_the_window(seq: SyntheticSequence, shared: float) -> None:
    """depth_bias_shared = w: each frame's bias is (1 - w) of its own field plus w of one field per window;
    the per-pixel noise and the outliers stay off here, so depth / truth - 1 is the bias itself."""
    nz = SimNoise(rot_deg=0.0, trans_frac=0.0, focal_frac=0.0, depth_frac=0.0, depth_bias_frac=0.05,
                  depth_outlier_frac=0.0, track_px=0.0, track_outlier_frac=0.0, depth_bias_shared=shared)
    idx = [10, 14, 18]
    frames = [seq[i] for i in idx]
    pred = SimulatedPredictor(seq.ground_truth, nz, seed=4).predict(frames, _queries(4), [0, 1, 2])
    bias = []
    for s, i in enumerate(idx):
        g = seq.ground_truth(int(seq.stamps_ns[i])).depth
        ok = g > 0
        r = pred.depth[s][ok] / g[ok]
        bias.append(r / np.median(r) - 1.0)  # the window scale divided out (to the field's median)
    assert all(np.abs(b).max() <= 0.11 for b in bias)  # |b| <= 5 % around a median within 5 %
    spread = max(float(np.abs(bias[s] - bias[0]).max()) for s in (1, 2))
    if shared == 1.0:
        assert spread < 1e-5  # one field for the whole window (float32 rounding only)
    else:
        assert spread > 0.01  # the frames' own fields differ
