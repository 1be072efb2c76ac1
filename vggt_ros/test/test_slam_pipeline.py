"""Pipeline end to end on the synthetic world: accounting, map frame, failure paths, keyframe policy."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from vggt_ros.eval.metrics import evaluate_trajectory
from vggt_ros.geometry.frames import T_BODY_OPTICAL
from vggt_ros.geometry.se3 import rotation_angle
from vggt_ros.io.map_store import load_map, read_saved, save_map
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor
from vggt_ros.slam.config import PipelineConfig, StitchConfig
from vggt_ros.slam.pipeline import Pipeline
from vggt_ros.slam.stitching import StitchInput, StitchResult, TrackStitcher
from vggt_ros.slam.updates import (
    DepthFrame,
    FramePose,
    FrameRefused,
    KeyframeAdded,
    MapChanged,
    TrajectoryCorrected,
    WindowCloud,
    WindowStats,
)
from vggt_ros.types import Frame

W, H = 160, 120


def _of(ups, cls):
    return [u for u in ups if isinstance(u, cls)]


def _run(p: Pipeline, frames, hook=None) -> list:
    out = []
    for k, f in enumerate(frames):
        if hook is not None:
            out += hook(p, k)
        out += p.push(f)
    return out + p.flush()


@pytest.fixture(scope="module")
def loop():
    seq = make_sequence("loop", 96, width=W, height=H)
    frames = [seq[i] for i in range(len(seq))]
    return seq, frames


@pytest.fixture(scope="module")
def loop_run(loop):
    seq, frames = loop
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), PipelineConfig())
    return p, _run(p, frames)


def _check_accounting(p: Pipeline, ups: list, frames: list) -> tuple[list[int], list[int]]:
    emitted = [u.stamp_ns for u in _of(ups, FramePose)]
    refused = [u.stamp_ns for u in _of(ups, FrameRefused)]
    assert len(emitted) == len(set(emitted)), "a frame was emitted twice"
    assert emitted == sorted(emitted)
    c = p.counters
    assert c.frames_in == len(frames)
    assert c.frames_accepted == c.frames_emitted + sum(c.frames_dropped.values()) + len(p.window)
    assert c.frames_in == c.frames_accepted + sum(c.frames_refused.values())
    assert len(emitted) == c.frames_emitted and len(refused) == sum(c.frames_refused.values()) + sum(
        c.frames_dropped.values()
    )
    return emitted, refused


def test_loop_every_frame_once_in_map_frame(loop, loop_run):
    seq, frames = loop
    p, ups = loop_run
    emitted, refused = _check_accounting(p, ups, frames)
    assert emitted == [f.stamp_ns for f in frames] and refused == []
    poses = _of(ups, FramePose)
    # map = first keyframe's BODY frame: the first camera's optical pose in it is T_BODY_OPTICAL
    np.testing.assert_allclose(poses[0].T_map_cam, T_BODY_OPTICAL, atol=1e-9)
    assert [u.frame_index for u in poses] == list(range(len(frames)))
    stats = _of(ups, WindowStats)
    # 16 + 6 x 12 = 88, then flush: 8 leftover frames in a last, shorter window
    assert [w.num_new for w in stats] == [16, 12, 12, 12, 12, 12, 12, 8] and all(w.accepted for w in stats)
    assert stats[0].scale == 1.0 and all(w.anchor_keyframe_ids for w in stats[1:])
    assert p.counters.windows_accepted == 8 and p.counters.keyframes == len(p.keyframes) >= 3
    kfs = _of(ups, KeyframeAdded)
    assert kfs[0].frame_index == 0 and [k.keyframe_id for k in kfs] == list(range(len(kfs)))
    assert {k.frame_index for k in kfs} == {u.frame_index for u in poses if u.is_keyframe}
    depth = _of(ups, DepthFrame)
    assert len(depth) == len(frames) and depth[0].depth.shape == (H, W) and depth[0].depth.dtype == np.float32
    assert np.all(np.isnan(depth[0].confidence) == np.isnan(depth[0].depth))
    assert np.nanmin(depth[5].confidence) >= p.config.depth_conf_threshold
    clouds = _of(ups, WindowCloud)
    assert len(clouds) == 8 and clouds[1].points.dtype == np.float32 and clouds[1].colors.dtype == np.uint8
    assert _of(ups, MapChanged) == []  # pulled: map_every 0
    m = p.map_update(1)
    assert m is not None and m.num_keyframes == len(p.keyframes) and len(m.points) > 1000
    # accuracy (Sim(3)-aligned) and the map's points lie on the scene: z of map points in the body frame
    m = evaluate_trajectory(
        seq.stamps_ns, seq.poses, np.array(emitted), np.stack([u.T_map_cam for u in poses])
    )
    assert m.ate_percent < 1.0 and m.num_matched == 96
    assert p.counters.core_time_s > 0 and p.counters.predict_time_s > 0


def test_depth_frames_are_consistent_with_poses(loop_run):
    """A keyframe's depth, unprojected with its pose, matches the window cloud's geometry scale."""
    p, ups = loop_run
    poses = {u.frame_index: u.T_map_cam for u in _of(ups, FramePose)}
    depth = {u.frame_index: u for u in _of(ups, DepthFrame)}
    # two nearby frames see the same surface: reproject frame 40 into frame 42 and compare depth
    from vggt_ros.geometry.depth import reprojection_depth_error

    e = reprojection_depth_error(
        depth[40].depth, depth[40].K, poses[40], depth[42].depth, depth[42].K, poses[42]
    )
    assert np.nanmedian(e) < 0.05


def test_save_map_round_trip(loop_run, tmp_path):
    p, _ = loop_run
    save_map(p.global_map, tmp_path / "m", trajectory=p.trajectory())
    loaded = load_map(tmp_path / "m")
    assert sorted(loaded.keyframes) == sorted(p.global_map.keyframes)
    np.testing.assert_array_equal(loaded.snapshot().points, p.global_map.snapshot().points)
    saved = read_saved(tmp_path / "m")
    stamps, T = saved["trajectory_tum"]
    s0, T0 = p.trajectory()
    assert stamps.tolist() == s0.tolist()
    np.testing.assert_allclose(T, T0, atol=1e-6)


def test_refused_frames_are_counted_and_stream_continues(loop):
    seq, frames = loop
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), PipelineConfig())
    good = frames[:40]
    nan_K = good[20].K.copy()
    nan_K[0, 0] = np.nan
    bad = {
        10: Frame(good[10].stamp_ns + 1, np.zeros((60, 80, 3), np.uint8), good[10].K),  # size changed
        20: Frame(good[20].stamp_ns + 1, good[20].rgb, nan_K),  # NaN K
        30: Frame(good[29].stamp_ns, good[30].rgb, good[30].K),  # stamp not increasing
        35: Frame(good[35].stamp_ns + 1, good[35].rgb.astype(np.float32), good[35].K),  # wrong dtype
    }
    stream = []
    for i, f in enumerate(good):
        stream.append(f)
        if i in bad:
            stream.append(bad[i])
    ups = _run(p, stream)
    emitted, refused = _check_accounting(p, ups, stream)
    assert emitted == [f.stamp_ns for f in good]
    assert dict(p.counters.frames_refused) == {
        "size_changed": 1,
        "bad_intrinsics": 1,
        "non_monotonic_stamp": 1,
        "bad_image": 1,
    }
    assert sorted(u.reason for u in _of(ups, FrameRefused)) == sorted(p.counters.frames_refused)


def test_flush_processes_leftovers_once(loop):
    seq, frames = loop
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), PipelineConfig())
    ups = []
    for f in frames[:5]:
        ups += p.push(f)
    assert ups == [] and len(p.window) == 5
    ups += p.flush()  # a 5-frame first window
    assert [u.frame_index for u in _of(ups, FramePose)] == [0, 1, 2, 3, 4] and p.bootstrapped
    assert p.flush() == []
    for f in frames[5:20]:
        ups += p.push(f)
    assert len(p.window) == 3  # 12 new frames went into window 1, 3 wait
    ups += p.flush()
    assert [u.frame_index for u in _of(ups, FramePose)] == list(range(20)) and len(p.window) == 0


def test_dropped_windows_and_pending_frames(loop):
    """skip_next_window and drop_pending lose exactly those frames, counted; the chain continues."""
    seq, frames = loop
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), PipelineConfig())

    def hook(pp: Pipeline, k: int) -> list:
        if k == 28:  # before window 2 fills (frames 28..39): skip it
            pp.skip_next_window("overload")
        if k == 58:  # frames 52..57 are pending: drop them
            return pp.drop_pending("queue_full")
        return []

    ups = _run(p, frames, hook)
    emitted, refused = _check_accounting(p, ups, frames)
    lost = set(range(28, 40)) | set(range(52, 58))
    assert [u.frame_index for u in _of(ups, FramePose)] == [i for i in range(96) if i not in lost]
    assert sorted(refused) == sorted(frames[i].stamp_ns for i in lost)
    assert dict(p.counters.frames_dropped) == {"overload": 12, "queue_full": 6}
    assert dict(p.counters.windows_skipped) == {"overload": 1}
    stats = _of(ups, WindowStats)
    assert [w.accepted for w in stats].count(False) == 1 and stats[2].reason == "overload"
    assert all(w.accepted for w in stats[3:]) and sum(p.counters.windows_rejected.values()) == 0
    m = evaluate_trajectory(
        seq.stamps_ns, seq.poses, np.array(emitted), np.stack([u.T_map_cam for u in _of(ups, FramePose)])
    )
    assert m.ate_percent < 1.5


class CorruptingPredictor:
    """Wraps a predictor; the windows numbered `bad` get random depth and tracks, `boom` raises,
    `shape` returns a wrong shape. A window is recognised by its newest frame, so a retry of the
    same frames (recovery) gets the same corruption: garbage stays garbage."""

    name = "corrupting"

    def __init__(self, inner, frames, bad: int = -1, boom: int = -1, shape: int = -1) -> None:
        self.inner = inner
        last = {w: frames[min(16 + 12 * w, len(frames)) - 1].stamp_ns for w in range(1, 8)}
        last[0] = frames[15].stamp_ns
        self.bad, self.boom, self.shape = last.get(bad), last.get(boom), last.get(shape)
        self.calls = 0

    def predict(self, frames, query_points, depth_for):
        key = frames[-1].stamp_ns
        self.calls += 1
        if key == self.boom:
            raise RuntimeError("CUDA out of memory (simulated)")
        pred = self.inner.predict(frames, query_points, depth_for)
        rng = np.random.default_rng(self.calls)
        if key == self.bad:
            for i in pred.depth:
                pred.depth[i] = rng.uniform(0.2, 3.0, pred.depth[i].shape).astype(np.float32)
            pred.tracks[1:] = rng.uniform([0, 0], [W - 1, H - 1], pred.tracks[1:].shape).astype(np.float32)
        if key == self.shape:
            pred.T_cam_win = pred.T_cam_win[:-1]
        return pred


def test_rejected_windows_are_counted_never_merged(loop):
    seq, frames = loop
    inner = SimulatedPredictor(seq.ground_truth, SimNoise())
    pred = CorruptingPredictor(inner, frames, bad=2, boom=4, shape=5)
    p = Pipeline(pred, PipelineConfig())
    ups = _run(p, frames)
    emitted, refused = _check_accounting(p, ups, frames)
    stats = _of(ups, WindowStats)
    assert [w.accepted for w in stats] == [True, True, False, True, False, False, True, True]
    assert stats[4].reason.startswith("predictor_error") and stats[5].reason.startswith("bad_prediction")
    rej = p.counters.windows_rejected
    assert rej["predictor_error"] == 1 and rej["bad_prediction"] == 1 and sum(rej.values()) == 3
    lost = set(range(28, 40)) | set(range(52, 76))
    assert [u.frame_index for u in _of(ups, FramePose)] == [i for i in range(96) if i not in lost]
    assert all(u.reason.startswith("window_rejected") for u in _of(ups, FrameRefused))
    # nothing of the rejected windows entered the map
    kf_frames = {k.frame_index for k in p.keyframes.keyframes}
    assert not kf_frames & lost
    m = evaluate_trajectory(
        seq.stamps_ns, seq.poses, np.array(emitted), np.stack([u.T_map_cam for u in _of(ups, FramePose)])
    )
    assert m.ate_percent < 1.5


def test_standing_still_adds_no_keyframe():
    seq = make_sequence("still", 64, width=W, height=H)
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), PipelineConfig())
    ups = _run(p, [seq[i] for i in range(64)])
    assert len(_of(ups, FramePose)) == 64 and len(p.keyframes) == 1
    assert all(w.accepted for w in _of(ups, WindowStats))


def test_pure_rotation_keeps_the_chain():
    seq = make_sequence("rotation", 120, width=W, height=H)
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), PipelineConfig())
    ups = _run(p, [seq[i] for i in range(120)])
    poses = _of(ups, FramePose)
    assert len(poses) == 120 and all(w.accepted for w in _of(ups, WindowStats))
    assert 2 <= len(p.keyframes) <= 12  # the 120 deg pan needs some, but not one per window
    R_gt = seq.poses[:, :3, :3]
    R_est = np.stack([u.T_map_cam[:3, :3] for u in poses])
    rel_gt = np.einsum("ji,njk->nik", R_gt[0], R_gt)
    rel_est = np.einsum("ji,njk->nik", R_est[0], R_est)
    err = np.degrees(rotation_angle(np.einsum("nji,njk->nik", rel_gt, rel_est)))
    assert err.max() < 2.0
    centres = np.stack([u.T_map_cam[:3, 3] for u in poses])
    depth0 = p.keyframes.keyframes[0].median_depth
    assert np.linalg.norm(centres - centres[0], axis=1).max() < 0.05 * depth0


def test_reset_starts_a_new_stream(loop):
    seq, frames = loop
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), PipelineConfig())
    _run(p, frames[:30])
    for f in frames[30:35]:
        p.push(f)
    gone = p.reset()
    assert [u.stamp_ns for u in gone] == [f.stamp_ns for f in frames[30:35]] and gone[0].reason == "reset"
    assert not p.bootstrapped and p.counters.frames_in == 0 and len(p.global_map) == 0
    ups = _run(p, frames[:20])  # stamps may start over after a reset
    assert len(_of(ups, FramePose)) == 20


def test_map_pulled_on_request_equals_the_per_window_map(loop):
    """map_every 0 (the default, what the runtime runs): no MapChanged per window; map_update gives the
    same fused map once after a change and None until the next change."""
    seq, frames = loop
    auto = Pipeline(SimulatedPredictor(seq.ground_truth), PipelineConfig(map_every=1))
    pull = Pipeline(SimulatedPredictor(seq.ground_truth), PipelineConfig())
    maps = []
    for f in frames[:40]:
        maps += _of(auto.push(f), MapChanged)
        assert _of(pull.push(f), MapChanged) == []
    m = pull.map_update(123)
    assert m is not None and m.stamp_ns == 123 and pull.map_update(124) is None
    # the same map state: the pulled grid is built at once, the other one kept up to date window by
    # window; rebuilt canonically (fresh) they are bit-identical, and the kept one is within rounding
    kept = auto.global_map.snapshot().points
    assert len(kept) == len(m.points)
    np.testing.assert_allclose(kept[np.lexsort(kept.T)], m.points[np.lexsort(m.points.T)], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(m.points, auto.global_map.snapshot(fresh=True).points)
    assert len(maps) >= 3 and m.num_keyframes == maps[-1].num_keyframes == len(pull.keyframes)


class _EvenPinned(TrackStitcher):
    """TrackStitcher that reports only the even window indices as pinned by PnP (poses unchanged)."""

    def stitch(self, inp: StitchInput) -> StitchResult:
        res = super().stitch(inp)
        return dataclasses.replace(res, pinned=frozenset(j for j in res.pinned or () if j % 2 == 0))


def _even_pinned_run(wait: int, repin: bool = True) -> tuple[Pipeline, list[Any]]:
    """The 96-frame room loop with _EvenPinned, pinned_keyframe_wait `wait` and StitchConfig.repin_gauge
    `repin`: (pipeline, updates)."""
    seq = make_sequence("loop", 96, width=W, height=H)
    cfg = PipelineConfig()
    kf_cfg = dataclasses.replace(cfg.keyframes, pinned_keyframe_wait=wait)
    st_cfg = dataclasses.replace(cfg.stitch, repin_gauge=repin)
    cfg = dataclasses.replace(cfg, keyframes=kf_cfg, stitch=st_cfg)
    p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise()), cfg)
    p.stitcher = _EvenPinned(cfg.stitch)
    return p, _run(p, [seq[i] for i in range(len(seq))])


def _keyframe_window_indices(wait: int) -> tuple[list[int], list[int]]:
    """The 96-frame room loop with _EvenPinned: (window index of each keyframe made in a stitched window,
    the last window index of that window)."""
    _, ups = _even_pinned_run(wait)
    stats = {w.window_id: w for w in _of(ups, WindowStats)}
    first: dict[int, int] = {}
    for u in _of(ups, FramePose):
        first.setdefault(u.window_id, u.frame_index)
    idx, last = [], []
    for u in _of(ups, FramePose):
        w = stats[u.window_id]
        if u.is_keyframe and w.reason == "ok" and w.anchor_keyframe_ids:
            A = len(w.anchor_keyframe_ids)
            idx.append(A + u.frame_index - first[u.window_id])
            last.append(A + w.num_new - 1)
    return idx, last


def test_a_keyframe_waits_for_a_frame_pnp_pinned():
    """A keyframe due on a frame whose pose PnP did not pin moves to the window's next pinned frame
    (KeyframeConfig.pinned_keyframe_wait, shipped 2: here the next frame), or stays when none follows
    (the window's last frame)."""
    assert PipelineConfig().keyframes.pinned_keyframe_wait >= 1
    idx, last = _keyframe_window_indices(PipelineConfig().keyframes.pinned_keyframe_wait)
    assert len(idx) >= 8
    assert all(j % 2 == 0 or j == end for j, end in zip(idx, last)), list(zip(idx, last))
    off, off_last = _keyframe_window_indices(0)
    assert any(j % 2 == 1 and j != end for j, end in zip(off, off_last))  # without it they fall anywhere
    assert abs(len(idx) - len(off)) <= len(off) // 4  # as many keyframes, a frame or so later


def test_a_keyframe_records_whether_pnp_pinned_its_pose():
    """Keyframe.pinned: True / False as the stitcher reported the keyframe's window index, None for the
    first window's (no map to pin it to). With StitchConfig.repin_gauge (shipped) a network-posed keyframe
    is re-pinned on its anchors' map points when it gauges the next window (counted)."""
    assert StitchConfig().repin_gauge

    def flags(repin: bool) -> tuple[list[tuple[bool, bool | None]], int]:
        p, ups = _even_pinned_run(0, repin)
        stats = {w.window_id: w for w in _of(ups, WindowStats)}
        first: dict[int, int] = {}
        for u in _of(ups, FramePose):
            first.setdefault(u.window_id, u.frame_index)
        out = []
        for kf in p.keyframes.keyframes:
            w = stats[kf.window_id]
            if not w.anchor_keyframe_ids:
                assert kf.pinned is None
                continue
            j = len(w.anchor_keyframe_ids) + kf.frame_index - first[kf.window_id]
            out.append((j % 2 == 0, kf.pinned))
        return out, p.counters.gauges_repinned

    reported, n = flags(False)
    assert n == 0 and all(even is pinned for even, pinned in reported), reported
    assert sum(e for e, _ in reported) >= 3 and sum(not e for e, _ in reported) >= 3
    repinned, n = flags(True)
    assert all(pinned for even, pinned in repinned if even)
    assert n >= 2 and sum(1 for even, pinned in repinned if not even and pinned) == n


def _keyframe_walk_deg(p: Pipeline, seq, lag: int) -> float:
    """RMS change of the keyframes' orientation error over `lag` keyframes (degrees, vs ground truth)."""
    ks = p.keyframes.keyframes
    dR = [k.T_world_cam[:3, :3] @ seq.poses[seq.index_of(k.stamp_ns)][:3, :3].T for k in ks]
    change = [np.degrees(rotation_angle(dR[i + lag] @ dR[i].T)) for i in range(len(ks) - lag)]
    return float(np.sqrt(np.mean(np.square(change))))


def test_anchor_links_steady_the_keyframe_chain():
    """StitchConfig.anchor_links (shipped): each window measures its older anchors again and the newest
    keyframes are solved with those edges. On the 240-frame loop at the harsh noise (loop closure off,
    seeds 0-2) the keyframes' rotation walk over 10 keyframes falls to 0.56-0.59 of the walk without
    (0.52-0.86 -> 0.31-0.50 deg); every older anchor of every window is measured (an edge, counted) and
    each such window republishes the corrected trajectory. The anchors here are those by covisibility
    alone (KeyframeConfig.long_anchor_rel 0): with the shipped older anchor in the last slot the links'
    effect on this walk is smaller (seeds 0-5: ratio median 0.85, walk with links 0.37 -> 0.44 deg;
    README "An older anchor")."""
    assert StitchConfig().anchor_links
    seq = make_sequence("loop", 240, width=W, height=H)
    ratios = []
    for seed in range(3):
        walks, links = [], []
        for on in (False, True):
            cfg = PipelineConfig(stitch=StitchConfig(anchor_links=on))
            cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, enabled=False),
                                      keyframes=dataclasses.replace(cfg.keyframes, long_anchor_rel=0.0))
            p = Pipeline(SimulatedPredictor(seq.ground_truth, SimNoise.harsh(), seed=seed), cfg)
            ups = _run(p, [seq[i] for i in range(len(seq))])
            walks.append(_keyframe_walk_deg(p, seq, 10))
            links.append(p.counters.anchor_links)
            linked = [w for w in _of(ups, WindowStats) if w.accepted and len(w.anchor_keyframe_ids) >= 2]
            older = sum(len(w.anchor_keyframe_ids) - 1 for w in linked)
            corrected = len(_of(ups, TrajectoryCorrected))
            if on:  # here every older anchor is measured again (54 of 54) and every such window corrects
                assert 0.9 * older <= links[-1] <= older and 0.9 * len(linked) <= corrected <= len(linked)
            else:
                assert links[-1] == 0 and corrected == 0
        ratios.append(walks[1] / walks[0])
    assert np.median(ratios) < 0.8, ratios
