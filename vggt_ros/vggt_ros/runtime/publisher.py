"""`PublisherThread`: builds and publishes the runtime's publications beside the worker (live, pipelined).

The worker thread hands each batch of `Publication`s (one window's, one periodic tick's) to `submit`
and goes back to the next window's prediction while this thread turns them into messages and
publishes them (`MessageSink`: depth image, PointCloud2, TF, bag writing), so message building of
window k overlaps the network's forward of window k+1 (docs/architecture.md#threading-model).

Order: one FIFO, one consumer: publications leave in exactly the order they were submitted.
Back-pressure: at most `max_batches` batches wait; `submit` blocks beyond that (the worker then
stops taking frames and the input queue's drop policy applies, counted as usual), so memory stays
bounded. Errors: `publish` raising is handed to `on_error` and never stops the thread.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class PublisherThread(Generic[T]):
    """One daemon thread that calls `publish(item)` for every submitted item, in order."""

    def __init__(self, publish: Callable[[T], None], on_error: Callable[[BaseException], None],
                 max_batches: int = 8, name: str = "vggt_ros-publisher") -> None:
        if max_batches < 1:
            raise ValueError(f"max_batches must be >= 1, got {max_batches}")
        self._publish = publish
        self._on_error = on_error
        self.max_batches = max_batches
        self._batches: deque[Sequence[T]] = deque()
        self._cond = threading.Condition()
        self._busy = False  # a batch is being published
        self._closed = False
        self.published = 0
        self.high_water = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._closed

    def submit(self, items: Sequence[T]) -> None:
        """Queue one batch (blocks while max_batches wait); RuntimeError after close()."""
        if not items:
            return
        with self._cond:
            while len(self._batches) >= self.max_batches and not self._closed:
                self._cond.wait(0.05)
            if self._closed:
                raise RuntimeError("publisher thread is closed")
            self._batches.append(list(items))
            self.high_water = max(self.high_water, len(self._batches))
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted batch is published; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._batches and not self._busy, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Publish what is queued (up to `timeout`), then end the thread; True when it ended."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def discard(self) -> int:
        """Drop every batch still waiting (not the one being published); returns how many items."""
        with self._cond:
            n = sum(len(b) for b in self._batches)
            self._batches.clear()
            self._cond.notify_all()
            return n

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._batches and not self._closed:
                    self._cond.wait()
                if not self._batches:
                    return
                batch = self._batches.popleft()
                self._busy = True
                self._cond.notify_all()
            try:
                for item in batch:
                    try:
                        self._publish(item)
                        self.published += 1
                    except Exception as exc:  # one failing publication never stops the others
                        self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
