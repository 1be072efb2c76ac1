"""Sinks that turn `Publication`s into ROS messages with vggt_ros.msgs builders.

`MessageSink(builder, write)` is the one place where publications become messages, for every
transport: the replay passes a `write` that serialises into the output bag, the rclpy node one that
calls `publishers[topic].publish(msg)` (for '/tf' the message is a tf2_msgs/TFMessage: publish it on
/tf, or hand `msg.transforms` to a TransformBroadcaster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from typing import Any

from vggt_ros.msgs.builders import Diagnostic, MessageBuilder

from .publishing import (
    TOPICS,
    KeyframeOut,
    OdometryOut,
    PathOut,
    Publication,
    TransformOut,
    WindowStatsOut,
)
from .stats import Diagnostics

DIAGNOSTIC_NAME = "vggt_ros: runtime"

log = logging.getLogger("vggt_ros.sinks")

Writer = Callable[[str, Any, int], None]
"""(topic, message, stamp_ns) -> None; topic is a TOPICS key (relative, or absolute '/tf')."""


def diagnostic_status(d: Diagnostics, hardware_id: str = "") -> Diagnostic:
    """One DiagnosticStatus of the runtime's counters (level from Diagnostics.level)."""
    return Diagnostic(DIAGNOSTIC_NAME, d.level, d.message, hardware_id or d.predictor, dict(d.key_values()))


def build_message(builder: MessageBuilder, pub: Publication) -> Any:
    """The ROS message of one publication (message class family of `builder`)."""
    topic, data = pub.topic, pub.data
    if topic == "/tf":
        assert isinstance(data, TransformOut)
        return builder.tf_message([builder.transform_stamped(data.stamp_ns, data.parent, data.child,
                                                             data.T_parent_child)])
    if topic == "odometry":
        assert isinstance(data, OdometryOut)
        return builder.odometry(data.stamp_ns, data.T_map_cam, data.child_frame)
    if topic == "path":
        assert isinstance(data, PathOut)
        return builder.path(pub.stamp_ns, data.poses)
    if topic == "depth":
        fid = pub.frame_id or data.frame_id
        return builder.depth_image(data.stamp_ns, fid, data.depth)
    if topic == "depth/camera_info":
        h, w = data.depth.shape
        return builder.camera_info(data.stamp_ns, pub.frame_id or data.frame_id, data.K, w, h)
    if topic in ("points", "map"):
        return builder.point_cloud(data.stamp_ns, data.points, data.colors, data.confidence,
                                   pub.frame_id or None)
    if topic == "keyframes":
        assert isinstance(data, KeyframeOut)
        return builder.keyframe(data.keyframe, data.alignment_residual, data.alignment_inliers)
    if topic == "window_stats":
        assert isinstance(data, WindowStatsOut)
        return builder.window_stats(data.stats, data.frames_dropped, data.windows_rejected, data.total_time_s)
    if topic == "loop_closures":
        return builder.loop_closure(data)
    if topic == "/diagnostics":
        assert isinstance(data, Diagnostics)
        return builder.diagnostics(pub.stamp_ns, [diagnostic_status(data)])
    raise ValueError(f"unknown topic {topic!r} (contract: {', '.join(TOPICS)})")


class MessageSink:
    """Builds each publication's message and hands it to `write` (bag writer or rclpy publisher)."""

    def __init__(self, builder: MessageBuilder, write: Writer) -> None:
        self.builder = builder
        self.write = write
        self.counts: dict[str, int] = {}

    def publish(self, pub: Publication) -> None:
        msg = build_message(self.builder, pub)
        self.write(pub.topic, msg, pub.stamp_ns)
        self.counts[pub.topic] = self.counts.get(pub.topic, 0) + 1


class GuardedSink:
    """The live node's sink: never raises into the worker thread.

    Publications on `skip` topics are dropped ('/diagnostics': the node publishes it on its own wall
    timer); while `is_open()` is False (the rclpy context is shut down: Ctrl-C) nothing is published
    and nothing is logged (counted in `suppressed`); a failing publication is counted in `errors` and
    logged (the ROS log bridge throttles repeats).
    """

    def __init__(self, inner: Any, skip: Collection[str] = ("/diagnostics",),
                 is_open: Callable[[], bool] = lambda: True) -> None:
        self.inner = inner
        self.skip = frozenset(skip)
        self.is_open = is_open
        self.errors = 0
        self.suppressed = 0

    def publish(self, pub: Publication) -> None:
        if pub.topic in self.skip:
            return
        try:
            if not self.is_open():
                self.suppressed += 1
                return
            self.inner.publish(pub)
        except Exception as exc:
            self.errors += 1
            log.error("publishing %s failed: %s: %s", pub.topic, type(exc).__name__, exc)
