"""Door check of incoming frames: bad content is refused with a reason, never crashes the pipeline.

Reasons (stable strings, counted by the pipeline and reported in FrameRefused):
- "bad_type": not a Frame-like object with stamp_ns/rgb.
- "bad_image": rgb not an (H, W, 3) uint8 array, or an empty image.
- "size_changed": (H, W) differs from the stream's first accepted frame (a source that passes frames
  through `FrameSizer` first never hits this: it rescales them to the stream's working size).
- "bad_intrinsics": K not a finite (3, 3) with fx, fy > 0 and K[2] == [0, 0, 1].
- "non_monotonic_stamp": stamp_ns not strictly greater than the last accepted frame's.
- "bad_stamp": stamp not an integer.
- "blank_image": a (nearly) uniform image (covered lens, black frame): no geometry to predict, so it is
  refused before it can spoil a window (is_blank).
- "repeated_image": the image is byte for byte the last accepted frame's (with refuse_repeats). A
  stalled driver re-sending its last buffer with new stamps: the frame shows where the camera was, not
  where it is, and posing it would publish a standing camera while the robot moves. Two exposures of a
  real sensor never match to the bit (shot and read noise); a noise-free simulated camera's do when it
  stands, so the check can be turned off (node parameter `refuse_repeated_images`).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import cv2
import numpy as np

from vggt_ros.geometry.image import is_blank
from vggt_ros.types import Frame

log = logging.getLogger("vggt_ros.frames")


class FrameValidator:
    """Keeps the stream's image size, last stamp and (refuse_repeats) a copy of the last accepted image;
    `check(frame)` -> None (accept) or a reason."""

    def __init__(self, refuse_repeats: bool = True) -> None:
        self.refuse_repeats = bool(refuse_repeats)
        self.size: tuple[int, int] | None = None
        self.last_stamp_ns: int | None = None
        self._last_rgb: np.ndarray | None = None  # a copy: a caller may reuse its buffer

    def reset(self) -> None:
        self.size = None
        self.last_stamp_ns = None
        self._last_rgb = None

    def _repeats_last(self, rgb: np.ndarray) -> bool:
        """rgb (the stream's size: size_changed is checked first) is byte for byte the last accepted image.
        A moving or noisy camera differs already on a 1/256 pixel sample (~10 us); only a match there pays
        the full comparison."""
        last = self._last_rgb
        return last is not None and bool(np.array_equal(rgb[::16, ::16], last[::16, ::16])
                                         and np.array_equal(rgb, last))

    def _remember(self, rgb: np.ndarray) -> None:
        """Copy rgb into the last-image buffer (allocated at the stream's first frame; reset drops it)."""
        if self._last_rgb is None:
            self._last_rgb = np.empty_like(rgb)
        np.copyto(self._last_rgb, rgb)

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
        if is_blank(rgb):
            return "blank_image"
        if self.refuse_repeats and self._repeats_last(rgb):
            return "repeated_image"
        self.size = hw
        self.last_stamp_ns = int(stamp)
        if self.refuse_repeats:
            self._remember(rgb)
        return None



def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of an image resized by (sx, sy) (new width = sx * old width), pixel centres at integer coords:
    u' = (u + 0.5) * sx - 0.5, so fx' = sx fx, cx' = (cx + 0.5) sx - 0.5 (and the same for y)."""
    Ks = np.array(K, dtype=np.float64, copy=True)
    Ks[0, :] *= sx
    Ks[1, :] *= sy
    Ks[0, 2] += 0.5 * sx - 0.5
    Ks[1, 2] += 0.5 * sy - 0.5
    return Ks


class FrameSizer:
    """A camera whose resolution changes mid-stream: every frame leaves at one working size.

    The working size is the most common (H, W) among the first `decide_after` frames (ties: the size
    seen last), so a few odd frames at the start cannot fix the size of the run; those first frames are
    held until then (or until `flush()`). Afterwards a frame of another size is resized to the working
    size (cv2.INTER_AREA when shrinking, INTER_LINEAR when enlarging) and its K scaled to match
    (scale_intrinsics). Each change of the incoming size is counted once (`changes`) with one log line;
    `frames_rescaled` counts the frames resized. Frames whose rgb is not an (H, W, 3) array pass
    unchanged (FrameValidator refuses them with a reason).
    """

    def __init__(self, decide_after: int = 16) -> None:
        self.decide_after = max(1, int(decide_after))
        self.size: tuple[int, int] | None = None
        self.changes = 0
        self.frames_rescaled = 0
        self._held: list[Frame] = []
        self._last_in: tuple[int, int] | None = None

    def push(self, frame: Frame) -> list[Frame]:
        """Take one frame; returns the frames ready to go on, in order (none while deciding)."""
        hw = self._size_of(frame)
        if hw is not None:
            if self._last_in is not None and hw != self._last_in:
                self.changes += 1
                log.warning("camera resolution changed %dx%d -> %dx%d at stamp %d; frames are rescaled to "
                            "the working size%s (K scaled)", self._last_in[1], self._last_in[0], hw[1], hw[0],
                            frame.stamp_ns, f" {self.size[1]}x{self.size[0]}" if self.size else "")
            self._last_in = hw
        if self.size is None:
            self._held.append(frame)
            if len(self._held) < self.decide_after:
                return []
            return self.flush()
        return [self._fit(frame)]

    def flush(self) -> list[Frame]:
        """Decide the working size now (end of stream) and release the held frames."""
        if self.size is None and self._held:
            sizes = [s for s in (self._size_of(f) for f in self._held) if s is not None]
            if sizes:
                counts = Counter(sizes)
                best = max(counts.values())
                self.size = next(s for s in reversed(sizes) if counts[s] == best)
        held, self._held = self._held, []
        return [self._fit(f) for f in held]

    @staticmethod
    def _size_of(frame: Frame) -> tuple[int, int] | None:
        rgb = getattr(frame, "rgb", None)
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[0] < 2 or rgb.shape[1] < 2:
            return None
        return int(rgb.shape[0]), int(rgb.shape[1])

    def _fit(self, frame: Frame) -> Frame:
        hw = self._size_of(frame)
        if hw is None or self.size is None or hw == self.size:
            return frame
        H, W = self.size
        interp = cv2.INTER_AREA if H * W < hw[0] * hw[1] else cv2.INTER_LINEAR
        rgb = np.ascontiguousarray(cv2.resize(frame.rgb, (W, H), interpolation=interp))
        K = frame.K
        if K is not None:
            K = scale_intrinsics(np.asarray(K), W / hw[1], H / hw[0])
        self.frames_rescaled += 1
        return replace(frame, rgb=rgb, K=K)
