"""Per-frame ground truth of a sample bag (io/sample_bag.py): pose, K and depth by image stamp.

This feeds the SimulatedPredictor (the test double) in `vggt-ros replay --predictor simulated` and the
live node's test mode (ros/ground_truth.py parses the same messages with `ground_truth_part`).

`read_ground_truth(bag)` is lazy, so memory stays flat in the bag's length: one pass up front keeps
every stamp's pose (4x4) and K (3x3) and the log time of its depth image; depth images are read on
demand (io.bag.BagSeeker: one indexed seek into the bag by log time) and kept in a small LRU cache
(`cache_frames`, default 64: a window of 16 frames plus its anchors is looked up more than once).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vggt_ros.io.bag import BagSeeker, read_messages
from vggt_ros.io.sample_bag import GT_DEPTH_INFO_TOPIC, GT_DEPTH_TOPIC, GT_ODOMETRY_TOPIC
from vggt_ros.msgs.convert import pose_to_matrix
from vggt_ros.msgs.decode import camera_info_K
from vggt_ros.msgs.stamps import stamp_ns

if TYPE_CHECKING:  # vggt_ros.sim is imported lazily: only the simulated predictor needs it
    from vggt_ros.sim.sequence import GroundTruth

DEFAULT_CACHE_FRAMES = 64


def ground_truth_part(topic: str, msg: Any) -> tuple[int, str, np.ndarray]:
    """One ground-truth message -> (stamp_ns, key, value): 'T' (4, 4) T_world_cam from the odometry,
    'depth' (H, W) float32 metres from the unpadded 32FC1 image, 'K' (3, 3) from the depth CameraInfo.

    Works with any message family (rosbags or rclpy classes). ValueError on a message that cannot be
    ground truth (other topic, other encoding, wrong size, unusable K).
    """
    stamp = stamp_ns(msg.header.stamp)
    if topic == GT_ODOMETRY_TOPIC:
        return stamp, "T", pose_to_matrix(msg.pose.pose)
    if topic == GT_DEPTH_TOPIC:
        if msg.encoding != "32FC1" or int(msg.step) != 4 * int(msg.width):
            raise ValueError(f"{topic} at {stamp}: want unpadded 32FC1, got {msg.encoding}")
        raw = np.frombuffer(bytes(msg.data), dtype=">f4" if msg.is_bigendian else "<f4")
        if raw.size != int(msg.height) * int(msg.width):
            raise ValueError(f"{topic} at {stamp}: {raw.size} values for {msg.width}x{msg.height}")
        return stamp, "depth", raw.astype(np.float32).reshape(int(msg.height), int(msg.width))
    if topic == GT_DEPTH_INFO_TOPIC:
        K, reason = camera_info_K(msg)
        if K is None:
            raise ValueError(f"{topic} at {stamp}: unusable K ({reason})")
        return stamp, "K", K
    raise ValueError(f"{topic} is not a ground-truth topic")


class SampleGroundTruth:
    """`lookup(stamp_ns) -> GroundTruth` over a sample bag, depth read on demand (module docstring).

    KeyError for a stamp without all three parts. Thread-safe (one lock around the cache and reads).
    """

    def __init__(self, bag_path: str | Path, cache_frames: int = DEFAULT_CACHE_FRAMES) -> None:
        self.bag_path = Path(bag_path)
        self.cache_frames = max(1, int(cache_frames))
        self._T: dict[int, np.ndarray] = {}
        self._K: dict[int, np.ndarray] = {}
        self._depth_log_ns: dict[int, int] = {}  # image stamp -> log time of its depth message
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.depth_reads = 0  # bag reads of a depth image (cache misses), for tests and benches
        self._index()
        self._seeker = BagSeeker(self.bag_path)

    def _index(self) -> None:
        for m in read_messages(self.bag_path, [GT_ODOMETRY_TOPIC, GT_DEPTH_TOPIC, GT_DEPTH_INFO_TOPIC]):
            if m.message is None:
                continue
            if m.topic == GT_DEPTH_TOPIC:  # the depth itself is dropped here: only where to find it
                self._depth_log_ns.setdefault(stamp_ns(m.message.header.stamp), m.stamp_ns)
                continue
            stamp, key, value = ground_truth_part(m.topic, m.message)
            (self._T if key == "T" else self._K)[stamp] = value
        if not self.stamps:
            raise ValueError(f"{self.bag_path} has no complete ground truth on {GT_ODOMETRY_TOPIC}, "
                             f"{GT_DEPTH_TOPIC}")

    @property
    def stamps(self) -> list[int]:
        """Image stamps (ns) with pose, K and depth, sorted."""
        return sorted(set(self._T) & set(self._K) & set(self._depth_log_ns))

    def _depth(self, stamp: int) -> np.ndarray:
        hit = self._cache.get(stamp)
        if hit is not None:
            self._cache.move_to_end(stamp)
            return hit
        t = self._depth_log_ns[stamp]
        found: np.ndarray | None = None
        for m in self._seeker.at(GT_DEPTH_TOPIC, t):
            if m.message is not None and stamp_ns(m.message.header.stamp) == stamp:
                found = ground_truth_part(m.topic, m.message)[2]
                break
        if found is None:
            raise KeyError(f"depth at stamp {stamp} ns unreadable in {self.bag_path}")
        self.depth_reads += 1
        self._cache[stamp] = found
        while len(self._cache) > self.cache_frames:
            self._cache.popitem(last=False)
        return found

    def __call__(self, stamp_ns: int) -> GroundTruth:
        from vggt_ros.sim.sequence import GroundTruth as _GroundTruth

        s = int(stamp_ns)
        if s not in self._T or s not in self._K or s not in self._depth_log_ns:
            raise KeyError(f"no ground truth at stamp {stamp_ns} ns in {self.bag_path}")
        with self._lock:
            depth = self._depth(s)
        return _GroundTruth(s, self._T[s], self._K[s], depth)


def read_ground_truth(bag_path: str | Path,
                      cache_frames: int = DEFAULT_CACHE_FRAMES) -> Callable[[int], GroundTruth]:
    """Ground truth of a sample bag as `lookup(stamp_ns) -> GroundTruth` (KeyError for unknown stamps).

    Reads /ground_truth/odometry (T_world_cam), /ground_truth/depth (metres, NaN invalid) and
    /ground_truth/depth/camera_info (K); stamps are the header stamps. Lazy (SampleGroundTruth): memory
    holds the poses, the Ks and at most `cache_frames` depth images. ValueError when the bag has none.
    """
    return SampleGroundTruth(bag_path, cache_frames)
