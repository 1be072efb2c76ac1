"""rclpy glue of the node: QoS profiles, parameter descriptors, message classes, timers, subscriptions, tf2.

Translations, no policy: the QoS table is msgs/qos.py, the parameter table runtime/params.py, the
message classes msgs/family.py, the input handling runtime/live_input.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage
from tf2_ros import Buffer, TransformException, TransformListener

from vggt_ros.msgs.convert import transform_to_matrix
from vggt_ros.msgs.family import RclpyFamily
from vggt_ros.msgs.qos import (
    GROUND_TRUTH_SUBSCRIPTION,
    RELIABLE,
    TRANSIENT_LOCAL,
    QosSpec,
    live_qos,
    qos_spec,
)
from vggt_ros.ros.ground_truth import GroundTruthCache
from vggt_ros.runtime.live_input import LiveInput
from vggt_ros.runtime.metric_input import depth_info_topics
from vggt_ros.runtime.params import SPECS
from vggt_ros.runtime.publishing import TopicSpec

log = logging.getLogger("vggt_ros.node")


def qos_profile(spec: QosSpec) -> QoSProfile:
    """rclpy QoSProfile (KEEP_LAST) of a msgs.qos table entry."""
    reliable = spec.reliability == RELIABLE
    return QoSProfile(
        depth=spec.depth, history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.durability == TRANSIENT_LOCAL
        else DurabilityPolicy.VOLATILE,
    )


def topic_qos(topic: TopicSpec, window_size: int) -> QoSProfile:
    """Live publisher QoS of an output topic (per-frame topics deep enough for a window's burst)."""
    return qos_profile(live_qos(topic.qos, window_size, topic.per_frame))


def descriptor_for(name: str) -> ParameterDescriptor:
    """rcl_interfaces/ParameterDescriptor of one parameter table entry (description, range, read_only)."""
    kw = SPECS[name].descriptor_kwargs()
    return ParameterDescriptor(
        name=kw["name"], type=kw["type"], description=kw["description"],
        additional_constraints=kw["additional_constraints"], read_only=kw["read_only"],
        integer_range=[IntegerRange(**r) for r in kw["integer_range"]],
        floating_point_range=[FloatingPointRange(**r) for r in kw["floating_point_range"]],
    )


def message_class(msgtype: str) -> Any:
    """'pkg/msg/Name' -> the rclpy message class (the builders' resolution)."""
    return RclpyFamily().cls(msgtype)


def steady_timer(node: Any, period_s: float, callback: Callable[[], None], group: Any = None) -> Any:
    """A timer on the steady (wall) clock: it fires with use_sim_time whether or not /clock runs."""
    return node.create_timer(period_s, callback, callback_group=group,
                             clock=Clock(clock_type=ClockType.STEADY_TIME))


def subscribe_inputs(node: Any, params: Mapping[str, Any], live_input: LiveInput, group: Any) -> list[Any]:
    """The image subscription (first) and, with use_camera_info, the CameraInfo one; sensor-data QoS
    (best effort also accepts reliable publishers)."""
    sensor = qos_profile(qos_spec("sensor_data"))
    compressed = params["image_transport"] == "compressed"
    subs = [node.create_subscription(
        CompressedImage if compressed else Image,
        params["compressed_image_topic"] if compressed else params["image_topic"],
        live_input.on_image, sensor, callback_group=group)]
    if params["use_camera_info"]:
        subs.append(node.create_subscription(CameraInfo, params["camera_info_topic"],
                                             live_input.on_camera_info, sensor, callback_group=group))
    return subs + subscribe_metric(node, params, live_input, group)


def subscribe_metric(node: Any, params: Mapping[str, Any], live_input: LiveInput, group: Any) -> list[Any]:
    """scale_source's sensor topics: the metric depth image and its CameraInfo candidates (sensor data
    QoS), or /tf and /tf_static (tf2's QoS) for the odom -> camera chain; none for 'none'."""
    metric = live_input.metric
    if params["scale_source"] == "depth" and params["metric_depth_topic"]:
        sensor = qos_profile(qos_spec("sensor_data"))
        subs = [node.create_subscription(Image, params["metric_depth_topic"], metric.on_depth, sensor,
                                         callback_group=group)]
        infos = depth_info_topics(params)  # type: ignore[arg-type]
        return subs + [node.create_subscription(CameraInfo, t, metric.on_depth_info, sensor,
                                                callback_group=group) for t in infos]
    if params["scale_source"] == "odometry":
        static = functools.partial(metric.on_tf, static=True)
        return [node.create_subscription(TFMessage, "/tf", metric.on_tf, qos_profile(qos_spec("tf")),
                                         callback_group=group),
                node.create_subscription(TFMessage, "/tf_static", static,
                                         qos_profile(qos_spec("tf_static")), callback_group=group)]
    return []


def subscribe_ground_truth(node: Any, cache: GroundTruthCache, group: Any) -> list[Any]:
    """TEST MODE: subscriptions that feed a played sample bag's ground truth into `cache`."""
    return [node.create_subscription(message_class(msgtype), topic, functools.partial(cache.feed, topic),
                                     qos_profile(GROUND_TRUTH_SUBSCRIPTION), callback_group=group)
            for topic, msgtype in cache.topics().items()]


class TfLookup:
    """tf2 buffer + listener of a node; `__call__(target, source, stamp_ns)` is NodeCore's tf_lookup:
    T_target_source (4, 4) at the image stamp, or None (NodeCore counts and logs the failure)."""

    def __init__(self, node: Any, timeout_s: float = 0.1) -> None:
        self.buffer = Buffer()
        self.listener = TransformListener(self.buffer, node)
        self.timeout = Duration(seconds=timeout_s)  # waited in the worker thread, not a callback

    def __call__(self, target: str, source: str, stamp_ns: int) -> np.ndarray | None:
        try:
            tf = self.buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns),
                                              timeout=self.timeout)
        except TransformException as exc:
            log.warning("TF %s -> %s unavailable: %s", target, source, exc)
            return None
        return transform_to_matrix(tf.transform)

    def close(self) -> None:
        self.listener.unregister()
