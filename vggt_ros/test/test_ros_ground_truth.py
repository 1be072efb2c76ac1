"""ros/ground_truth.py: the live ground-truth cache equals io.sample.read_ground_truth on the same bag."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from vggt_ros.io.bag import read_messages
from vggt_ros.io.sample import GT_DEPTH_TOPIC, GT_ODOMETRY_TOPIC, read_ground_truth, write_sample_bag
from vggt_ros.ros.ground_truth import GroundTruthCache
from vggt_ros.sim.sequence import make_sequence


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    seq = make_sequence("loop", 6, width=64, height=48)
    path = tmp_path_factory.mktemp("gt") / "sample.mcap"
    write_sample_bag(path, seq)
    return path, list(seq.stamps_ns)


def test_cache_fed_from_the_bag_matches_the_file_reader(bag: tuple[Path, list[int]]) -> None:
    path, stamps = bag
    cache = GroundTruthCache(wait_s=0.0)
    for m in read_messages(path, list(cache.topics())):
        cache.add(m.topic, m.message)
    reference = read_ground_truth(path)
    for s in stamps:
        a, b = cache.lookup(s), reference(s)
        assert a.stamp_ns == b.stamp_ns == s
        np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)
        np.testing.assert_array_equal(a.K, b.K)
        np.testing.assert_array_equal(np.isnan(a.depth), np.isnan(b.depth))
        np.testing.assert_array_equal(np.nan_to_num(a.depth), np.nan_to_num(b.depth))
        assert a.depth.shape == (48, 64)
    with pytest.raises(KeyError, match="no complete ground truth"):
        cache.lookup(stamps[-1] + 1)


def test_lookup_waits_for_a_late_part_and_capacity_bounds_memory(bag: tuple[Path, list[int]]) -> None:
    path, stamps = bag
    msgs = list(read_messages(path, list(GroundTruthCache.topics())))
    small = GroundTruthCache(capacity=3)
    for m in msgs:
        small.add(m.topic, m.message)
    assert len(small) == 3  # only the newest 3 stamps are kept
    with pytest.raises(KeyError):
        small.lookup(stamps[0])

    def stamp_of(m: object) -> int:
        t = m.message.header.stamp  # type: ignore[attr-defined]
        return int(t.sec) * 10**9 + int(t.nanosec)

    first = [m for m in msgs if stamp_of(m) == stamps[0]]
    depth = next(m for m in first if m.topic == GT_DEPTH_TOPIC)
    cache = GroundTruthCache(wait_s=2.0)
    for m in first:
        if m is not depth:
            cache.add(m.topic, m.message)
    timer = threading.Timer(0.3, lambda: cache.add(depth.topic, depth.message))
    t0 = time.monotonic()
    timer.start()
    gt = cache.lookup(stamps[0])  # waits for the depth that arrives 0.3 s later
    assert 0.2 < time.monotonic() - t0 < 2.0 and gt.stamp_ns == stamps[0]


def test_bad_ground_truth_is_refused(bag: tuple[Path, list[int]]) -> None:
    path, _ = bag
    cache = GroundTruthCache()
    depth = next(m.message for m in read_messages(path, [GT_DEPTH_TOPIC]))
    depth.encoding = "16UC1"
    with pytest.raises(ValueError, match="32FC1"):
        cache.add(GT_DEPTH_TOPIC, depth)
    odom = next(m.message for m in read_messages(path, [GT_ODOMETRY_TOPIC]))
    with pytest.raises(ValueError, match="not a ground-truth topic"):
        cache.add("/camera/image_raw", odom)
