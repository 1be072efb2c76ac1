"""Cancelling a window in flight (ROS-free): how stop() keeps shutdown_timeout with a slow network.

A VGGT window on a CPU takes tens of seconds; Ctrl-C or deactivate must not wait for it, and the
process must not exit while a thread is inside torch (that ends in `terminate called without an
active exception`). `CancellablePredictor` wraps any `types.Predictor`: while it predicts, a global
torch forward pre-hook raises `WindowCancelled` at the next module call once `event` is set (only
in the predicting thread), so the window ends within one layer's time. The pipeline turns the
exception into a rejected window, and `NodeCore` counts its frames as 'shutdown' drops.
Predictors without torch (the simulated test double) are cancelled before the window starts only.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from vggt_ros.types import Frame, Predictor, WindowPrediction


class WindowCancelled(RuntimeError):
    """Raised inside predict() when stop() cancels the window in flight."""


CANCELLED_MARK = WindowCancelled.__name__  # what a cancelled window's rejection reason contains


class CancellablePredictor:
    """`inner` with cooperative cancellation through `event` (see the module docstring).

    Everything else (name, load, unload, clear_cache, describe, ...) is the inner predictor's.
    """

    def __init__(self, inner: Predictor, event: threading.Event) -> None:
        self.inner = inner
        self.event = event
        self._threads: set[int] = set()  # threads inside predict() (a predictor thread and the worker)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return str(getattr(self.inner, "name", type(self.inner).__name__))

    def _hook(self, module: Any, args: Any) -> None:
        if self.event.is_set() and threading.get_ident() in self._threads:
            raise WindowCancelled(f"stopped inside {type(module).__name__}")

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray,
                depth_for: Sequence[int]) -> WindowPrediction:
        if self.event.is_set():
            raise WindowCancelled("stopped before the window started")
        torch = sys.modules.get("torch")  # only a predictor that imported torch can run torch modules
        handle = None
        me = threading.get_ident()
        if torch is not None:
            self._threads.add(me)
            handle = torch.nn.modules.module.register_module_forward_pre_hook(self._hook)
        try:
            return self.inner.predict(frames, query_points, depth_for)
        finally:
            if handle is not None:
                handle.remove()
            self._threads.discard(me)
