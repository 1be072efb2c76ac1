"""One conversion of an image message into a `types.Frame`, for the live node and the bag replay.

Works with any message family (rclpy classes, rosbags classes): sensor_msgs/Image or CompressedImage
(told apart by their fields) -> decoded (H, W, 3) uint8 RGB, the header's stamp and frame_id, and
the intrinsics the caller's `intrinsics(size_hw)` gives for the decoded size (None: the network
estimates K). Undecodable input raises `msgs.decode.ImageDecodeError` (its `reason` is the drop
reason the runtime counts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vggt_ros.types import Frame

from .decode import BitDepth, decode_any
from .stamps import stamp_ns

DEFAULT_OPTICAL_FRAME = "camera_optical_frame"  # for images without header.frame_id

Intrinsics = Callable[[tuple[int, int]], "np.ndarray | None"]
"""(H, W) of the decoded image -> K (3, 3) float64 at that resolution, or None."""


def image_to_frame(
    msg: Any, intrinsics: Intrinsics | None = None, bit_depth: BitDepth | None = None
) -> Frame:
    """Image or CompressedImage message -> Frame (stamp_ns from the header, optical frame_id).

    bit_depth: the stream's BitDepth (one per subscription / input topic) for 16-bit encodings."""
    rgb = decode_any(msg, bit_depth)
    size_hw = (int(rgb.shape[0]), int(rgb.shape[1]))
    K = intrinsics(size_hw) if intrinsics is not None else None
    return Frame(stamp_ns=stamp_ns(msg.header.stamp), rgb=rgb, K=K,
                 frame_id=msg.header.frame_id or DEFAULT_OPTICAL_FRAME)


def intrinsics_if_size(K: np.ndarray | None, info_hw: tuple[int, int] | None) -> Intrinsics:
    """An `intrinsics` that gives `K` for images of the CameraInfo's size (H, W) (or any size when the
    info has none, (0, 0)), else None."""

    def lookup(size_hw: tuple[int, int]) -> np.ndarray | None:
        return K if K is not None and info_hw in (tuple(size_hw), (0, 0)) else None

    return lookup
