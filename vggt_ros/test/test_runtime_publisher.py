"""Pipelined live runtime (runtime/publisher.py): the publisher thread publishes the same messages in the
same order as the serial worker and the replay's sync mode, overlaps the next prediction, and keeps the
frame accounting exact."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from vggt_ros.runtime.core import NodeCore
from vggt_ros.runtime.factory import make_pipeline
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.publisher import PublisherThread
from vggt_ros.runtime.publishing import ListSink, Publication
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor

PERIODIC = {"map", "/diagnostics"}  # timed by wall clock in live mode, by stamps in sync mode


@pytest.fixture(scope="module")
def seq():
    return make_sequence("loop", 52, width=128, height=96)


def content(items: list[Publication]) -> list[tuple]:
    """Per-frame publications as comparable tuples (topic, stamp, the numbers they carry)."""
    out = []
    for p in items:
        if p.topic in PERIODIC:
            continue
        d = p.data
        if p.topic in ("odometry", "/tf"):
            T = d.T_parent_child if p.topic == "/tf" else d.T_map_cam
            key = tuple(np.round(np.asarray(T), 9).ravel())
        elif p.topic == "depth":
            key = (float(np.nansum(d.depth)),)
        elif p.topic == "path":
            key = tuple(q.stamp_ns for q in d.poses)
        else:
            key = ()
        out.append((p.topic, p.stamp_ns, key))
    return out


def run(seq, mode: str, pipelined: bool) -> tuple[ListSink, NodeCore]:
    params = Params({"predictor": "simulated", "queue_size": 1000, "drop_policy": "oldest",
                     "pipelined": pipelined})
    sink = ListSink()
    core = NodeCore(params, make_pipeline(params, SimulatedPredictor(seq.ground_truth)), sink, mode=mode)
    if mode == "live":
        core.start()
    for i in range(len(seq)):
        assert core.submit(seq[i])
    if mode == "live":
        deadline = time.monotonic() + 120
        while len(core.queue) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert core.stop(timeout=60.0)
    core.finish()
    return sink, core


def test_pipelined_live_publishes_what_sync_and_serial_publish(seq):
    sync_sink, sync_core = run(seq, "sync", pipelined=True)  # sync ignores `pipelined`
    serial_sink, _ = run(seq, "live", pipelined=False)
    piped_sink, piped_core = run(seq, "live", pipelined=True)
    ref = content(sync_sink.items)
    assert len(ref) > 3 * len(seq)  # odometry, tf, depth, depth info per frame at least
    assert content(serial_sink.items) == ref
    assert content(piped_sink.items) == ref
    d = piped_core.diagnostics()
    assert d.frames_received == len(seq) == d.frames_processed + d.frames_dropped
    assert d.frames_processed == sync_core.diagnostics().frames_processed == len(seq)
    assert d.worker_errors == 0 and piped_core._publisher is None  # closed by stop()


class GatedSink(ListSink):
    """Blocks each publication until the test opens the gate; records the publishing thread."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.threads: set[str] = set()

    def publish(self, pub: Publication) -> None:
        self.threads.add(threading.current_thread().name)
        self.gate.wait(30)
        super().publish(pub)


class CountingPredictor:
    def __init__(self, inner) -> None:
        self.inner, self.calls, self.name = inner, 0, "counting"

    def predict(self, frames, query_points, depth_for):
        self.calls += 1
        return self.inner.predict(frames, query_points, depth_for)


def test_next_window_is_predicted_while_the_previous_one_is_still_publishing(seq):
    """With the sink blocked, the worker still runs the second window's prediction (serial could not)."""
    params = Params({"predictor": "simulated", "queue_size": 1000, "drop_policy": "oldest"})
    pred = CountingPredictor(SimulatedPredictor(seq.ground_truth))
    sink = GatedSink()
    core = NodeCore(params, make_pipeline(params, pred), sink, mode="live")
    core.start()
    for i in range(28):  # 16 + 12: two windows
        core.submit(seq[i])
    deadline = time.monotonic() + 60
    while pred.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pred.calls == 2 and not sink.items  # window 2 predicted, window 1 not yet published
    sink.gate.set()
    assert core.stop(timeout=60.0)
    assert sink.threads == {"vggt_ros-publisher"}
    assert [p.stamp_ns for p in sink.items if p.topic == "odometry"] == [seq[i].stamp_ns for i in range(28)]


def test_publisher_thread_keeps_order_survives_errors_and_bounds_its_queue():
    seen: list[int] = []
    errors: list[BaseException] = []
    gate = threading.Event()

    def publish(x: int) -> None:
        gate.wait(10)
        if x == 3:
            raise ValueError("broken publisher")
        seen.append(x)

    pt: PublisherThread[int] = PublisherThread(publish, errors.append, max_batches=2)
    pt.submit([0, 1])
    blocked = threading.Thread(target=lambda: [pt.submit([i]) for i in range(2, 6)])
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive() and pt.high_water <= 2  # back-pressure: submit waits
    gate.set()
    blocked.join(10)
    assert pt.close(10)
    assert seen == [0, 1, 2, 4, 5] and len(errors) == 1 and pt.published == 5
    with pytest.raises(RuntimeError):
        pt.submit([9])
