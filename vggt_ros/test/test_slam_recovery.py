"""Tracking never gets stuck, loops close, segments merge: the recovery and loop-closure behaviour of the
pipeline with its shipped defaults (PipelineConfig() == the node's defaults, test_runtime_defaults.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from vggt_ros.eval.metrics import evaluate_trajectory
from vggt_ros.geometry.frames import T_BODY_OPTICAL
from vggt_ros.io.map_store import load_map, save_map
from vggt_ros.sim.scene import Scene
from vggt_ros.sim.sequence import SyntheticSequence, intrinsics
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor
from vggt_ros.sim.trajectories import TRAJECTORIES
from vggt_ros.slam.config import PipelineConfig
from vggt_ros.slam.pipeline import Pipeline
from vggt_ros.slam.updates import FramePose, LoopClosure, TrajectoryCorrected, WindowStats

W, H = 120, 90


def _of(ups, cls):
    return [u for u in ups if isinstance(u, cls)]


def _run(p: Pipeline, seq) -> list:
    out = []
    for i in range(len(seq)):
        out += p.push(seq[i])
    return out + p.flush()


def _noise(factor: float) -> SimNoise:
    base = SimNoise()
    keys = ("rot_deg", "trans_frac", "focal_frac", "depth_frac", "depth_bias_frac", "track_px")
    return dataclasses.replace(base, **{k: getattr(base, k) * factor for k in keys})


def _ate(seq, p: Pipeline) -> float:
    s, T = p.trajectory()
    idx = [seq.index_of(x) for x in s]
    return evaluate_trajectory(seq.stamps_ns[idx], seq.poses[idx], s, T).ate_percent


class AnchorBreakingPredictor:
    """Wraps a predictor: windows whose newest frame is in `broken` are spoiled whenever the window holds
    anchors; the same frames predicted alone are clean. mode 'garbage': random depth and tracks (a
    stitch that fails: the window recovers in its segment); mode 'no_view': no track from frame 0
    reaches the new frames (their views break off from the map: a new segment)."""

    name = "anchor_breaking"

    def __init__(self, inner, broken: set[int], mode: str = "garbage") -> None:
        self.inner, self.broken, self.mode = inner, broken, mode

    def predict(self, frames, query_points, depth_for):
        pred = self.inner.predict(frames, query_points, depth_for)
        with_anchors = len(frames) > PipelineConfig().num_new  # anchors + new frames
        if frames[-1].stamp_ns in self.broken and with_anchors:
            A = len(frames) - PipelineConfig().num_new
            if self.mode == "no_view":
                pred.vis[A:] = 0.0
            else:
                rng = np.random.default_rng(len(frames))
                for i in pred.depth:
                    pred.depth[i] = rng.uniform(0.2, 3.0, pred.depth[i].shape).astype(np.float32)
                pred.tracks[1:] = rng.uniform([0, 0], [W - 1, H - 1], pred.tracks[1:].shape).astype(
                    np.float32
                )
        return pred


@pytest.fixture(scope="module")
def two_laps():
    loop = TRAJECTORIES["loop"](300)
    return SyntheticSequence(Scene(seed=0), np.concatenate([loop, loop]), intrinsics(W, H), (W, H))


@pytest.mark.parametrize(
    ("mode", "state", "started"), [("garbage", "recovered", 1), ("no_view", "relocalised", 2)]
)
def test_an_unstitchable_window_recovers_and_loses_no_frame(two_laps, mode, state, started):
    """garbage: the window recovers in its segment (weak pose-graph link). no_view: its views broke off from
    the map, so it starts segment 1 with its own gauge; since it sees a mapped place, the same window's
    keyframe relocalises it into segment 0 at once (a loop edge, merged_segment 1)."""
    seq = two_laps
    frames = 160
    # windows: 16 new frames, then 12 each; break the window ending at frame 87 (window 6)
    broken = {int(seq.stamps_ns[87])}
    p = Pipeline(AnchorBreakingPredictor(SimulatedPredictor(seq.ground_truth, SimNoise()), broken, mode))
    ups = []
    for i in range(frames):
        ups += p.push(seq[i])
    ups += p.flush()
    stats = _of(ups, WindowStats)
    states = [(w.window_id, w.tracking_state, w.segment_id) for w in stats]
    assert states[0] == (0, "initializing", 0)
    assert (6, state, 0) in states, states
    assert all(w.accepted for w in stats)
    after = [s for s in states if s[0] > 6]
    assert after and all(st == "tracking" and seg == 0 for _, st, seg in after)
    assert len(_of(ups, FramePose)) == frames and sum(p.counters.frames_dropped.values()) == 0
    assert p.tracking.segments_started == started
    merged = [u.merged_segment for u in _of(ups, LoopClosure)]
    assert (1 in merged) == (mode == "no_view")
    # the window continues from the last posed camera: no jump in the path
    _, T = p.trajectory()
    steps = np.linalg.norm(np.diff(T[:, :3, 3], axis=0), axis=1)
    assert steps[86] < 5 * np.median(steps)
    # a recovery is weakly linked to the keyframes before it; a new segment has its own gauge, and
    # only the relocalisation's loop edge ties it to segment 0
    first_kf = min(k.keyframe_id for k in p.keyframes.keyframes if k.window_id == 6)
    before = {k.keyframe_id for k in p.keyframes.keyframes if k.window_id < 6}
    ends = [p.loops.graph.edge(e)[1:3] for e in p.loops.graph.edge_ids("sequential")]
    linked = any(first_kf in (i, j) and ({i, j} - {first_kf}) <= before for i, j in ends)
    assert linked == (mode == "garbage")


def test_garbage_that_cannot_recover_is_rejected_and_tracking_resumes(two_laps):
    seq = two_laps

    class Garbage(AnchorBreakingPredictor):
        def predict(self, frames, query_points, depth_for):  # garbage with or without anchors
            pred = self.inner.predict(frames, query_points, depth_for)
            if frames[-1].stamp_ns in self.broken:
                rng = np.random.default_rng(7)
                for i in pred.depth:
                    pred.depth[i] = rng.uniform(0.2, 3.0, pred.depth[i].shape).astype(np.float32)
                pred.tracks[1:] = rng.uniform([0, 0], [W - 1, H - 1], pred.tracks[1:].shape).astype(
                    np.float32
                )
            return pred

    p = Pipeline(Garbage(SimulatedPredictor(seq.ground_truth, SimNoise()), {int(seq.stamps_ns[87])}))
    ups = []
    for i in range(124):
        ups += p.push(seq[i])
    stats = _of(ups, WindowStats)
    bad = [w for w in stats if w.window_id == 6][0]
    assert not bad.accepted and bad.tracking_state == "lost" and "no recovery" in bad.reason
    assert sum(p.counters.frames_dropped.values()) == 12  # only the garbage window's new frames
    assert stats[-1].accepted and stats[-1].tracking_state == "tracking" and stats[-1].segment_id == 0
    assert p.tracking.segments_started == 1


def test_loop_closure_reduces_drift_and_moves_path_and_map(two_laps, tmp_path):
    seq = two_laps
    results = {}
    for enabled in (False, True):
        cfg = PipelineConfig()
        cfg.loop.enabled = enabled
        p = Pipeline(SimulatedPredictor(seq.ground_truth, _noise(2.0)), cfg)
        ups = _run(p, seq)
        results[enabled] = (p, ups, _ate(seq, p))
    p, ups, ate_on = results[True]
    _, ups_off, ate_off = results[False]
    loops = _of(ups, LoopClosure)
    assert not _of(ups_off, LoopClosure)
    assert len(loops) >= 1 and all(lc.merged_segment == -1 for lc in loops)
    assert ate_on < 0.8 * ate_off, (ate_on, ate_off)
    # the correction reached the published path and the map's keyframes
    corr = _of(ups, TrajectoryCorrected)
    at = [i for i, u in enumerate(ups) if isinstance(u, LoopClosure)]
    assert all(isinstance(ups[i + 1], TrajectoryCorrected) for i in at)  # each loop republishes the path
    assert len(corr) > len(loops)  # and so does each window's anchor-link solve (StitchConfig.anchor_links)
    s, T = p.trajectory()
    last = corr[-1]
    n = len(last.stamps_ns)
    np.testing.assert_array_equal(last.stamps_ns, s[:n])
    np.testing.assert_allclose(last.T_map_cam, T[:n])
    ids, _, kT = p.global_map.keyframe_arrays()
    for i, kf_id in enumerate(ids):  # map keyframes moved with the corrected keyframes
        np.testing.assert_allclose(
            kT[i], T_BODY_OPTICAL @ p.keyframes.keyframes[kf_id].T_world_cam, atol=1e-9
        )
    # saved maps keep the optimised poses and load back identical
    save_map(p.global_map, tmp_path / "m", trajectory=p.trajectory())
    back = load_map(tmp_path / "m")
    for kf_id, k in p.global_map.keyframes.items():
        np.testing.assert_array_equal(back.keyframes[kf_id].T_map_cam, k.T_map_cam)
        np.testing.assert_array_equal(back.keyframes[kf_id].points_cam, k.points_cam)
    np.testing.assert_array_equal(back.snapshot().points, p.global_map.snapshot().points)


class FailingVerificationDouble:
    """TEST DOUBLE around the simulated predictor: every frame gets the same place descriptor (every
    keyframe looks like every other, as uninformative descriptors do) and windows of at most 5 frames
    (loop verifications) get random tracks, so every verification fails and none closes a loop."""

    name = "failing_verification"

    def __init__(self, inner) -> None:
        self.inner, self.sizes = inner, []

    def predict(self, frames, query_points, depth_for):
        pred = self.inner.predict(frames, query_points, depth_for)
        self.sizes.append(len(frames))
        same = np.full(32, 1 / np.sqrt(32), np.float32)
        pred.descriptors = {i: same for i in range(len(frames))}
        if len(frames) <= 5:
            rng = np.random.default_rng(len(self.sizes))
            pred.tracks[1:] = rng.uniform([0, 0], [W - 1, H - 1], pred.tracks[1:].shape).astype(np.float32)
        return pred


def test_loop_verifications_per_window_are_bounded_by_the_budget(two_laps):
    """On the second lap every new keyframe has candidates and every verification fails: unbounded,
    a window runs up to 4 verification predictions; the shipped budget caps it at 2, counts the
    keyframes it leaves unchecked, and WindowStats counts exactly the predictions that ran."""
    n = 16 + 12 * 32  # whole windows only: every prediction of <= 5 frames is a verification
    runs = {}
    for budget in (PipelineConfig().loop.max_loop_verifications_per_window, 1000):
        cfg = PipelineConfig()
        cfg.loop.max_loop_verifications_per_window = budget
        pred = FailingVerificationDouble(SimulatedPredictor(two_laps.ground_truth, SimNoise()))
        p = Pipeline(pred, cfg)
        ups = []
        for i in range(n):
            ups += p.push(two_laps[i])
        stats = _of(ups + p.flush(), WindowStats)
        verifications = [s.loop_verifications for s in stats]
        assert sum(verifications) == sum(s <= 5 for s in pred.sizes)  # counted == run
        runs[budget] = (max(verifications), sum(s.loop_checks_skipped for s in stats), len(pred.sizes))
    assert PipelineConfig().loop.max_loop_verifications_per_window == 2
    assert runs[2][0] == 2 and runs[2][1] > 0
    assert runs[1000][0] > 2 and runs[1000][1] == 0 and runs[1000][2] > runs[2][2]


def test_a_failing_pose_graph_solve_rejects_the_loop_and_keeps_the_window(two_laps, monkeypatch):
    """gtsam failing to solve (PoseGraphError) must not escape Pipeline.push: that would drop a window
    whose frames and keyframes were already posed. The loop is rejected (counted), the graph keeps no
    edge of it, every frame is posed, and loops close again once the solver works. A failed local solve of
    a window's anchor links refuses them (counted) and the next windows link again."""
    from vggt_ros.slam.pose_graph import PoseGraph, PoseGraphError

    real = PoseGraph.optimize
    fails = {"loop": 0, "local": 0}

    def failing(self, window=None, exclude=()):
        kind = "loop" if window is None else "local"  # a loop's solve is global, anchor links' local
        if fails[kind] < 2:
            fails[kind] += 1
            raise PoseGraphError("pose graph solve failed: test")
        return real(self, window, exclude)

    monkeypatch.setattr(PoseGraph, "optimize", failing)
    p = Pipeline(SimulatedPredictor(two_laps.ground_truth, SimNoise()), PipelineConfig())
    ups = _run(p, two_laps)
    assert fails == {"loop": 2, "local": 2} and p.tracking.loops_rejected >= 2
    assert p.counters.anchor_links_refused >= 2 and p.counters.anchor_links > 0  # refused, then kept
    assert len(_of(ups, LoopClosure)) >= 1  # closed after the two failures
    assert len(p.loops.graph.edge_ids("loop")) == len(_of(ups, LoopClosure))
    assert {u.stamp_ns for u in _of(ups, FramePose)} == {int(s) for s in two_laps.stamps_ns}
