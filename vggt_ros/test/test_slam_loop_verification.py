"""LoopCloser's geometric verification: the loop's scale comes from several keyframes, not one.

The verification window is [candidate m, m's covisible neighbours, query q, q's neighbours]; its scale is
the anchors' consensus (stitching.anchor_depth_scale), so one anchor's biased stored depth (each keyframe
carries a few % of regional depth bias) no longer sets the relative scale of a relocalisation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor
from vggt_ros.slam.config import LoopConfig, PipelineConfig
from vggt_ros.slam.keyframes import Keyframe, KeyframeManager
from vggt_ros.slam.loop_closure import LoopCloser
from vggt_ros.slam.stitching import TrackStitcher

W, H = 120, 90
STRIDE = 4


class CountingPredictor:
    """Wraps a predictor; records the number of frames of every window it predicts."""

    name = "counting"

    def __init__(self, inner) -> None:
        self.inner, self.sizes = inner, []

    def predict(self, frames, query_points, depth_for):
        self.sizes.append(len(frames))
        return self.inner.predict(frames, query_points, depth_for)


@pytest.fixture(scope="module")
def seq():
    return make_sequence("loop", 120, width=W, height=H)


def _kf(seq, kf_id: int, frame: int, segment: int, depth_factor: float = 1.0) -> Keyframe:
    """Keyframe at ground truth (world = metres); stored depth = truth x depth_factor (a regional bias)."""
    gt = seq.ground_truth_at(frame)
    d = gt.depth[::STRIDE, ::STRIDE].astype(np.float32) * np.float32(depth_factor)
    d = np.where(d > 0, d, np.nan).astype(np.float32)
    conf = np.full(d.shape, 10.0, np.float32)
    return Keyframe(kf_id, frame, int(seq.stamps_ns[frame]), "cam", kf_id, gt.T_world_cam.copy(),
                    seq.K.copy(), (H, W), True, STRIDE, 1, d, conf, seq.image(frame).copy(),
                    float(np.nanmedian(d)), segment_id=segment)


def _verify(seq, cfg: LoopConfig, m_bias: float, neighbour_bias: float = 1.0):
    """Segment 0 maps frames 10, 13, 16 (keyframes 0-2, the middle one, m, with biased depth); segment 1
    (a relocalising camera) has keyframes at frames 12 and 15 (3, 4 = q). True scale ratio: 1."""
    kfs = [_kf(seq, 0, 10, 0, neighbour_bias), _kf(seq, 1, 13, 0, m_bias), _kf(seq, 2, 16, 0, neighbour_bias),
           _kf(seq, 3, 12, 1), _kf(seq, 4, 15, 1)]
    keyframes = KeyframeManager()
    keyframes.keyframes = kfs
    config = PipelineConfig(loop=cfg)
    predictor = CountingPredictor(SimulatedPredictor(seq.ground_truth, SimNoise.zero()))
    closer = LoopCloser(cfg)
    ver = closer._verify(kfs[4], kfs[1], 0.9, predictor, TrackStitcher(config.stitch), config, keyframes)
    return ver, predictor.sizes


def test_scale_ratio_is_the_anchors_consensus_not_one_biased_keyframe(seq):
    ver, sizes = _verify(seq, LoopConfig(), m_bias=1.03)
    assert ver is not None
    assert sizes == [5]  # m + 2 neighbours, q + 1 neighbour
    assert ver.scale_ratio == pytest.approx(1.0, abs=0.01)  # one anchor (old: m alone) gives 1.03
    ver1, sizes1 = _verify(seq, LoopConfig(verify_anchors=1, verify_query_keyframes=1), m_bias=1.03)
    assert ver1 is not None and sizes1 == [2]
    assert ver1.scale_ratio == pytest.approx(1.03, abs=0.005)


def test_unbiased_map_verifies_at_scale_one_and_pose_truth(seq):
    ver, _ = _verify(seq, LoopConfig(), m_bias=1.0)
    assert ver is not None and ver.match_id == 1
    assert ver.scale_ratio == pytest.approx(1.0, abs=0.005)
    truth = seq.ground_truth_at(15).T_world_cam
    assert np.linalg.norm(ver.T_world_query[:3, 3] - truth[:3, 3]) < 0.02  # metres, room of ~5 m


def test_anchors_that_disagree_by_more_than_the_stitch_bound_leave_the_gauge_scale(seq):
    """Neighbours 30 % off m (beyond StitchConfig.max_depth_scale_dev): no consensus, m's scale is kept."""
    ver, _ = _verify(seq, LoopConfig(), m_bias=1.0, neighbour_bias=1.3)
    assert ver is not None
    assert ver.scale_ratio == pytest.approx(1.0, abs=0.005)


def test_neighbours_need_covisibility_and_stay_in_the_segment(seq):
    """Far keyframes of m's segment (the other side of the loop) are not anchors; q's side never
    borrows the other segment's keyframes."""
    kfs = [_kf(seq, 0, 70, 0), _kf(seq, 1, 13, 0), _kf(seq, 2, 16, 0), _kf(seq, 3, 12, 1), _kf(seq, 4, 15, 1)]
    keyframes = KeyframeManager()
    keyframes.keyframes = kfs
    anchors, query_side = LoopCloser(LoopConfig())._verification_window(kfs[4], kfs[1], keyframes)
    assert [k.keyframe_id for k in anchors] == [1, 2]
    assert [k.keyframe_id for k in query_side] == [4, 3]


def test_verification_counts_are_validated():
    with pytest.raises(ValueError):
        LoopConfig(verify_anchors=0)


def test_bench_measures_the_scale_error_of_both_verifications():
    """bench/loop_verification.py runs (3 trials at 1x noise): every loop verifies, errors are finite."""
    path = Path(__file__).resolve().parents[1] / "bench" / "loop_verification.py"
    spec = importlib.util.spec_from_file_location("loop_verification_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seq = make_sequence("loop", 40, width=bench.W, height=bench.H)
    for anchors, query in ((1, 1), (3, 2)):
        errs, fails = bench.run_setting(seq, SimNoise.harsh(), 1.0, anchors, query, 3)
        assert fails == 0 and errs.shape == (3,)
        assert np.all(np.abs(errs) < 10.0)  # % of scale: a verification, not garbage
