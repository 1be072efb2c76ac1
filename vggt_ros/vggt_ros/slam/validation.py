"""Door check of incoming frames: bad content is refused with a reason, never crashes the pipeline.

Reasons (stable strings, counted by the pipeline and reported in FrameRefused):
- "bad_type": not a Frame-like object with stamp_ns/rgb.
- "bad_image": rgb not an (H, W, 3) uint8 array, or an empty image.
- "size_changed": (H, W) differs from the stream's first accepted frame.
- "bad_intrinsics": K not a finite (3, 3) with fx, fy > 0 and K[2] == [0, 0, 1].
- "non_monotonic_stamp": stamp_ns not strictly greater than the last accepted frame's.
- "bad_stamp": stamp not an integer.
"""

from __future__ import annotations

import numpy as np

from vggt_ros.types import Frame


class FrameValidator:
    """Keeps the stream's image size and last stamp; `check(frame)` -> None (accept) or a reason."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None
        self.last_stamp_ns: int | None = None

    def reset(self) -> None:
        self.size = None
        self.last_stamp_ns = None

    def check(self, frame: object) -> str | None:
        if not isinstance(frame, Frame) and not (hasattr(frame, "rgb") and hasattr(frame, "stamp_ns")):
            return "bad_type"
        stamp = frame.stamp_ns
        if isinstance(stamp, bool) or not isinstance(stamp, (int, np.integer)):
            return "bad_stamp"
        rgb = frame.rgb
        if (
            not isinstance(rgb, np.ndarray)
            or rgb.dtype != np.uint8
            or rgb.ndim != 3
            or rgb.shape[2] != 3
            or rgb.shape[0] < 2
            or rgb.shape[1] < 2
        ):
            return "bad_image"
        hw = (int(rgb.shape[0]), int(rgb.shape[1]))
        if self.size is not None and hw != self.size:
            return "size_changed"
        K = getattr(frame, "K", None)
        if K is not None:
            Ka = np.asarray(K)
            if (
                Ka.shape != (3, 3)
                or not np.issubdtype(Ka.dtype, np.number)
                or not np.all(np.isfinite(Ka))
                or Ka[0, 0] <= 0
                or Ka[1, 1] <= 0
                or not np.allclose(Ka[2], [0.0, 0.0, 1.0])
            ):
                return "bad_intrinsics"
        if self.last_stamp_ns is not None and int(stamp) <= self.last_stamp_ns:
            return "non_monotonic_stamp"
        self.size = hw
        self.last_stamp_ns = int(stamp)
        return None
