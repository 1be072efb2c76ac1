"""The live node's input callbacks without rclpy: image and camera_info messages -> `NodeCore`.

`on_image` decodes any Image/CompressedImage (msgs.frame.image_to_frame, the replay's conversion, with
the stream's 16-bit depth msgs.decode.BitDepth), attaches the latest usable CameraInfo K for the
image's size, brings it to the stream's working size (slam.validation.FrameSizer, as the replay does:
a camera whose resolution changes is rescaled, not refused) and submits it. It never raises:
undecodable input is a counted drop by reason (NodeCore.count_drop), an unusable CameraInfo is
counted in `camera_info_rejected` (the network then estimates K). `metric` (runtime.metric_input)
takes the metric-scale sensor topics of params scale_source (the replay uses the same class). Logging
goes through Python logging (throttled by the ROS log bridge).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vggt_ros.msgs.decode import BitDepth, ImageDecodeError, camera_info_K
from vggt_ros.msgs.frame import image_to_frame
from vggt_ros.slam.validation import FrameSizer

from .core import NodeCore
from .metric_input import MetricInput

log = logging.getLogger("vggt_ros.input")


class LiveInput:
    """Input side of the node for one configured runtime (`core`)."""

    def __init__(self, core: NodeCore, use_camera_info: bool) -> None:
        self.core = core
        self.use_camera_info = use_camera_info
        self.bit_depth = BitDepth()
        # the size is decided over the first frames; live, no more than the queue takes in one burst
        window = int(core.params["window_anchors"]) + int(core.params["window_new_frames"])
        self.sizer = FrameSizer(min(window, int(core.params["queue_size"])))
        self.camera_info: Any = None
        self.camera_info_rejected: dict[str, int] = {}
        self.metric = MetricInput(core, core.params)  # scale_source's sensor input (depth or TF)

    def on_camera_info(self, msg: Any) -> None:
        self.camera_info = msg

    def clear(self) -> None:
        """Forget the camera's CameraInfo and the metric input's (unsubscribed)."""
        self.camera_info = None
        self.metric.depth_info = None

    def intrinsics(self, size_hw: tuple[int, int]) -> np.ndarray | None:
        """K of the latest CameraInfo for this image size, or None (the network estimates K)."""
        info = self.camera_info
        if info is None or not self.use_camera_info:
            return None
        try:
            K, reason = camera_info_K(info, size_hw)
        except (AttributeError, TypeError, ValueError) as exc:
            K, reason = None, f"unreadable ({type(exc).__name__})"
        if K is None:
            self.camera_info_rejected[reason] = self.camera_info_rejected.get(reason, 0) + 1
            log.warning("camera_info ignored (%s); the network estimates K", reason)
        return K

    def on_image(self, msg: Any) -> bool:
        """Decode, attach K, submit; True when the frame was accepted. Never raises."""
        core = self.core
        try:
            frame = image_to_frame(msg, self.intrinsics, self.bit_depth)
        except ImageDecodeError as exc:
            core.count_drop(exc.reason, str(exc))
            return False
        except Exception as exc:
            core.count_drop("decode_error", f"{type(exc).__name__}: {exc}")
            log.error("image dropped, decoder failed: %s: %s", type(exc).__name__, exc)
            return False
        try:
            ready = self.sizer.push(frame)
            return all([core.submit(f) for f in ready])
        except Exception as exc:  # the runtime counts its own drops; this is the last safety net
            core.count_drop("submit_error", f"{type(exc).__name__}: {exc}")
            log.error("image dropped: %s: %s", type(exc).__name__, exc)
            return False
