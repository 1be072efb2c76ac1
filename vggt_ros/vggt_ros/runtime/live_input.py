"""The live node's input callbacks without rclpy: image and camera_info messages -> `NodeCore`.

`on_image` decodes any Image/CompressedImage (msgs.frame.image_to_frame, the replay's conversion),
attaches the latest usable CameraInfo K for the image's size and submits the frame. It never raises:
undecodable input is a counted drop by reason (NodeCore.count_drop), an unusable CameraInfo is
counted in `camera_info_rejected` (the network then estimates K). Logging goes through Python logging
(throttled by the ROS log bridge).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from vggt_ros.msgs.decode import ImageDecodeError, camera_info_K
from vggt_ros.msgs.frame import image_to_frame

from .core import NodeCore

log = logging.getLogger("vggt_ros.input")


class LiveInput:
    """Input side of the node for one configured runtime (`core`)."""

    def __init__(self, core: NodeCore, use_camera_info: bool) -> None:
        self.core = core
        self.use_camera_info = use_camera_info
        self.camera_info: Any = None
        self.camera_info_rejected: dict[str, int] = {}

    def on_camera_info(self, msg: Any) -> None:
        self.camera_info = msg

    def clear(self) -> None:
        """Forget the camera's CameraInfo (unsubscribed)."""
        self.camera_info = None

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
            frame = image_to_frame(msg, self.intrinsics)
        except ImageDecodeError as exc:
            core.count_drop(exc.reason, str(exc))
            return False
        except Exception as exc:
            core.count_drop("decode_error", f"{type(exc).__name__}: {exc}")
            log.error("image dropped, decoder failed: %s: %s", type(exc).__name__, exc)
            return False
        try:
            return core.submit(frame)
        except Exception as exc:  # the runtime counts its own drops; this is the last safety net
            core.count_drop("submit_error", f"{type(exc).__name__}: {exc}")
            log.error("image dropped: %s: %s", type(exc).__name__, exc)
            return False
