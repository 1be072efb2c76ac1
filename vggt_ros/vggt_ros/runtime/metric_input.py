"""Metric-scale sensor input without rclpy: depth image + CameraInfo, or /tf + /tf_static -> NodeCore.

The live node's subscriptions and the replay's bag reader call the same methods (one code path):
`on_depth_info`, `on_depth` (scale_source 'depth') and `on_tf(msg, static)` (scale_source 'odometry':
the chain odom_frame -> ... -> camera optical frame is composed from the latest transforms, each
dynamic transform of the chain giving one T_odom_cam sample at its stamp). Nothing here raises: an
unusable message is counted in `rejected` by reason; the pipeline counts what it rejects itself
(Pipeline.metric.rejected). docs/architecture.md#scale.
"""

from __future__ import annotations

import logging
import posixpath
from collections import Counter
from typing import Any

import numpy as np

from vggt_ros.msgs.convert import transform_to_matrix
from vggt_ros.msgs.decode import ImageDecodeError, camera_info_K, decode_depth_m
from vggt_ros.msgs.stamps import stamp_ns

from .core import NodeCore
from .params import Params
from .throttle import THROTTLE_S, Throttle

log = logging.getLogger("vggt_ros.metric_input")


def depth_info_topics(params: Params) -> list[str]:
    """CameraInfo topics of metric_depth_topic: metric_depth_info_topic when set, else image_transport's
    '<topic>/../camera_info' and then '<topic>/camera_info' (what the sample bag's ground truth uses)."""
    if params["metric_depth_info_topic"]:
        return [str(params["metric_depth_info_topic"])]
    topic = str(params["metric_depth_topic"])
    if not topic:
        return []
    sibling = posixpath.join(posixpath.dirname(topic.rstrip("/")), "camera_info")
    return [sibling, topic.rstrip("/") + "/camera_info"]


class TfChain:
    """Latest transform per child frame (its parent and T_parent_child); composes root -> leaf."""

    def __init__(self) -> None:
        self.parent: dict[str, tuple[str, np.ndarray]] = {}

    def set(self, parent: str, child: str, T_parent_child: np.ndarray) -> None:
        self.parent[child] = (parent, T_parent_child)

    def lookup(self, root: str, leaf: str) -> np.ndarray | None:
        """T_root_leaf, or None when leaf does not hang below root."""
        T = np.eye(4)
        frame = leaf
        for _ in range(64):
            if frame == root:
                return T
            link = self.parent.get(frame)
            if link is None:
                return None
            frame, T = link[0], link[1] @ T
        return None  # a cycle


class MetricInput:
    """Metric sensor messages of one configured runtime (`core`), by params['scale_source']."""

    def __init__(self, core: NodeCore, params: Params) -> None:
        self.core = core
        self.source = str(params["scale_source"])
        self.odom_frame = str(params["odom_frame"])
        self.camera_frame = str(params["camera_frame"])
        self.depth_info: Any = None
        self.tf = TfChain()
        self.rejected: Counter[str] = Counter()
        self._log = Throttle(THROTTLE_S)

    def _reject(self, reason: str, detail: str = "") -> None:
        """Count; warn at most once per reason per THROTTLE_S, with the count."""
        self.rejected[reason] += 1
        if self._log.admit(reason) is not None:
            log.warning("metric sensor input rejected (%s)%s; %d so far", reason,
                        f": {detail}" if detail else "", self.rejected[reason])

    def on_depth_info(self, msg: Any) -> None:
        self.depth_info = msg

    def on_depth(self, msg: Any) -> None:
        """A metric depth image: decoded (16UC1 mm / 32FC1 m), K from its CameraInfo, submitted."""
        if self.source != "depth":
            return
        try:
            depth = decode_depth_m(msg)
            stamp = stamp_ns(msg.header.stamp)
        except ImageDecodeError as exc:
            self._reject(f"depth_{exc.reason}", str(exc))
            return
        except Exception as exc:  # a malformed message must not stop the input
            self._reject("depth_unreadable", f"{type(exc).__name__}: {exc}")
            return
        if self.depth_info is None:
            self._reject("no_depth_camera_info")
            return
        try:
            K, why = camera_info_K(self.depth_info, depth.shape)
        except (AttributeError, TypeError, ValueError) as exc:
            K, why = None, f"unreadable ({type(exc).__name__})"
        if K is None:
            self._reject("depth_camera_info_" + why.split(" ")[0], why)
            return
        self.core.submit_metric_depth(stamp, depth, K)

    def on_tf(self, msg: Any, static: bool = False) -> None:
        """A TFMessage: update the chain; each dynamic transform that completes odom -> camera gives a
        T_odom_cam sample at its stamp."""
        if self.source != "odometry":
            return
        try:
            items = [(str(t.header.frame_id), str(t.child_frame_id), stamp_ns(t.header.stamp),
                      transform_to_matrix(t.transform)) for t in msg.transforms]
        except Exception as exc:
            self._reject("tf_unreadable", f"{type(exc).__name__}: {exc}")
            return
        for parent, child, stamp, T in items:
            if not np.all(np.isfinite(T)):
                self._reject("tf_not_finite", f"{parent} -> {child}")
                continue
            self.tf.set(parent, child, T)
            if static:
                continue
            camera = self.camera_frame or self.core.camera_frame_seen
            if not camera:
                continue
            T_odom_cam = self.tf.lookup(self.odom_frame, camera)
            if T_odom_cam is not None and self._on_chain(child, camera):
                self.core.submit_odometry(stamp, T_odom_cam)

    def _on_chain(self, frame: str, camera: str) -> bool:
        """True when `frame` lies on the chain from camera up to the odom frame."""
        f = camera
        for _ in range(64):
            if f == frame:
                return True
            link = self.tf.parent.get(f)
            if link is None or f == self.odom_frame:
                return False
            f = link[0]
        return False

    def as_dict(self) -> dict[str, int]:
        return dict(self.rejected)
