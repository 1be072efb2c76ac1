"""SIGINT / SIGTERM as a polite stop request for the offline tools (replay, sample).

Inside `stop_on_signals()` the first SIGINT or SIGTERM only sets a flag: the tool finishes the frame in
hand, finalises what it has (a partial output set) and exits 128 + signal (130 for SIGINT, 143 for
SIGTERM) without a traceback. A second signal gets the default action (the process ends at once), so a
finalisation that hangs can still be stopped.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Call it to ask whether a stop was requested; `signum` names the signal (None: not stopped)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """128 + signal number, the shell's convention (130 SIGINT, 143 SIGTERM); 0 when not stopped."""
        return 128 + self.signum if self.signum is not None else 0

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        if self.signum is not None:  # the second signal: default action, now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Install the handlers (main thread only; elsewhere the request simply never fires)."""
    req = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield req
        return
    previous = {s: signal.signal(s, req.handle) for s in SIGNALS}
    try:
        yield req
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
