"""GPU memory safety (runtime/memory.py): a CUDA OOM splits the window and the node goes on with every
frame accounted for; the configure-time window choice from (made-up) free-memory numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vggt_ros.runtime.core import NodeCore
from vggt_ros.runtime.factory import make_pipeline
from vggt_ros.runtime.memory import (
    GIB,
    MemoryModel,
    OomGuardPredictor,
    chunk_indices,
    fit_window_to_gpu,
    is_oom,
    largest_window,
)
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.publishing import ListSink
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor


@pytest.fixture(scope="module")
def seq():
    return make_sequence("loop", 40, width=128, height=96)


class OomOncePredictorDouble:
    """TEST DOUBLE: raises torch's CUDA OOM error on the first window longer than `fits` frames, then
    behaves like the simulated predictor (a GPU whose memory is fragmented once)."""

    name = "oom-once"

    def __init__(self, inner, fits: int, always: bool = False) -> None:
        self.inner, self.fits, self.always = inner, fits, always
        self.sizes: list[int] = []
        self.raised = 0

    def predict(self, frames, query_points, depth_for):
        self.sizes.append(len(frames))
        if len(frames) > self.fits and (self.always or not self.raised):
            self.raised += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.predict(frames, query_points, depth_for)


def test_is_oom_knows_both_forms():
    assert is_oom(torch.cuda.OutOfMemoryError("x"))
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"))
    assert not is_oom(RuntimeError("shape mismatch")) and not is_oom(ValueError("out of memory"))


def test_chunks_keep_the_gauge_and_cover_every_frame_once():
    assert chunk_indices(5, 8) == [[0, 1, 2, 3, 4]]
    assert chunk_indices(16, 8) == [[0, *range(1, 8)], [0, *range(8, 15)], [0, 15]]
    assert chunk_indices(4, 2) == [[0, 1], [0, 2], [0, 3]]


def test_oom_once_shrinks_the_window_and_every_frame_is_accounted(seq):
    params = Params({"predictor": "simulated"})
    double = OomOncePredictorDouble(SimulatedPredictor(seq.ground_truth), fits=8)
    freed = []
    pipeline = make_pipeline(params, double, oom_guard=True)
    pipeline.predictor.free = lambda: freed.append(1)
    core = NodeCore(params, pipeline, ListSink(), mode="sync")
    for i in range(len(seq)):
        assert core.submit(seq[i])
    core.finish()
    d = core.diagnostics()
    assert double.raised == 1 and len(freed) == 1
    assert double.sizes[:3] == [16, 8, 8]  # the OOM window, then its halves (gauge + 7 frames each)
    assert max(double.sizes[1:]) == 8  # later windows go straight to 8 frames per forward
    assert d.oom_retries == 1 and d.forward_frames == 8
    assert d.frames_received == len(seq) == d.frames_processed + d.frames_dropped
    assert d.frames_processed == len(seq) and d.windows_rejected == 0


def test_oom_down_to_two_frames_rejects_the_window_and_counts_its_frames(seq):
    params = Params({"predictor": "simulated"})
    double = OomOncePredictorDouble(SimulatedPredictor(seq.ground_truth), fits=1, always=True)
    pipeline = make_pipeline(params, double, oom_guard=True)
    pipeline.predictor.free = lambda: None
    core = NodeCore(params, pipeline, ListSink(), mode="sync")
    for i in range(16):
        core.submit(seq[i])
    d = core.diagnostics()
    assert d.frames_processed == 0 and d.frames_dropped == 16 == d.frames_received
    assert list(d.drops) == ["window_rejected: predictor_error"] and d.oom_retries == 3  # 16 -> 8 -> 4 -> 2


def test_split_window_equals_the_whole_window_up_to_one_scale(seq):
    """Noise-free double: the merged chunks are the whole window's prediction in chunk 0's units."""
    frames = [seq[i] for i in range(12)]
    exact = SimulatedPredictor(seq.ground_truth, noise=SimNoise.zero())
    q = np.array([[20.0, 30.0], [64.0, 48.0], [100.0, 70.0]], np.float32)
    whole = exact.predict(frames, q, list(range(12)))
    guard = OomGuardPredictor(exact, free=lambda: None)
    guard.max_frames = 5
    merged = guard.predict(frames, q, list(range(12)))
    assert guard.split_windows == 1 and merged.num_frames == 12 and sorted(merged.depth) == list(range(12))
    ok = np.isfinite(whole.depth[0]) & (whole.depth[0] > 0)
    c = float(np.median(merged.depth[0][ok] / whole.depth[0][ok]))
    for i in range(12):
        np.testing.assert_allclose(merged.depth[i], c * whole.depth[i], rtol=1e-5)
        np.testing.assert_allclose(merged.T_cam_win[i, :3, :3], whole.T_cam_win[i, :3, :3], atol=1e-9)
        np.testing.assert_allclose(merged.T_cam_win[i, :3, 3], c * whole.T_cam_win[i, :3, 3], atol=1e-9)
    np.testing.assert_array_equal(merged.tracks[0], q)


def test_largest_window_from_free_memory():
    m = MemoryModel(fixed_bytes=1 * GIB, per_frame_bytes=GIB // 2)
    assert largest_window(10 * GIB, 4, 12, m) == 12  # 9 GiB usable: 16 frames need 9 GiB
    assert largest_window(6 * GIB, 4, 12, m) == 4  # 5.4 GiB usable: 8 frames
    assert largest_window(int(3.9 * GIB), 4, 12, m) == 1  # 3.5 GiB: 5 frames
    assert largest_window(2 * GIB, 4, 12, m) == 0  # not even the anchors
    assert largest_window(100 * GIB, 4, 12, m) == 12  # never more than asked
    assert fit_window_to_gpu(4, 12, lambda: 2 * GIB, m) == 1


def test_make_pipeline_caps_the_window_to_the_free_memory(seq):
    params = Params({"predictor": "simulated"})
    pred = SimulatedPredictor(seq.ground_truth)
    small = make_pipeline(params, pred, free_bytes=lambda: 5 * GIB)  # default model: 10 frames fit
    assert small.config.num_anchors == 4 and small.config.window_size == 4 + largest_window(5 * GIB, 4, 12)
    assert small.config.window_size < 16
    big = make_pipeline(params, pred, free_bytes=lambda: 80 * GIB)
    assert big.config.window_size == 16
    assert make_pipeline(params, pred).predictor is pred  # CPU: no wrapper, no cap


def test_guard_frees_through_the_predictors_own_release(seq):
    class Releasing(OomOncePredictorDouble):
        released = 0

        def release_memory(self) -> None:
            Releasing.released += 1

    double = Releasing(SimulatedPredictor(seq.ground_truth), fits=4)
    guard = OomGuardPredictor(double)
    out = guard.predict([seq[i] for i in range(6)], np.zeros((0, 2), np.float32), list(range(6)))
    assert Releasing.released == 1 and out.num_frames == 6 and guard.stats() == {"oom_retries": 1,
                                                                                 "forward_frames": 3}
