"""NodeCore: live mode under a 30 Hz source with a slow predictor, sync mode, services, TF modes."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
from vggt_ros.geometry.se3 import invert_T, make_T, rot_z
from vggt_ros.runtime.core import NodeCore, resolve_save_path
from vggt_ros.runtime.factory import make_pipeline
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.publishing import ListSink, TransformOut
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor
from vggt_ros.slam.stitching import StitchInput, StitchResult, TrackStitcher


class SlowPredictorDouble:
    """TEST DOUBLE: the SimulatedPredictor made slower than real time by a fixed sleep per window."""

    def __init__(self, inner: SimulatedPredictor, sleep_s: float) -> None:
        self.inner, self.sleep_s, self.name = inner, sleep_s, "slow-simulated"
        self.calls = 0
        self.in_flight = threading.Event()

    def predict(self, frames, query_points, depth_for):
        self.calls += 1
        self.in_flight.set()
        time.sleep(self.sleep_s)
        out = self.inner.predict(frames, query_points, depth_for)
        self.in_flight.clear()
        return out


@pytest.fixture(scope="module")
def seq():
    """A slow lap (600 frames = 20 s), so windows with dropped frames in between still overlap."""
    return make_sequence("loop", 600, width=128, height=96)


def frames_of(seq, n):
    return [seq[i] for i in range(n)]


def started_live_core(seq, params, sink, frames):
    """A live NodeCore on the simulated predictor, started, every frame submitted."""
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), sink, mode="live")
    core.start()
    for f in frames:
        core.submit(f)
    return core


def wait_processed(core, n, timeout=30.0):
    """Wait until the live core has processed n frames and its publisher thread has published their
    outputs (pipelined: a frame counts as processed before its window's messages are out)."""
    deadline = time.monotonic() + timeout
    while core.diagnostics().frames_processed < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert core.wait_published(max(0.1, deadline - time.monotonic()))


def abandoned_worker_ends_silently(core, sink, timeout=10.0):
    """After a stop() that abandoned the worker: it ends within timeout and publishes nothing more;
    returns the diagnostics then."""
    published = len(sink.items)
    deadline = time.monotonic() + timeout
    while core.worker_alive and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not core.worker_alive and len(sink.items) == published
    return core.diagnostics()


def test_live_source_at_30hz_with_a_slow_predictor(seq):
    """A window of 12 new frames arrives every 0.4 s; the double needs 0.7 s per window: overload."""
    frames = frames_of(seq, 120)  # render before timing: the source must keep 30 Hz
    pred = SlowPredictorDouble(SimulatedPredictor(seq.ground_truth), 0.7)
    params = Params({"queue_size": 4, "predictor": "simulated"})
    pipeline = make_pipeline(params, pred)
    sink = ListSink()
    core = NodeCore(params, pipeline, sink, mode="live", predictor_name=pred.name,
                    clock_ns=lambda: time.time_ns())
    threads_before = threading.active_count()
    core.start()
    depth_seen = []
    t0 = time.monotonic()
    for i, f in enumerate(frames):  # the camera: 30 Hz from this thread, never blocked by the worker
        target = t0 + i / 30.0
        time.sleep(max(0.0, target - time.monotonic()))
        core.submit(f)
        depth_seen.append(len(core.queue))
    push_time = time.monotonic() - t0
    assert push_time < 120 / 30.0 + 0.5  # submit never blocked the source
    t_stop = time.monotonic()
    assert core.stop() is True
    assert time.monotonic() - t_stop < 0.7 + 1.0  # at most the window in flight, then joined
    assert not core.worker_alive and threading.active_count() == threads_before
    d = core.diagnostics()
    # bounded queue, counted drops
    assert max(depth_seen) <= 4 and d.queue_high_water <= 4
    assert d.drops.get("queue_full", 0) > 20
    pending = len(pipeline.window)
    # every frame is accounted for: published, dropped by reason, or still waiting in the partial window
    assert d.frames_received == 120
    assert d.frames_processed + d.frames_dropped + pending == 120
    assert d.frames_processed >= 24 and pred.calls >= 3
    # latency: a frame waits for its window and the 0.7 s predictor
    assert d.latency_p50_s is not None and d.latency_p50_s >= 0.7
    assert d.latency_p95_s >= d.latency_p50_s
    assert d.stamp_latency_p50_s is None or d.stamp_latency_p50_s > 0  # sim stamps are in the past
    assert d.input_rate_hz == pytest.approx(30.0, rel=0.2)
    counts = sink.topics()
    assert counts["odometry"] == counts["/tf"] == d.frames_processed
    assert counts.get("/diagnostics", 0) >= 2  # diagnostics_period 1 s of wall time over ~4 s
    # stop -> start resumes (lifecycle deactivate/activate)
    core.start()
    assert core.worker_alive
    assert core.stop(timeout=2.0)


def test_stop_while_a_window_is_in_flight_is_bounded(seq):
    """stop() waits once: a window longer than the timeout is abandoned, a second stop() does not wait
    again, and the abandoned window publishes nothing when it ends."""
    frames = frames_of(seq, 16)
    pred = SlowPredictorDouble(SimulatedPredictor(seq.ground_truth), 1.0)
    params = Params({"queue_size": 32, "window_anchors": 4, "window_new_frames": 12})
    sink = ListSink()
    core = NodeCore(params, make_pipeline(params, pred), sink, mode="live")
    core.start()
    for f in frames:
        core.submit(f)
    assert pred.in_flight.wait(5.0)
    assert core.stop(timeout=0.1) is False  # the worker is inside predict(): abandoned
    assert core.stop(timeout=5.0) is False  # the first deadline holds: no second wait
    d = abandoned_worker_ends_silently(core, sink)
    assert d.frames_processed == 0 and d.drops == {"shutdown": 16} and pred.calls == 1


def test_sync_mode_processes_every_frame_and_flushes(seq):
    frames = frames_of(seq, 34)  # 16 + 12 + a partial window of 6
    params = Params({"predictor": "simulated"})
    sink = ListSink()
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), sink, mode="sync")
    for f in frames:
        assert core.submit(f)
    before = core.diagnostics().frames_processed
    assert before == 28
    core.finish()
    d = core.diagnostics()
    assert d.frames_processed == 34 and d.frames_dropped == 0 and d.windows_rejected == 0
    topics = sink.topics()
    assert topics["depth"] == topics["depth/camera_info"] == 34
    assert topics["map"] >= 1 and sink.items[-1].topic == "/diagnostics"  # finish publishes both
    stamps = [p.stamp_ns for p in sink.items if p.topic == "odometry"]
    assert stamps == [f.stamp_ns for f in frames]


