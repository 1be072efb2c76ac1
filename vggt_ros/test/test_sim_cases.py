"""Covered camera (black / frozen frames), the harsh and blank-frame noise, disjoint views, twin aliasing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from vggt_ros.geometry.image import is_blank
from vggt_ros.geometry.se3 import invert_T, rotation_angle
from vggt_ros.sim.cases import (
    CASES,
    CaseSimulatedPredictor,
    fold_twin_rooms,
    make_case_predictor,
    make_case_sequence,
    twin_circle,
    view_groups,
)
from vggt_ros.sim.sequence import Cover, GroundTruth, SyntheticSequence, intrinsics
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor
from vggt_ros.sim.trajectories import figure_eight
from vggt_ros.sim.worlds import TWIN_SHIFT, pillar_hall, twin_rooms

W, H = 80, 60


@pytest.fixture(scope="module")
def covered() -> SyntheticSequence:
    P = figure_eight(720)[:40]
    return SyntheticSequence(pillar_hall(), P, intrinsics(W, H), (W, H), cache_size=64,
                             covers=(Cover(10, 5, "black"), Cover(25, 5, "frozen")))


def _queries(n: int = 64) -> np.ndarray:
    return np.random.default_rng(0).uniform([0, 0], [W - 1, H - 1], (n, 2)).astype(np.float32)


def test_black_and_frozen_frames_while_the_camera_keeps_moving(covered: SyntheticSequence) -> None:
    for i in range(10, 15):
        assert covered[i].rgb.max() <= 3 and is_blank(covered[i].rgb, SimNoise().blank_std)
    assert not any(is_blank(covered[i].rgb, SimNoise().blank_std) for i in (9, 15, 24, 30))
    for i in range(25, 30):
        np.testing.assert_array_equal(covered[i].rgb, covered[24].rgb)
    assert not np.array_equal(covered[30].rgb, covered[24].rgb)
    # ground truth keeps moving; image_truth tells the frozen view with the frame's own stamp
    assert np.linalg.norm(covered.poses[29, :3, 3] - covered.poses[24, :3, 3]) > 0.05
    s = int(covered.stamps_ns[27])
    assert np.array_equal(covered.ground_truth(s).T_world_cam, covered.poses[27])
    it = covered.image_truth(s)
    assert it.stamp_ns == s and np.array_equal(it.T_world_cam, covered.poses[24])
    assert np.array_equal(covered.image_truth(int(covered.stamps_ns[5])).T_world_cam, covered.poses[5])
    with pytest.raises(ValueError):
        SyntheticSequence(pillar_hall(), covered.poses, covered.K, (W, H), covers=(Cover(38, 5),))


def test_black_frames_give_low_confidence_garbage_without_using_ground_truth(
        covered: SyntheticSequence) -> None:
    idx = [6, 7, 8, 9, 10, 11, 16, 17]  # 10 and 11 are black
    frames = [covered[i] for i in idx]
    true = covered.ground_truth
    out = SimulatedPredictor(true, SimNoise()).predict(frames, _queries(), range(8))
    for s in (4, 5):
        assert out.depth_conf[s].max() < 1.5 and out.vis[s].max() < 0.15 and out.conf[s].max() < 0.2
    assert np.median(out.vis[[1, 2, 3, 6, 7]]) > 0.5 and out.depth_conf[3].max() > 3.0
    T_win_cam = invert_T(out.T_cam_win)
    gt_rel = np.stack([invert_T(covered.poses[idx[0]]) @ covered.poses[i] for i in idx])
    err = np.degrees(rotation_angle(np.swapaxes(gt_rel[:, :3, :3], 1, 2) @ T_win_cam[:, :3, :3]))
    assert err[[1, 2, 3, 6, 7]].max() < 3.0 and err[[4, 5]].min() > 3.0
    # no cheating: the blank frames' ground truth does not change anything the predictor returns

    def lying(stamp: int) -> GroundTruth:
        g = true(stamp)
        if stamp in (frames[4].stamp_ns, frames[5].stamp_ns):
            T = g.T_world_cam.copy()
            T[:3, 3] += 1.0
            return GroundTruth(g.stamp_ns, T, g.K, g.depth * 2.0)
        return g

    out2 = SimulatedPredictor(lying, SimNoise()).predict(frames, _queries(), range(8))
    for name in ("T_cam_win", "tracks", "vis", "conf"):
        np.testing.assert_array_equal(getattr(out, name), getattr(out2, name))
    for s in range(8):
        np.testing.assert_array_equal(out.depth[s], out2.depth[s])


def test_black_gauge_frame_makes_every_track_garbage(covered: SyntheticSequence) -> None:
    frames = [covered[i] for i in (12, 15, 16, 17)]
    out = SimulatedPredictor(covered.ground_truth, SimNoise()).predict(frames, _queries(), [1])
    assert out.vis[1:].max() < 0.15 and out.depth_conf[1].max() > 3.0
    np.testing.assert_array_equal(out.T_cam_win[0], np.eye(4))


def test_harsh_preset_and_scale_jitter() -> None:
    d, h = SimNoise(), SimNoise.harsh()
    assert d.scale_jitter == 0.0 and (h.rot_deg, h.trans_frac, h.track_px) == (1.2, 0.026, 1.0)
    assert h.depth_bias_frac > d.depth_bias_frac and h.depth_outlier_frac > 0 and h.track_outlier_frac > 0
    seq = make_case_sequence(CASES["loop3"], W, H, max_frames=40)
    frames = [seq[i] for i in range(0, 40, 3)]
    scales = {name: [SimulatedPredictor(seq.ground_truth, n, seed).predict(frames, _queries(8), [])
                     .timings["scale_m_to_win"] for seed in range(6)]
              for name, n in (("default", d), ("jitter", dataclasses.replace(d, scale_jitter=0.2)))}
    assert np.ptp(scales["default"]) == 0.0
    ratio = np.log(np.array(scales["jitter"]) / scales["default"][0])
    assert 0.05 < ratio.std() < 0.5
    # rotation error of the harsh preset: ~1.2 deg RMS over frames s >= 1
    errs = []
    for seed in range(4):
        out = SimulatedPredictor(seq.ground_truth, h, seed).predict(frames, _queries(8), [])
        gt_rel = np.stack([invert_T(seq.poses[0]) @ seq.poses[i] for i in range(0, 40, 3)])
        R = invert_T(out.T_cam_win)[:, :3, :3]
        errs += list(np.degrees(rotation_angle(np.swapaxes(gt_rel[:, :3, :3], 1, 2) @ R))[1:])
    assert 0.8 < float(np.sqrt(np.mean(np.square(errs)))) < 1.6


def test_disjoint_views_get_an_arbitrary_relative_pose() -> None:
    seq = make_case_sequence(CASES["kidnapped"], W, H)
    idx = [590, 594, 598, 599, 600, 601, 602, 603]
    frames = [seq[i] for i in idx]
    gts = [seq.ground_truth(f.stamp_ns) for f in frames]
    assert view_groups(gts).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    exact = SimulatedPredictor(seq.image_truth, SimNoise.zero()).predict(frames, _queries(), [])
    gated = make_case_predictor(CASES["kidnapped"], seq, SimNoise.zero()).predict(frames, _queries(), [])
    np.testing.assert_allclose(gated.T_cam_win[:4], exact.T_cam_win[:4], atol=1e-9)
    # within the post-jump group the relative poses are still right, across the jump they are not
    rel = [p.T_cam_win[4] @ invert_T(p.T_cam_win[7]) for p in (exact, gated)]
    np.testing.assert_allclose(rel[0], rel[1], atol=1e-9)
    jump = [invert_T(p.T_cam_win[4])[:3, 3] for p in (exact, gated)]
    assert np.linalg.norm(jump[0] - jump[1]) > 0.1


def test_twin_rooms_alias_within_a_window() -> None:
    a = twin_circle(240)[:60:6]
    b = a.copy()
    b[:, 0, 3] += TWIN_SHIFT
    seq = SyntheticSequence(twin_rooms(), np.concatenate([a, b]), intrinsics(W, H), (W, H), cache_size=64,
                            sensor_noise=0)  # the rooms' renders alias to the bit; sensor noise would not
    frames = [seq[i] for i in (0, 1, 2, 10, 11, 12)]  # A, A, A, then the same three views in B
    np.testing.assert_array_equal(frames[0].rgb, frames[3].rgb)
    gts = [seq.ground_truth(f.stamp_ns) for f in frames]
    folded = fold_twin_rooms(gts)
    np.testing.assert_allclose(folded[3].T_world_cam, gts[0].T_world_cam, atol=1e-12)
    assert fold_twin_rooms(gts[:3]) == gts[:3]
    pred = CaseSimulatedPredictor(seq.ground_truth, SimNoise.zero(), fold=fold_twin_rooms)
    out = pred.predict(frames, _queries(), [])
    # the network sees B's views where A's are: frame 3 at frame 0's pose, tracks visible
    np.testing.assert_allclose(out.T_cam_win[3], np.eye(4), atol=1e-9)
    assert out.vis[3].mean() > 0.6 and pred.folded_windows == 1
    honest = SimulatedPredictor(seq.ground_truth, SimNoise.zero()).predict(frames, _queries(), [])
    assert np.linalg.norm(invert_T(honest.T_cam_win[3])[:3, 3]) > 0.5 and honest.vis[3].mean() < 0.3


def test_dropouts_case_misses_single_frames_and_three_bursts_while_moving() -> None:
    from vggt_ros.sim.cases import DROPOUT_BURSTS, dropout_keep

    case = CASES["dropouts"]
    keep = dropout_keep()
    poses = case.poses()
    f8 = figure_eight(720)
    assert len(poses) == np.count_nonzero(keep) == 557 and np.array_equal(poses, f8[keep])
    for start, n in DROPOUT_BURSTS:
        assert not keep[start: start + n].any()
    assert 0.07 < 1.0 - np.count_nonzero(keep[:100]) / 100 < 0.13  # ~10 % single drops
    # the case's relocalisation clock starts at the first frame after the 2 s burst
    assert case.reloc_from is not None and np.flatnonzero(keep)[case.reloc_from] >= 560
    assert np.flatnonzero(keep)[case.reloc_from - 1] < 500
    step = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert step[case.reloc_from - 1] > 10 * np.median(step)  # the camera moved on while nothing arrived
