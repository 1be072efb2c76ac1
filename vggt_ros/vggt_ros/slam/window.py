"""FrameWindow: buffers accepted frames until a window's worth of new frames is ready.

A window is A anchor keyframes (already in the map; the newest is the window's frame 0 and
VGGT's gauge, its world = frame 0's camera) followed by N new frames. The first window of a
stream has no anchors: it takes `window_size` new frames and its frame 0 becomes the first
keyframe. Each pending frame leaves the buffer exactly once (processed, dropped or flushed),
which is what guarantees that no frame is emitted twice or lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from vggt_ros.types import Frame


@dataclass(frozen=True)
class PendingFrame:
    """An accepted frame with its stream index (0-based count of accepted frames); still_of: the index of
    the frame whose view it shows unchanged (slam.standstill), None when it moved."""

    index: int
    frame: Frame
    still_of: int | None = None


class FrameWindow:
    """FIFO of new frames; `ready(bootstrapped)` says when a window can be formed."""

    def __init__(self, window_size: int, num_anchors: int) -> None:
        if num_anchors < 1 or window_size <= num_anchors:
            raise ValueError(f"need window_size > num_anchors >= 1, got {window_size}, {num_anchors}")
        self.window_size = int(window_size)
        self.num_anchors = int(num_anchors)
        self._pending: list[PendingFrame] = []

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def pending(self) -> tuple[PendingFrame, ...]:
        return tuple(self._pending)

    def new_per_window(self, bootstrapped: bool) -> int:
        """New frames in a full window: window_size before the map exists, window_size - A after."""
        return self.window_size - self.num_anchors if bootstrapped else self.window_size

    def add(self, index: int, frame: Frame, still_of: int | None = None) -> None:
        if self._pending and index <= self._pending[-1].index:
            raise ValueError(f"frame index {index} not after {self._pending[-1].index}")
        self._pending.append(PendingFrame(index, frame, still_of))

    def ready(self, bootstrapped: bool) -> bool:
        return len(self._pending) >= self.new_per_window(bootstrapped)

    def take(self, n: int) -> list[PendingFrame]:
        """Remove and return the oldest n pending frames (fewer if fewer are pending)."""
        out, self._pending = self._pending[:n], self._pending[n:]
        return out

    def requeue(self, frames: list[PendingFrame]) -> None:
        """Put frames taken by `take` back at the front (the part of a window that was not used)."""
        if frames and self._pending and frames[-1].index >= self._pending[0].index:
            raise ValueError("requeued frames must precede the pending ones")
        self._pending = list(frames) + self._pending

    def merge(self, frames: list[PendingFrame]) -> None:
        """Put frames taken by `take` back in index order (a window formed before an earlier window's
        view break requeued older frames: they go first)."""
        self._pending = sorted(self._pending + list(frames), key=lambda p: p.index)

    def clear(self) -> list[PendingFrame]:
        """Remove and return every pending frame."""
        return self.take(len(self._pending))