def test_a_standing_camera_is_published_at_one_pose_and_counted_on_diagnostics():
    """Sync replay of a camera that never moves (30 identical images): every frame after the first is held
    at the first one's pose refined by the mean of their estimates (slam.standstill), one keyframe,
    frames_held on /diagnostics. Without the hold the published pose moved 0.0021 map units per frame
    (median); held, the n-th frame moves it by 1/n of an estimate's error."""
    still = make_sequence("still", 30, width=128, height=96)
    params = Params({"predictor": "simulated"})
    sink = ListSink()
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(still.ground_truth)), sink, mode="sync")
    for i in range(len(still)):
        assert core.submit(still[i])
    core.finish()
    d = core.diagnostics()
    assert d.frames_processed == 30 and d.frames_held == 29 and d.keyframes == 1
    assert ("frames_held", "29") in d.key_values()
    poses = np.stack([p.data.T_map_cam for p in sink.items if p.topic == "odometry"])
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert len(poses) == 30 and np.median(steps) < 3e-4 and steps[10:].max() < 3e-4


def test_reset_and_refusals_are_counted(seq):
    frames = frames_of(seq, 20)
    params = Params()
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), ListSink())
    for f in frames[:16]:
        core.submit(f)
    core.submit(frames[5])  # older stamp: the pipeline refuses it
    small = type(frames[0])(frames[16].stamp_ns, frames[16].rgb[:50], None, frames[16].frame_id)
    core.submit(small)  # size change mid-stream
    core.count_drop("unsupported_encoding", "encoding 'weird16'")
    d = core.diagnostics()
    assert d.drops == {"non_monotonic_stamp": 1, "size_changed": 1, "unsupported_encoding": 1}
    assert d.frames_received == 19 and d.frames_processed == 16
    core.reset()
    # after reset the stream may start again, even with older stamps (a looping bag)
    for f in frames[:16]:
        core.submit(f)
    d = core.diagnostics()
    assert d.frames_processed == 32 and d.resets == 1 and d.frames_dropped == 3


def test_reset_counts_the_frames_buffered_in_the_pipeline(seq):
    frames = frames_of(seq, 20)
    params = Params()
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), ListSink())
    for f in frames:
        core.submit(f)  # 16 form the first window; 4 wait in the pipeline for the next one
    assert core.diagnostics().frames_processed == 16
    core.reset()
    d = core.diagnostics()
    assert d.drops == {"reset": 4}
    assert d.frames_received == d.frames_processed + d.frames_dropped == 20


