"""DropQueue: bounded, both drop policies, thread wake-up on close and on wake()."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from vggt_ros.runtime.queue import DropQueue, QueueClosed


def test_latest_policy_drops_the_oldest_waiting_item():
    q: DropQueue[int] = DropQueue(3, "latest")
    dropped = [q.put(i) for i in range(7)]
    assert dropped == [None, None, None, 0, 1, 2, 3]
    assert len(q) == 3 and q.high_water == 3
    assert [q.get(0), q.get(0), q.get(0), q.get(0)] == [4, 5, 6, None]


def test_oldest_policy_drops_the_incoming_item():
    q: DropQueue[int] = DropQueue(2, "oldest")
    dropped = [q.put(i) for i in range(5)]
    assert dropped == [None, None, 2, 3, 4]
    assert q.drain() == [0, 1] and len(q) == 0


def test_bad_construction_is_refused():
    with pytest.raises(ValueError, match="maxsize"):
        DropQueue(0)
    with pytest.raises(ValueError, match="drop policy"):
        DropQueue(2, "random")


def ends_a_waiting_get(q: DropQueue[int], call: Callable[[], None]) -> bool:
    """True when `call` (from this thread) ends another thread's get(timeout=5) within 1 s, with None."""
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=5.0)))
    t.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    call()
    t.join(2.0)
    return not t.is_alive() and got == [None] and time.monotonic() - t0 < 1.0


def test_close_wakes_a_waiting_get_and_refuses_puts():
    q: DropQueue[int] = DropQueue(2)
    assert ends_a_waiting_get(q, q.close)
    with pytest.raises(QueueClosed):
        q.put(1)
    q.reopen()
    assert q.put(1) is None and q.get(0) == 1


def test_get_times_out_empty():
    q: DropQueue[int] = DropQueue(1)
    t0 = time.monotonic()
    assert q.get(timeout=0.05) is None
    assert 0.04 <= time.monotonic() - t0 < 1.0


def test_wake_ends_a_wait_once_and_is_never_lost():
    """wake() ends a waiting get() without an item; one that comes before the get() still ends the next
    wait (the live worker must not miss a prediction that finished while it was busy); then get() waits."""
    q: DropQueue[int] = DropQueue(2)
    q.wake()  # before the get: not lost
    t0 = time.monotonic()
    assert q.get(timeout=5.0) is None and time.monotonic() - t0 < 1.0
    t0 = time.monotonic()
    assert q.get(timeout=0.05) is None and time.monotonic() - t0 >= 0.04  # consumed: waits again
    assert ends_a_waiting_get(q, q.wake)
    q.put(7)
    q.wake()
    assert q.get(0) == 7 and q.get(0) is None  # an item comes first; the wake is spent with it
