"""DaemonExecutor: the predictor thread of predict_ahead runs jobs in order, hands errors to the future,
and is a daemon (a stuck prediction cannot hold the process at exit)."""

from __future__ import annotations

import threading
import time

import pytest
from vggt_ros.runtime.executor import DaemonExecutor


def test_jobs_run_in_order_on_one_named_daemon_thread():
    ex = DaemonExecutor("test-predict")
    seen: list[tuple[int, str, bool]] = []

    def job(i: int):
        def run() -> int:
            t = threading.current_thread()
            time.sleep(0.01 * (3 - i))  # later jobs are quicker: order is still submission order
            seen.append((i, t.name, t.daemon))
            return i * 10
        return run

    futures = [ex.submit(job(i)) for i in range(3)]
    assert [f.result(timeout=5) for f in futures] == [0, 10, 20]
    assert seen == [(0, "test-predict", True), (1, "test-predict", True), (2, "test-predict", True)]
    ex.shutdown()
    deadline = time.monotonic() + 5
    while ex.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not ex.alive


def test_an_error_goes_to_the_future_and_the_thread_goes_on():
    ex = DaemonExecutor("test-predict")

    def boom() -> int:
        raise RuntimeError("out of memory")

    bad, good = ex.submit(boom), ex.submit(lambda: 7)
    with pytest.raises(RuntimeError, match="out of memory"):
        bad.result(timeout=5)
    assert good.result(timeout=5) == 7 and ex.alive
    ex.shutdown()