def test_odom_tf_mode_publishes_map_to_odom(seq):
    frames = frames_of(seq, 16)
    T_odom_cam = make_T(rot_z(0.3), np.array([0.5, -0.2, 0.1]))
    asked = []

    def lookup(target, source, stamp_ns):
        asked.append((target, source))
        return None if stamp_ns == frames[3].stamp_ns else T_odom_cam

    params = Params({"publish_tf": "odom", "odom_frame": "odom"})
    sink = ListSink()
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), sink,
                    tf_lookup=lookup)
    for f in frames:
        core.submit(f)
    tfs = [p.data for p in sink.items if p.topic == "/tf"]
    odo = {p.stamp_ns: p.data for p in sink.items if p.topic == "odometry"}
    assert len(tfs) == 15 and core.diagnostics().tf_failures == 1
    assert asked[0] == ("odom", "camera_optical_frame")
    for tf in tfs:
        assert isinstance(tf, TransformOut) and (tf.parent, tf.child) == ("map", "odom")
        # map -> odom composed with odom -> cam gives the estimated map -> cam
        np.testing.assert_allclose(tf.T_parent_child @ T_odom_cam, odo[tf.stamp_ns].T_map_cam, atol=1e-12)
        np.testing.assert_allclose(tf.T_parent_child, odo[tf.stamp_ns].T_map_cam @ invert_T(T_odom_cam),
                                   atol=1e-12)


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "", ".", "..", ".hidden", "~user", "a\\b", "x" * 200,
                                  "ok/../../etc"])
def test_save_map_refuses_names_that_leave_the_directory(tmp_path, name):
    with pytest.raises(ValueError, match="refused"):
        resolve_save_path(tmp_path, name)


def test_save_map_writes_inside_the_directory_only(seq, tmp_path):
    frames = frames_of(seq, 16)
    root = tmp_path / "maps"
    params = Params({"map_save_dir": str(root)})
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), ListSink())
    for f in frames:
        core.submit(f)
    res = core.save_map("run_1")
    assert res.success, res.message
    assert res.path == str((root / "run_1").resolve()) and (root / "run_1").is_dir()
    assert res.num_keyframes >= 1 and res.num_points > 100
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    bad = core.save_map("link")
    assert not bad.success and "outside" in bad.message and not any(outside.iterdir())
    bad = core.save_map("../escape")
    assert not bad.success and not (tmp_path / "escape").exists()
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["link", "run_1"]


class FailingSinkDouble(ListSink):
    """TEST DOUBLE: a transport whose 'points' publisher raises (e.g. a serialisation bug)."""

    def publish(self, pub):
        if pub.topic == "points":
            raise RuntimeError("points publisher broke")
        super().publish(pub)


def test_a_failing_publisher_does_not_kill_the_live_worker(seq):
    frames = frames_of(seq, 28)
    params = Params({"queue_size": 64})
    sink = FailingSinkDouble()
    core = started_live_core(seq, params, sink, frames)
    wait_processed(core, 28)
    d = core.diagnostics()
    assert core.worker_alive and d.frames_processed == 28 and d.worker_errors == 2  # two windows' points
    assert sink.topics()["odometry"] == 28 and "points" not in sink.topics()
    assert sink.topics()["window_stats"] == 2  # publications after the failing one still go out
    assert core.stop()
    # sync mode (replay) must not hide a broken writer
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), FailingSinkDouble())
    with pytest.raises(RuntimeError, match="points publisher broke"):
        for f in frames[:16]:
            core.submit(f)


@pytest.mark.parametrize("idle_flush", [0.3, 0.0])
def test_live_processes_the_frames_left_pending_when_the_source_goes_quiet(seq, idle_flush):
    """A bag that ends (a camera that stops) leaves a partial window: after `idle_flush` s without a frame the
    live core processes it as the replay's finish() does; with 0 the frames wait for a full window."""
    frames = frames_of(seq, 22)  # 16 + a partial window of 6
    params = Params({"queue_size": 64, "idle_flush": idle_flush})
    sink = ListSink()
    core = started_live_core(seq, params, sink, frames)
    wait_processed(core, 16)
    time.sleep(1.0)  # quiet for longer than idle_flush
    assert core.wait_published(10.0)
    d = core.diagnostics()
    stamps = [p.stamp_ns for p in sink.items if p.topic == "odometry"]
    if idle_flush:
        assert d.frames_processed == 22 and d.idle_flushes == 1 and d.frames_dropped == 0
        assert stamps == [f.stamp_ns for f in frames]
    else:
        assert d.frames_processed == 16 and d.idle_flushes == 0
        assert stamps == [f.stamp_ns for f in frames[:16]]
    if idle_flush:  # the stream resumes: one more frame, then quiet again: flushed once more
        core.submit(seq[22])
        wait_processed(core, 23)
        assert core.diagnostics().idle_flushes == 2
    assert core.stop()


