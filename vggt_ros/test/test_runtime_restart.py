"""A looped bag (`ros2 bag play --loop`): stamps jump back to the start; the node must keep working.

Issue: after the first loop every frame was refused as non_monotonic_stamp until the end. Now a stamp
more than clock_jump_back_threshold before the newest restarts the map (counted as clock_jump_back);
a small step back is still refused.
"""

from __future__ import annotations

import logging

import pytest
from vggt_ros.runtime.core import CLOCK_JUMP_BACK, NodeCore
from vggt_ros.runtime.factory import make_pipeline
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.publishing import ListSink
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor

N = 300  # 10 s at 30 Hz


@pytest.fixture(scope="module")
def seq():
    return make_sequence("loop", N, width=64, height=48)


def _core(seq, **params):
    p = Params({"predictor": "simulated", "map_publish_period": 0.0, **params})
    sink = ListSink()
    return NodeCore(p, make_pipeline(p, SimulatedPredictor(seq.ground_truth)), sink, mode="sync"), sink


def test_a_looped_bag_restarts_the_map_and_poses_keep_coming(seq, caplog):
    core, sink = _core(seq)
    for i in range(N):
        core.submit(seq[i])
    first = core.diagnostics().frames_processed
    pending = N - first  # frames waiting in the pipeline for their window when the loop restarts
    assert first == 16 + 12 * ((N - 16) // 12) and pending == 8
    with caplog.at_level(logging.WARNING, logger="vggt_ros.runtime"):
        for i in range(N):  # the same stamps again: the bag looped
            core.submit(seq[i])
    core.finish()
    d = core.diagnostics()
    assert d.clock_jump_back == 1 and sum("jumped back" in r.getMessage() for r in caplog.records) == 1
    assert d.drops == {CLOCK_JUMP_BACK: pending}  # nothing refused as non_monotonic_stamp
    assert d.frames_processed == first + N  # every frame of the second loop got a pose
    odo = [p.stamp_ns for p in sink.items if p.topic == "odometry"]
    assert odo[first:] == [seq[i].stamp_ns for i in range(N)]
    path = [p for p in sink.items if p.topic == "path"][-1].data
    assert len(path.poses) == N  # the path restarted with the new map


def test_a_small_step_back_is_still_refused_and_zero_disables_restarts(seq):
    core, _ = _core(seq)
    for i in range(40):
        core.submit(seq[i])
    core.submit(seq[40 - 15])  # 0.5 s back: out of order, not a restart
    d = core.diagnostics()
    assert d.drops == {"non_monotonic_stamp": 1} and d.clock_jump_back == 0
    off, _ = _core(seq, clock_jump_back_threshold=0.0)
    for i in list(range(40)) + list(range(10)):
        off.submit(seq[i])
    d = off.diagnostics()
    assert d.drops == {"non_monotonic_stamp": 10} and d.clock_jump_back == 0
