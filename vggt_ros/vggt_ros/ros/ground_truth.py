"""Live ground truth for the simulated predictor (TEST MODE of the node), ROS-free.

`ros2 bag play` of a sample bag (io/sample.py) publishes the ground truth next to the images; the node
subscribes to those topics and feeds every message into a `GroundTruthCache`, whose `lookup` is the
`stamp_ns -> GroundTruth` that `SimulatedPredictor` needs. The message handling is the same as
`io.sample.read_ground_truth` (which reads the bag file instead): pose from the odometry, K from the
depth's CameraInfo, depth 32FC1 metres. Works with any message family (rclpy or rosbags classes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from vggt_ros.io.sample import (
    GT_DEPTH_INFO_TOPIC,
    GT_DEPTH_TOPIC,
    GT_ODOMETRY_TOPIC,
    TOPIC_TYPES,
    ground_truth_part,
)
from vggt_ros.sim.sequence import GroundTruth

log = logging.getLogger("vggt_ros.ground_truth")


class GroundTruthCache:
    """Thread-safe stamp -> GroundTruth table filled from ground-truth messages as they arrive.

    capacity: stamps kept (oldest go first); 600 = 20 s at 30 Hz, more than a window's span.
    wait_s: how long `lookup` waits for a stamp whose parts have not all arrived yet (the images and
    their ground truth are played together, so a window rarely waits at all).
    """

    def __init__(self, capacity: int = 600, wait_s: float = 1.0) -> None:
        self.capacity = int(capacity)
        self.wait_s = float(wait_s)
        self._parts: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()
        self._cond = threading.Condition()

    @staticmethod
    def topics() -> dict[str, str]:
        """Topic -> ROS type of the ground truth the sample bag carries."""
        return {t: TOPIC_TYPES[t] for t in (GT_ODOMETRY_TOPIC, GT_DEPTH_TOPIC, GT_DEPTH_INFO_TOPIC)}

    def add(self, topic: str, msg: Any) -> None:
        """Store one ground-truth message; ValueError on a message that cannot be ground truth."""
        if topic not in self.topics():
            raise ValueError(f"{topic} is not a ground-truth topic ({', '.join(self.topics())})")
        stamp, key, value = ground_truth_part(topic, msg)
        with self._cond:
            self._parts.setdefault(stamp, {})[key] = value
            self._parts.move_to_end(stamp)
            while len(self._parts) > self.capacity:
                self._parts.popitem(last=False)
            self._cond.notify_all()

    def feed(self, topic: str, msg: Any) -> bool:
        """`add` for a subscription callback: never raises; an unusable message is logged, False."""
        try:
            self.add(topic, msg)
        except Exception as exc:
            log.warning("ground truth on %s unusable: %s: %s", topic, type(exc).__name__, exc)
            return False
        return True

    def _complete(self, stamp: int) -> GroundTruth | None:
        e = self._parts.get(stamp)
        if e is None or not {"T", "K", "depth"} <= e.keys():
            return None
        return GroundTruth(stamp, e["T"], e["K"], e["depth"])

    def lookup(self, stamp: int) -> GroundTruth:
        """Ground truth at `stamp` (int ns), waiting up to wait_s for late parts; KeyError otherwise."""
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while True:
                gt = self._complete(int(stamp))
                if gt is not None:
                    return gt
                left = deadline - time.monotonic()
                if left <= 0:
                    raise KeyError(f"no complete ground truth at stamp {stamp} ns "
                                   f"(topics {', '.join(self.topics())})")
                self._cond.wait(left)

    def __len__(self) -> int:
        with self._cond:
            return len(self._parts)
