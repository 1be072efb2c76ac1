"""The one QoS table of every topic the project reads or writes (ROS-free).

The rclpy node builds its `QoSProfile`s from it (ros/node.py) and the bag writer its rosbag2
`offered_qos_profiles` (io/bag.py), so a topic has the same reliability, durability and depth live
and in a recorded bag. Kinds are the names `runtime.publishing.TopicSpec.qos` uses.

Depth and bursts: the node publishes the per-frame outputs (depth, depth/camera_info, odometry, /tf)
of a whole window at once when the window ends (window_new_frames messages per topic within
milliseconds). A KEEP_LAST publisher or subscriber whose depth is below that loses the oldest of the
burst, so `publisher_depth` derives the live depth from the window size; subscribers need a depth of
at least window_anchors + window_new_frames (16 with the defaults; RViz's default 5 is not enough).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

RELIABLE = "reliable"
BEST_EFFORT = "best_effort"
VOLATILE = "volatile"
TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class QosSpec:
    """A KEEP_LAST QoS profile: reliability, durability, history depth (messages)."""

    reliability: str
    durability: str
    depth: int


QOS: dict[str, QosSpec] = {
    # REP 2003 / rclpy qos_profile_sensor_data: camera streams in
    "sensor_data": QosSpec(BEST_EFFORT, VOLATILE, 5),
    # the node's outputs (rclpy's default depth; per-frame ones get publisher_depth live)
    "reliable_volatile": QosSpec(RELIABLE, VOLATILE, 10),
    # REP 2003 map-like topics (map, path): late joiners (RViz) get the last one
    "reliable_transient_local": QosSpec(RELIABLE, TRANSIENT_LOCAL, 1),
    # tf2_ros.TransformBroadcaster / StaticTransformBroadcaster
    "tf": QosSpec(RELIABLE, VOLATILE, 100),
    "tf_static": QosSpec(RELIABLE, TRANSIENT_LOCAL, 1),
}

# test mode's ground-truth subscriptions (odometry, depth, camera_info of a played sample bag)
GROUND_TRUTH_SUBSCRIPTION = QosSpec(RELIABLE, VOLATILE, 100)


def qos_spec(kind: str) -> QosSpec:
    """The table's entry, or ValueError naming the known kinds."""
    try:
        return QOS[kind]
    except KeyError:
        raise ValueError(f"no QoS kind {kind!r} (known: {', '.join(QOS)})") from None


def publisher_depth(window_size: int, base: int = 10) -> int:
    """Depth that holds one window's burst of per-frame messages: max(base, 2 * window_size).

    Twice the window: a subscriber that is still taking one window's burst when the next one ends
    (windows overlap in time on a fast GPU) loses nothing.
    """
    return max(int(base), 2 * int(window_size))


def live_qos(kind: str, window_size: int, per_frame: bool = False) -> QosSpec:
    """The live publisher's QoS of a topic of `kind`; per-frame topics (a window's burst) get
    `publisher_depth(window_size)` (one message per window, e.g. point clouds, keep the table's depth:
    a deep history of large clouds would only cost memory)."""
    spec = qos_spec(kind)
    if per_frame:
        return replace(spec, depth=publisher_depth(window_size, spec.depth))
    return spec
