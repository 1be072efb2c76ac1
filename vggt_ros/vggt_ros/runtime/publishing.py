"""What the node publishes, on which topic, when: pipeline Updates -> `Publication`s.

The policy is transport-free. A `Publication` names its topic (docs/architecture.md#interface-contract,
relative to
the node's namespace; '/tf' and '/diagnostics' are absolute) and carries ROS-free data; a sink turns it
into a message with vggt_ros.msgs builders (`runtime.sinks`) and publishes it (rclpy) or writes it
(replay's output bag). Every transport therefore publishes the same things at the same moments.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from vggt_ros.geometry.se3 import invert_T
from vggt_ros.slam.updates import (
    DepthFrame,
    FramePose,
    KeyframeAdded,
    LoopClosure,
    MapChanged,
    WindowCloud,
    WindowStats,
)

from .stats import Diagnostics


@dataclass(frozen=True)
class TopicSpec:
    """One output topic: ROS 2 type name and QoS (REP 2003: map and path are latched for late RViz)."""

    name: str
    msgtype: str
    qos: str  # a msgs.qos.QOS kind: 'reliable_volatile' | 'reliable_transient_local' | 'tf'
    description: str
    per_frame: bool = False  # one message per frame, a window's worth at once (msgs.qos.live_qos)


TOPICS: dict[str, TopicSpec] = {t.name: t for t in (
    TopicSpec("depth", "sensor_msgs/msg/Image", "reliable_volatile",
              "32FC1 depth along optical z, map units, NaN invalid; frame_id = optical frame", True),
    TopicSpec("depth/camera_info", "sensor_msgs/msg/CameraInfo", "reliable_volatile",
              "intrinsics at the depth image's resolution", True),
    TopicSpec("points", "sensor_msgs/msg/PointCloud2", "reliable_volatile",
              "cloud of each accepted window, map frame"),
    TopicSpec("map", "sensor_msgs/msg/PointCloud2", "reliable_transient_local",
              "global voxel map, map frame, every map_publish_period"),
    TopicSpec("path", "nav_msgs/msg/Path", "reliable_transient_local", "camera path, map frame"),
    TopicSpec("odometry", "nav_msgs/msg/Odometry", "reliable_volatile",
              "camera pose per frame (header map, child = camera optical frame)", True),
    TopicSpec("keyframes", "vggt_ros_msgs/msg/Keyframe", "reliable_volatile", "each new keyframe"),
    TopicSpec("window_stats", "vggt_ros_msgs/msg/WindowStats", "reliable_volatile",
              "each window, accepted or rejected"),
    TopicSpec("loop_closures", "vggt_ros_msgs/msg/LoopClosure", "reliable_volatile",
              "each verified loop closure / relocalisation (path and map are republished after it)"),
    TopicSpec("/tf", "tf2_msgs/msg/TFMessage", "tf", "map -> camera (or map -> odom) per frame", True),
    TopicSpec("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "reliable_volatile",
              "runtime counters every diagnostics_period"),
)}


@dataclass(frozen=True)
class TransformOut:
    """One TF: T_parent_child maps child-frame points into the parent frame. (4, 4) float64."""

    parent: str
    child: str
    T_parent_child: np.ndarray
    stamp_ns: int


@dataclass(frozen=True)
class OdometryOut:
    """Pose of the camera (child) in the map (header frame); T_map_cam (4, 4)."""

    map_frame: str
    child_frame: str
    T_map_cam: np.ndarray
    stamp_ns: int


@dataclass(frozen=True)
class PathOut:
    """Every published camera pose so far, oldest first (FramePose.T_map_cam, map frame)."""

    map_frame: str
    poses: tuple[FramePose, ...]


@dataclass(frozen=True)
class KeyframeOut:
    """A keyframe with the alignment quality of the window that added it (for Keyframe.msg)."""

    map_frame: str
    keyframe: KeyframeAdded
    alignment_residual: float
    alignment_inliers: int


@dataclass(frozen=True)
class WindowStatsOut:
    """A window's stats plus the runtime's cumulative counters (for WindowStats.msg)."""

    map_frame: str
    stats: WindowStats
    total_time_s: float
    frames_dropped: int
    windows_rejected: int


@dataclass(frozen=True)
class Publication:
    """One message to publish: `topic` from TOPICS; `data` is one of the *Out types above, a DepthFrame
    (for 'depth' and 'depth/camera_info'), a WindowCloud ('points'), a MapChanged ('map', with map_frame
    in `frame_id`) or a Diagnostics ('/diagnostics')."""

    topic: str
    stamp_ns: int
    data: Any
    frame_id: str = ""


class Sink(Protocol):
    """Receives every publication, in order, from the worker thread (or the replay's thread)."""

    def publish(self, pub: Publication) -> None: ...


class ListSink:
    """Keeps every publication (tests, tools)."""

    def __init__(self) -> None:
        self.items: list[Publication] = []

    def publish(self, pub: Publication) -> None:
        self.items.append(pub)

    def topics(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.items:
            counts[p.topic] = counts.get(p.topic, 0) + 1
        return counts


TfLookup = Callable[[str, str, int], "np.ndarray | None"]
"""(target_frame, source_frame, stamp_ns) -> T_target_source (4, 4) or None when unavailable."""


def map_to_odom(T_map_cam: np.ndarray, T_odom_cam: np.ndarray) -> np.ndarray:
    """T_map_odom = T_map_cam @ inv(T_odom_cam): the correction slam_toolbox publishes as map -> odom."""
    return np.asarray(T_map_cam, float) @ invert_T(np.asarray(T_odom_cam, float))


def subsample(n: int, max_n: int) -> np.ndarray | None:
    """Deterministic, evenly spaced indices to keep at most `max_n` of `n` items (None = keep all)."""
    if n <= max_n:
        return None
    return np.linspace(0, n - 1, max_n).round().astype(np.int64)


def thin_cloud(cloud: WindowCloud, max_points: int) -> WindowCloud:
    idx = subsample(len(cloud.points), max_points)
    if idx is None:
        return cloud
    return WindowCloud(cloud.stamp_ns, cloud.window_id, cloud.points[idx], cloud.colors[idx],
                       cloud.confidence[idx])


@dataclass
class PathState:
    """The camera path so far (bounded: the oldest poses go first past `max_len`)."""

    max_len: int = 20_000
    poses: deque[FramePose] = field(default_factory=deque)

    def add(self, pose: FramePose) -> None:
        self.poses.append(pose)
        while len(self.poses) > self.max_len:
            self.poses.popleft()

    def clear(self) -> None:
        self.poses.clear()

    def correct(self, stamps_ns: np.ndarray, T_map_cam: np.ndarray) -> int:
        """Replace the poses whose stamps appear in `stamps_ns` (N,) by T_map_cam (N,4,4) (a pose-graph
        correction); returns how many were replaced."""
        index = {int(s): i for i, s in enumerate(stamps_ns)}
        n = 0
        for k, pose in enumerate(self.poses):
            i = index.get(int(pose.stamp_ns))
            if i is not None:
                self.poses[k] = dataclasses.replace(pose, T_map_cam=np.asarray(T_map_cam[i]))
                n += 1
        return n

    def snapshot(self, map_frame: str) -> PathOut:
        return PathOut(map_frame, tuple(self.poses))


__all__ = [
    "TOPICS", "TopicSpec", "Publication", "Sink", "ListSink", "TransformOut", "OdometryOut", "PathOut",
    "KeyframeOut", "WindowStatsOut", "TfLookup", "map_to_odom", "thin_cloud", "PathState", "Diagnostics",
    "DepthFrame", "MapChanged", "LoopClosure",
]
