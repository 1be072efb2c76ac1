"""Rate limiting of repeated log lines (ROS-free): one line per key per period, with counts.

A camera at 30 Hz that sends 30 bad frames a second must not write 30 warning lines a second; the
first one of a kind goes out at once, the rest of the period is counted, and the next line that goes
out says how many were held back. Used by `NodeCore` (drops by reason) and by the ROS log bridge
(`runtime.logbridge`, every record forwarded to /rosout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable

THROTTLE_S = 5.0  # seconds between two log lines of one kind (the node's single value)
MAX_KEYS = 4096  # kinds remembered; the oldest are forgotten past this (bounded memory)


class Throttle:
    """`admit(key)` -> None (hold back) or the number of lines held back since the last admitted one.

    period_s: seconds between two admitted lines of one key (0 admits everything).
    clock: monotonic seconds; injectable so tests step time instead of sleeping.
    Thread-safe.
    """

    def __init__(self, period_s: float = THROTTLE_S, clock: Callable[[], float] = time.monotonic) -> None:
        if period_s < 0:
            raise ValueError(f"throttle period must be >= 0, got {period_s}")
        self.period_s = float(period_s)
        self.clock = clock
        self._last: dict[Hashable, float] = {}
        self._held: dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> int | None:
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            held = self._held.pop(key, 0)
            self._last.pop(key, None)
            self._last[key] = now  # re-inserted: dict order is the order of last admission
            while len(self._last) > MAX_KEYS:
                oldest = next(iter(self._last))
                del self._last[oldest]
                self._held.pop(oldest, None)
            return held

    def held(self, key: Hashable) -> int:
        """Lines of `key` held back since its last admitted one."""
        with self._lock:
            return self._held.get(key, 0)
