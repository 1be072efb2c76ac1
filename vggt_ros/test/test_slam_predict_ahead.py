"""Predicting ahead (PipelineConfig.predict_ahead): a window's anchors are chosen before the previous
window changes the map, its prediction may run on another thread, and the result is the same as the
inline (replay) order; every frame is still accounted for, also across view breaks and resets."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor
from vggt_ros.slam.config import PipelineConfig
from vggt_ros.slam.pipeline import Pipeline
from vggt_ros.slam.updates import FramePose, WindowStats


@pytest.fixture(scope="module")
def seq():
    return make_sequence("loop", 220, width=128, height=96)


class ThreadNotingDouble:
    """TEST DOUBLE: the SimulatedPredictor, noting the thread and the anchor stamps of every call."""

    name = "thread-noting-simulated"

    def __init__(self, inner: SimulatedPredictor) -> None:
        self.inner = inner
        self.threads: list[str] = []
        self.first_stamps: list[int] = []

    def predict(self, frames, query_points, depth_for):
        self.threads.append(threading.current_thread().name)
        self.first_stamps.append(int(frames[0].stamp_ns))
        return self.inner.predict(frames, query_points, depth_for)


def _run(p: Pipeline, seq, n: int | None = None) -> list:
    out = []
    for i in range(n or len(seq)):
        out += p.push(seq[i])
    return out + p.flush()


def _poses(ups) -> dict[int, np.ndarray]:
    return {u.stamp_ns: u.T_map_cam for u in ups if isinstance(u, FramePose)}


def test_inline_and_threaded_prediction_give_the_same_map(seq):
    """The anchors are fixed by the window order, not by timing: a predictor thread changes nothing."""
    cfg = PipelineConfig(predict_ahead=True)
    inline = Pipeline(SimulatedPredictor(seq.ground_truth), cfg)
    ups_inline = _run(inline, seq)
    double = ThreadNotingDouble(SimulatedPredictor(seq.ground_truth))
    threaded = Pipeline(double, cfg)
    with ThreadPoolExecutor(1, thread_name_prefix="predict-ahead") as pool:
        threaded.set_executor(pool.submit)
        ups_threaded = _run(threaded, seq)
    a, b = _poses(ups_inline), _poses(ups_threaded)
    assert len(a) == len(seq) and a.keys() == b.keys()
    assert max(float(np.abs(a[s] - b[s]).max()) for s in a) == 0.0
    assert sum(t.startswith("predict-ahead") for t in double.threads) >= 10  # the windows after the first two
    assert threaded.counters.windows_predicted_ahead == inline.counters.windows_predicted_ahead >= 10
    assert threaded.in_flight == 0


def test_anchors_lag_one_window_and_stay_accurate(seq):
    """Window k is predicted against the keyframes that existed before window k-1 was stitched: its
    gauge is never a keyframe of window k-1, and the trajectory stays close to the serial one."""
    serial = Pipeline(SimulatedPredictor(seq.ground_truth), PipelineConfig())
    double = ThreadNotingDouble(SimulatedPredictor(seq.ground_truth))
    ahead = Pipeline(double, PipelineConfig(predict_ahead=True))
    ups_s, ups_a = _run(serial, seq), _run(ahead, seq)

    def gauge_from_previous_window(p: Pipeline, ups) -> list[bool]:
        """Per window from the third: is its gauge (anchor 0) a keyframe of the window before?"""
        kf_index = {k.keyframe_id: k.frame_index for k in p.keyframes.keyframes}
        stats = [u for u in ups if isinstance(u, WindowStats)][2:]
        return [kf_index[st.anchor_keyframe_ids[0]] >= 16 + 12 * (st.window_id - 2) for st in stats]

    assert not any(gauge_from_previous_window(ahead, ups_a))
    assert sum(gauge_from_previous_window(serial, ups_s)) >= 5  # serially it usually is
    a, s = _poses(ups_a), _poses(ups_s)
    assert a.keys() == s.keys() and len(a) == len(seq)
    drift = max(float(np.linalg.norm(a[k][:3, 3] - s[k][:3, 3])) for k in a)
    extent = float(np.ptp(np.stack([T[:3, 3] for T in s.values()]), axis=0).max())
    assert drift < 0.05 * extent  # the same trajectory, not a different map


class ViewBreakDouble:
    """TEST DOUBLE: the SimulatedPredictor, but in a window anchored before `break_stamp` no track
    reaches the new frames from `break_stamp` on (their view breaks off from the map: the window is
    split there and the rest starts a new segment)."""

    name = "view-break-simulated"

    def __init__(self, inner: SimulatedPredictor, break_stamp: int, num_new: int) -> None:
        self.inner, self.break_stamp, self.num_new = inner, break_stamp, num_new

    def predict(self, frames, query_points, depth_for):
        pred = self.inner.predict(frames, query_points, depth_for)
        A = len(frames) - self.num_new
        if A > 0 and frames[0].stamp_ns < self.break_stamp:
            for j in range(A, len(frames)):
                if frames[j].stamp_ns >= self.break_stamp:
                    pred.vis[j] = 0.0
        return pred


class _LazyFuture(Future):
    """Runs its job when the result is asked for: never done before (the slowest possible GPU)."""

    def __init__(self, fn) -> None:
        super().__init__()
        self._fn = fn

    def done(self) -> bool:
        return False

    def result(self, timeout=None):
        if self._fn is not None:
            self.set_result(self._fn())
            self._fn = None
        return super().result(timeout)


def test_a_view_break_requeues_the_windows_predicted_after_it(seq):
    """Window 5 (frames 64-75) breaks at frame 70 while windows 6 is predicted ahead: frames 70-75 and
    window 6's frames go back to the buffer in order and are predicted again; no frame is lost or
    emitted twice, and the poses stay in stamp order."""
    cfg = PipelineConfig(predict_ahead=True)
    double = ViewBreakDouble(SimulatedPredictor(seq.ground_truth), int(seq.stamps_ns[70]), cfg.num_new)
    p = Pipeline(double, cfg)
    p.set_executor(_LazyFuture)
    ups = _run(p, seq, 160)
    c = p.counters
    stamps = [u.stamp_ns for u in ups if isinstance(u, FramePose)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) == 160
    assert c.frames_accepted == 160 and sum(c.frames_dropped.values()) == 0
    assert c.ahead_requeued >= 1 and c.windows_predicted_ahead >= 5
    assert p.tracking.segments_started >= 2  # the frames after the break started a segment
    assert p.in_flight == 0


def test_reset_returns_the_frames_of_windows_in_flight(seq):
    p = Pipeline(SimulatedPredictor(seq.ground_truth), PipelineConfig(predict_ahead=True))
    p.set_executor(_LazyFuture)
    n = 16 + 12 * 4
    ups = []
    for i in range(n):
        ups += p.push(seq[i])
    assert p.in_flight == 2  # windows 3 and 4: finishing waits for the next window (lazy executor)
    emitted = len([u for u in ups if isinstance(u, FramePose)])
    refused = p.reset()
    assert [u.reason for u in refused] == ["reset"] * (n - emitted) and emitted == 16 + 12 * 2
    assert p.in_flight == 0 and not p.bootstrapped


def test_predict_after_keyframes_is_the_serial_map_with_predictions_beside_it(seq):
    """predict_after_keyframes: each window is launched (here on a thread) once the previous window's
    keyframes and anchor links are in the map, with the anchors a serial run chooses: the same poses as the
    serial run (older anchor included), bit for bit (a loop closes in this sequence too), and most windows
    predicted on the predictor thread, none predicted again."""
    serial = Pipeline(SimulatedPredictor(seq.ground_truth), PipelineConfig())
    ups_serial = _run(serial, seq)
    double = ThreadNotingDouble(SimulatedPredictor(seq.ground_truth))
    early = Pipeline(double, PipelineConfig(predict_after_keyframes=True))
    with ThreadPoolExecutor(1, thread_name_prefix="predict-after") as pool:
        early.set_executor(pool.submit)
        ups_early = _run(early, seq)
    assert early.counters.windows_predicted_ahead >= 12 and early.counters.ahead_repredicted == 0
    assert sum(t.startswith("predict-after") for t in double.threads) >= 12
    p_serial, p_early = _poses(ups_serial), _poses(ups_early)
    assert sorted(p_early) == sorted(p_serial) == [int(s) for s in seq.stamps_ns]
    for s in p_serial:
        np.testing.assert_array_equal(p_early[s], p_serial[s])


class _OffChoicePipeline(Pipeline):
    """A Pipeline whose launches after keyframes take, in window `off`, the anchors without the last one
    (what a loop closure or an anchor link after the launch can do to the serial choice)."""

    off = 7

    def _choose_anchors(self, window_id):
        c = super()._choose_anchors(window_id)
        if c is not None and window_id == self.off and len(c.anchors) > 2:
            c = dataclasses.replace(c, anchors=c.anchors[:-1], frames=c.frames[:-1])
        return c


def test_a_launch_that_is_not_the_serial_choice_is_predicted_again(seq):
    """When the window finishing before it leaves a different serial choice than the one launched, the
    launched prediction is thrown away and the window predicted with the serial anchors: the map stays the
    serial one, bit for bit, and the re-prediction is counted."""
    ups_serial = _run(Pipeline(SimulatedPredictor(seq.ground_truth), PipelineConfig()), seq)
    cfg = PipelineConfig(predict_after_keyframes=True)
    early = _OffChoicePipeline(SimulatedPredictor(seq.ground_truth), cfg)
    with ThreadPoolExecutor(1) as pool:
        early.set_executor(pool.submit)
        ups_early = _run(early, seq)
    assert early.counters.ahead_repredicted == 1 and early.counters.windows_predicted_ahead >= 12
    p_serial, p_early = _poses(ups_serial), _poses(ups_early)
    assert sorted(p_early) == sorted(p_serial)
    for s in p_serial:
        np.testing.assert_array_equal(p_early[s], p_serial[s])
