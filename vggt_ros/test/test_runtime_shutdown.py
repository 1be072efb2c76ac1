"""NodeCore's stop sequence (issue: Ctrl-C during a long window), ROS-free with predictor doubles.

A window that lasts as long as the test wants (it waits for an Event), a window that honours
cancellation (as runtime.cancel.CancellablePredictor makes the network do), and one that ignores it.
No test measures time: "stop() did not wait for the window" is shown by the window still running.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from vggt_ros.runtime.cancel import CancellablePredictor, WindowCancelled
from vggt_ros.runtime.core import SHUTDOWN, NodeCore
from vggt_ros.runtime.factory import make_pipeline
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.publishing import ListSink
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor

FIRST_WINDOW = 6  # window_anchors 2 + window_new_frames 4: the first window takes 6 frames
QUEUED = 5


class LongWindowDouble:
    """TEST DOUBLE: SimulatedPredictor whose window lasts until `release` is set (a 3 s CPU window, or
    longer); with `cancel` it stops early when that event is set, like the network under
    CancellablePredictor."""

    name = "long-window-simulated"

    def __init__(self, inner: SimulatedPredictor, cancel: threading.Event | None = None) -> None:
        self.inner, self.cancel = inner, cancel
        self.release = threading.Event()
        self.in_window = threading.Event()
        self.windows_started = 0

    def predict(self, frames, query_points, depth_for):
        self.windows_started += 1
        self.in_window.set()
        while not self.release.wait(0.01):
            if self.cancel is not None and self.cancel.is_set():
                raise WindowCancelled("cancelled by stop()")
        return self.inner.predict(frames, query_points, depth_for)


@pytest.fixture(scope="module")
def seq():
    return make_sequence("loop", 20, width=96, height=72)


def _running_core(seq, cancellable: bool, **params):
    p = Params({"queue_size": 32, "window_anchors": 2, "window_new_frames": 4, **params})
    cancel = threading.Event()
    pred = LongWindowDouble(SimulatedPredictor(seq.ground_truth), cancel if cancellable else None)
    sink = ListSink()
    core = NodeCore(p, make_pipeline(p, pred), sink, mode="live", cancel=cancel)
    core.start()
    for i in range(FIRST_WINDOW):
        assert core.submit(seq[i])
    assert pred.in_window.wait(10.0), "the first window did not start"
    assert core.wait_published(10.0)  # pipelined: what the worker handed over so far is out
    for i in range(FIRST_WINDOW, FIRST_WINDOW + QUEUED):  # queued behind the window in flight
        assert core.submit(seq[i])
    return core, pred, sink


def _wait_worker_gone(core: NodeCore) -> None:
    deadline = time.monotonic() + 20
    while core.worker_alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not core.worker_alive


def test_stop_cancels_a_long_window_drops_the_queue_and_starts_nothing(seq):
    core, pred, sink = _running_core(seq, cancellable=True)
    published = len(sink.items)
    assert core.stop(timeout=0.4) is True  # cancelled in time: the worker has ended
    assert not pred.release.is_set()  # the window never completed: stop() did not wait for it
    d = core.diagnostics()
    assert pred.windows_started == 1  # the queued frames never started a window
    assert d.drops == {SHUTDOWN: FIRST_WINDOW + QUEUED} and d.frames_dropped == FIRST_WINDOW + QUEUED
    assert d.frames_processed == 0 and d.windows_rejected == 0  # a cancelled window is no rejection
    assert len(sink.items) == published  # nothing published after stop()
    assert core.submit(seq[12]) is False and core.diagnostics().drops[SHUTDOWN] == FIRST_WINDOW + QUEUED + 1


def test_a_window_that_ignores_cancel_is_abandoned_once_and_publishes_nothing(seq, caplog):
    core, pred, sink = _running_core(seq, cancellable=False)
    published = len(sink.items)
    with caplog.at_level(logging.ERROR, logger="vggt_ros.runtime"):
        assert core.stop(timeout=0.2) is False
        assert pred.in_window.is_set() and not pred.release.is_set()  # still inside the window
        assert core.stop() is False  # no second wait, no second error line
    assert sum("abandoned" in r.getMessage() for r in caplog.records) == 1
    assert core.diagnostics().drops == {SHUTDOWN: QUEUED}  # the queue went at once
    pred.release.set()  # the window ends after the deadline
    _wait_worker_gone(core)
    d = core.diagnostics()
    assert len(sink.items) == published
    assert d.drops == {SHUTDOWN: FIRST_WINDOW + QUEUED} and d.frames_processed == 0
    assert pred.windows_started == 1


def test_ctrl_c_path_cancels_at_once_and_closes_the_output(seq):
    """What the node does on Ctrl-C: request_stop(cancel_window) + close_output, then one stop()."""
    core, pred, sink = _running_core(seq, cancellable=True)
    published = len(sink.items)
    core.request_stop(cancel_window=True)
    core.close_output()
    _wait_worker_gone(core)  # cancelled without waiting for any deadline
    assert core.stop() is True and not pred.release.is_set()
    assert len(sink.items) == published
    assert core.diagnostics().drops == {SHUTDOWN: FIRST_WINDOW + QUEUED}


def test_start_after_stop_resumes_with_new_frames(seq):
    core, pred, sink = _running_core(seq, cancellable=True)
    assert core.stop(timeout=0.4)
    pred.release.set()
    core.start()
    # the pipeline dropped the cancelled window: six new frames make the first window again
    for i in range(FIRST_WINDOW + QUEUED, 2 * FIRST_WINDOW + QUEUED):
        assert core.submit(seq[i])
    deadline = time.monotonic() + 20
    while core.diagnostics().frames_processed < FIRST_WINDOW and time.monotonic() < deadline:
        time.sleep(0.01)
    assert core.diagnostics().frames_processed == FIRST_WINDOW and pred.windows_started == 2
    assert core.stop(timeout=5.0)
    assert sink.topics()["odometry"] == FIRST_WINDOW


class _TorchCountingDouble:
    """TEST DOUBLE: runs a small torch network layer by layer; `after` sets the cancel event."""

    name = "torch-double"

    def __init__(self, event: threading.Event, cancel_after_layer: int) -> None:
        import torch

        self.torch = torch
        self.layers = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(6)])
        self.event, self.cancel_after = event, cancel_after_layer
        self.layers_run = 0
        for i, layer in enumerate(self.layers):
            layer.register_forward_hook(lambda m, a, o, i=i: self._ran(i))

    def _ran(self, i: int) -> None:
        self.layers_run += 1
        if i == self.cancel_after:
            self.event.set()

    def predict(self, frames, query_points, depth_for):
        with self.torch.no_grad():
            self.layers(self.torch.zeros(1, 4))
        return "done"


def test_cancellable_predictor_stops_the_network_at_the_next_layer():
    event = threading.Event()
    inner = _TorchCountingDouble(event, cancel_after_layer=2)
    pred = CancellablePredictor(inner, event)  # type: ignore[arg-type]
    with pytest.raises(WindowCancelled):
        pred.predict([], None, [])  # type: ignore[arg-type]
    assert inner.layers_run == 3  # layers 0, 1, 2 ran; layer 3's pre-hook raised
    event.clear()
    inner.cancel_after = 99
    assert pred.predict([], None, []) == "done"  # type: ignore[arg-type] and inner.layers_run == 3 + 6  # the hook was removed
    assert pred.name == "torch-double"
    event.set()
    with pytest.raises(WindowCancelled, match="before the window"):
        pred.predict([], None, [])  # type: ignore[arg-type]