class _PreparingDouble:
    """TEST DOUBLE: the simulated predictor plus a prepare() that records which thread saw which frame."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.prepared: list[tuple[int, str]] = []

    def prepare(self, frame) -> None:
        self.prepared.append((int(frame.stamp_ns), threading.current_thread().name))

    def predict(self, frames, query_points, depth_for):
        return self.inner.predict(frames, query_points, depth_for)


@pytest.mark.parametrize("enabled", [True, False])
def test_live_frames_are_prepared_in_the_callers_thread(seq, enabled):
    """Live: each queued frame is handed to the predictor's prepare() in the submitting thread (beside
    the worker), never for a frame the queue dropped; prepare_frames false turns it off."""
    frames = frames_of(seq, 20)
    pred = _PreparingDouble(SimulatedPredictor(seq.ground_truth))
    params = Params({"queue_size": 32, "prepare_frames": enabled})
    core = NodeCore(params, make_pipeline(params, pred), ListSink(), mode="live")
    core.start()
    for f in frames:
        assert core.submit(f)
    assert core.stop(timeout=30.0)
    me = threading.current_thread().name
    expected = [(int(f.stamp_ns), me) for f in frames] if enabled else []
    assert pred.prepared == expected


class ThreadNotingSlowDouble(SlowPredictorDouble):
    """TEST DOUBLE: SlowPredictorDouble that notes the thread of every call."""

    def __init__(self, inner: SimulatedPredictor, sleep_s: float) -> None:
        super().__init__(inner, sleep_s)
        self.threads: list[str] = []

    def predict(self, frames, query_points, depth_for):
        self.threads.append(threading.current_thread().name)
        return super().predict(frames, query_points, depth_for)


def sync_trajectory(seq, params: Params, frames) -> tuple[np.ndarray, np.ndarray]:
    """The replay's (sync mode) trajectory of `frames` with the simulated predictor."""
    pipeline = make_pipeline(params, SimulatedPredictor(seq.ground_truth))
    sync = NodeCore(params, pipeline, ListSink(), mode="sync")
    for f in frames:
        sync.submit(f)
    sync.finish()
    return sync.pipeline.trajectory()


def live_with_predictor_thread(seq, params: Params, frames, before_start=None) -> NodeCore:
    """The live node over `frames` with a slow double (0.05 s per window); checks that every frame was
    published once and that windows were predicted on the vggt_ros-predict thread. Returns it stopped."""
    double = ThreadNotingSlowDouble(SimulatedPredictor(seq.ground_truth), 0.05)
    sink = ListSink()
    core = NodeCore(params, make_pipeline(params, double), sink, mode="live")
    if before_start is not None:
        before_start(core)
    core.start()
    for f in frames:
        core.submit(f)
    wait_processed(core, len(frames))
    assert core.stop(timeout=5.0)
    d = core.diagnostics()
    n = len(frames)
    assert d.frames_processed == n and d.frames_dropped == 0 and sink.topics()["odometry"] == n
    assert d.windows_predicted_ahead >= 5 and d.ahead_repredicted == 0
    assert sum(t.startswith("vggt_ros-predict") for t in double.threads) >= 5
    return core


def test_live_predict_ahead_predicts_on_its_thread_and_matches_the_replay(seq):
    """predict_ahead live: windows are predicted on the vggt_ros-predict thread beside the worker's
    stitch, every frame is published once, and the map is the replay's (anchors fixed by window order)."""
    frames = frames_of(seq, 100)  # 16 + 7 x 12: whole windows
    params = Params({"queue_size": 200, "predict_ahead": True})
    wakes = [0]

    def count_wakes(core: NodeCore) -> None:
        wake = core.queue.wake

        def counting_wake() -> None:
            wakes[0] += 1
            wake()

        core.queue.wake = counting_wake  # type: ignore[method-assign]

    core = live_with_predictor_thread(seq, params, frames, count_wakes)
    # each finished prediction woke the worker (no polling while a window is predicted ahead)
    assert wakes[0] == core.diagnostics().windows_predicted_ahead
    s_live, T_live = core.pipeline.trajectory()
    s_sync, T_sync = sync_trajectory(seq, params, frames)
    np.testing.assert_array_equal(s_live, s_sync)
    np.testing.assert_allclose(T_live, T_sync, atol=1e-9)


