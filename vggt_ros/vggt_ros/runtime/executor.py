"""`DaemonExecutor`: one daemon thread that runs submitted callables in order (the live node's
predictor thread for `predict_ahead` and `predict_after_keyframes`, docs/architecture.md#predicting-ahead).

Unlike concurrent.futures.ThreadPoolExecutor, whose threads the interpreter joins at exit, its thread is
a daemon: a prediction stuck past shutdown_timeout cannot hold the process (as the worker thread cannot).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonExecutor:
    """`submit(fn) -> Future`: fn runs on the thread `name`, one at a time, in submission order."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        f: Future[T] = Future()
        self._jobs.put((f, fn))
        return f

    def shutdown(self) -> None:
        """Run what was submitted, then end the thread (no wait)."""
        self._jobs.put(None)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            f, fn = job
            if not f.set_running_or_notify_cancel():
                continue
            try:
                f.set_result(fn())
            except BaseException as exc:  # handed to whoever waits on the future
                f.set_exception(exc)
