"""Bounded, thread-safe input queue with a drop policy (the node's back-pressure valve).

'latest' (default): when full, the oldest waiting item is dropped so the newest always gets in
(latest-wins, what a live camera wants: stale frames are worth less than fresh ones).
'oldest': when full, the incoming item is dropped (first-come, keeps a contiguous run).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

DROP_POLICIES = ("latest", "oldest")


class QueueClosed(RuntimeError):
    """put() after close()."""


class DropQueue(Generic[T]):
    """FIFO of at most `maxsize` items; `put` never blocks and returns what it dropped (or None)."""

    def __init__(self, maxsize: int, policy: str = "latest") -> None:
        if maxsize < 1:
            raise ValueError(f"queue maxsize must be >= 1, got {maxsize}")
        if policy not in DROP_POLICIES:
            raise ValueError(f"drop policy must be one of {DROP_POLICIES}, got {policy!r}")
        self.maxsize = maxsize
        self.policy = policy
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._woken = False  # wake() before the next get(): it returns at once (no lost wake-up)
        self.high_water = 0  # most items ever waiting at once

    def put(self, item: T) -> T | None:
        """Add `item`; returns the dropped item when the queue was full (the oldest, or `item` itself)."""
        with self._cond:
            if self._closed:
                raise QueueClosed("queue is closed")
            dropped: T | None = None
            if len(self._items) >= self.maxsize:
                if self.policy == "oldest":
                    return item
                dropped = self._items.popleft()
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> T | None:
        """Oldest item, waiting up to `timeout` s; None on timeout, on wake(), or when closed and empty."""
        with self._cond:
            if not self._items and not self._closed and not self._woken:
                self._cond.wait(timeout)
            self._woken = False
            if self._items:
                return self._items.popleft()
            return None

    def wake(self) -> None:
        """End the current (or the next) get()'s wait without an item: another event needs its caller
        (the live worker: a window predicted ahead is done)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def drain(self) -> list[T]:
        """Remove and return everything waiting."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def close(self) -> None:
        """Refuse further puts and wake every waiting get()."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
