"""Python logging -> the node's ROS logger (/rosout), safe under rclpy's per-call-site rules.

rclpy's `RcutilsLogger` keys each logging call by its call site (function, file, line, bytecode
offset) and raises `ValueError` when one call site logs at another severity, under another logger
name or with other throttle settings than the first time ("Logger severity cannot be changed between
calls"). A line like `(log.info if ok else log.warning)(text)` therefore kills the caller the second
time. So the node never calls its ROS logger itself:

- everything (runtime, slam, model and the node's own lines) logs with Python `logging` under the
  'vggt_ros' logger; `RosLogHandler` forwards each record through `forward()`, which has ONE call
  line per severity and passes no keyword arguments;
- repeated lines are throttled here (`runtime.throttle`), never with rclpy's `throttle_duration_sec`.

The ROS logger is anything with debug/info/warning/error(text) methods, so this module is tested
without ROS 2 against a double that enforces rclpy's rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from .throttle import THROTTLE_S, Throttle

ROOT_LOGGER = "vggt_ros"


class RosLogger(Protocol):
    """The methods of rclpy's RcutilsLogger that the bridge uses."""

    def debug(self, message: str) -> Any: ...

    def info(self, message: str) -> Any: ...

    def warning(self, message: str) -> Any: ...

    def error(self, message: str) -> Any: ...


def forward(ros_logger: RosLogger, levelno: int, text: str) -> None:
    """Log `text` at the ROS severity of a Python level. One call line per severity (rclpy's rule)."""
    if levelno >= logging.ERROR:
        ros_logger.error(text)
    elif levelno >= logging.WARNING:
        ros_logger.warning(text)
    elif levelno >= logging.INFO:
        ros_logger.info(text)
    else:
        ros_logger.debug(text)


def throttle_key(record: logging.LogRecord) -> tuple[str, int, str, str]:
    """What makes two records 'the same line': logger, level, template and its first string argument
    (the reason in "dropping frame (%s)", so different reasons are throttled separately)."""
    args = record.args if isinstance(record.args, tuple) else ()
    first = args[0] if args and isinstance(args[0], str) else ""
    return record.name, record.levelno, str(record.msg), first


class RosLogHandler(logging.Handler):
    """Forwards Python log records to a ROS logger, at most one line per kind per `period_s`."""

    def __init__(self, ros_logger: RosLogger, period_s: float = THROTTLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.ros_logger = ros_logger
        self.throttle = Throttle(period_s, clock)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            held = self.throttle.admit(throttle_key(record))
            if held is None:
                return
            text = self.format(record)
            if held:
                text += f" [{held} similar line(s) held back in the last {self.throttle.period_s:g} s]"
            forward(self.ros_logger, record.levelno, text)
        except Exception:  # logging must never raise into the runtime
            self.handleError(record)


def ensure_propagation() -> None:
    """Let 'vggt_ros' and every 'vggt_ros.*' logger propagate (Python's default): to the 'vggt_ros' logger,
    where the bridge listens, and on to the root logger. Importing
    ROS 2's `launch` package (launch_testing's pytest plugin does, in `colcon test`) installs a logger class
    whose loggers do not propagate: our module loggers created after it would bypass the bridge."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == ROOT_LOGGER or name.startswith(ROOT_LOGGER + ".")) and isinstance(logger, logging.Logger):
            logger.propagate = True


def attach(ros_logger: RosLogger, level: int = logging.INFO, period_s: float = THROTTLE_S) -> RosLogHandler:
    """Install a RosLogHandler on the 'vggt_ros' logger; `detach` it when the node goes."""
    ensure_propagation()
    handler = RosLogHandler(ros_logger, period_s)
    root = logging.getLogger(ROOT_LOGGER)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def detach(handler: RosLogHandler) -> None:
    logging.getLogger(ROOT_LOGGER).removeHandler(handler)