def test_live_predict_after_keyframes_matches_the_serial_replay(seq):
    """predict_after_keyframes live: windows predicted on the vggt_ros-predict thread once the previous
    window's keyframes are in, every frame published once, the map the serial replay's, bit for bit."""
    frames = frames_of(seq, 100)
    params = Params({"queue_size": 200, "predict_after_keyframes": True})
    core = live_with_predictor_thread(seq, params, frames)
    s_live, T_live = core.pipeline.trajectory()
    s_serial, T_serial = sync_trajectory(seq, Params(), frames)
    np.testing.assert_array_equal(s_live, s_serial)
    np.testing.assert_array_equal(T_live, T_serial)


@pytest.mark.parametrize("mode", ["predict_ahead", "predict_after_keyframes"])
def test_stop_with_a_window_predicted_ahead_is_bounded_and_publishes_nothing_late(seq, mode):
    """predict_ahead / predict_after_keyframes: the worker waits while the predictor thread runs a window;
    stop() waits once, abandons the worker still collecting it, and that window's frames become 'shutdown'
    drops."""
    frames = frames_of(seq, 40)  # window 0 serial (bootstrap); window 2 on the predictor thread
    pred = ThreadNotingSlowDouble(SimulatedPredictor(seq.ground_truth), 0.3)
    params = Params({"queue_size": 64, mode: True})
    sink = ListSink()
    core = NodeCore(params, make_pipeline(params, pred), sink, mode="live")
    core.start()
    for f in frames:
        core.submit(f)
    deadline = time.monotonic() + 20
    while not (pred.calls >= 3 and pred.in_flight.is_set()) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert pred.threads[-1].startswith("vggt_ros-predict")  # window 2 on the predictor thread
    assert core.stop(timeout=0.1) is False  # the worker waits for window 2: abandoned
    d = abandoned_worker_ends_silently(core, sink)
    assert d.frames_processed == 28 and d.drops == {"shutdown": 12}


class _EvenPinnedStitcher(TrackStitcher):
    """TrackStitcher that reports only the even window indices as pinned by PnP (poses unchanged)."""

    def stitch(self, inp: StitchInput) -> StitchResult:
        res = super().stitch(inp)
        return dataclasses.replace(res, pinned=frozenset(j for j in res.pinned or () if j % 2 == 0))


def test_repinned_gauges_are_counted_on_diagnostics():
    """Keyframes the stitcher reports network-posed are re-pinned when they gauge the next window
    (StitchConfig.repin_gauge): /diagnostics counts them as gauges_repinned."""
    seq = make_sequence("loop", 96, width=128, height=96)
    params = Params({"predictor": "simulated"})
    pipeline = make_pipeline(params, SimulatedPredictor(seq.ground_truth))
    core = NodeCore(params, pipeline, ListSink(), mode="sync")
    core.pipeline.stitcher = _EvenPinnedStitcher(core.pipeline.config.stitch)
    for i in range(len(seq)):
        assert core.submit(seq[i])
    core.finish()
    d = core.diagnostics()
    n = core.pipeline.counters.gauges_repinned
    assert n >= 1 and d.gauges_repinned == n
    assert ("gauges_repinned", str(n)) in d.key_values()


def test_anchor_links_are_counted_on_diagnostics():
    """Each window's older anchors measured again (StitchConfig.anchor_links, shipped) are pose-graph
    edges: /diagnostics counts them as anchor_links (and those refused again as anchor_links_refused)."""
    seq = make_sequence("loop", 96, width=128, height=96)
    params = Params({"predictor": "simulated"})
    pipeline = make_pipeline(params, SimulatedPredictor(seq.ground_truth))
    core = NodeCore(params, pipeline, ListSink(), mode="sync")
    for i in range(len(seq)):
        assert core.submit(seq[i])
    core.finish()
    d = core.diagnostics()
    c = core.pipeline.counters
    assert c.anchor_links >= 6 and d.anchor_links == c.anchor_links
    assert ("anchor_links", str(c.anchor_links)) in d.key_values()
    assert ("anchor_links_refused", str(c.anchor_links_refused)) in d.key_values()
