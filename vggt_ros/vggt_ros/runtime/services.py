"""The node's services (save_map, reset) without rclpy: they always answer and never raise.

An exception that escapes an rclpy service callback ends the executor's spin and with it the node
(issue: save_map killed the node). So every callback is wrapped in `guarded`, and the handlers here
catch, log (Python logging: see runtime.logbridge) and answer success=false with the reason.
Responses are any objects with the fields of vggt_ros_msgs/srv/SaveMap or std_srvs/srv/Trigger.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .core import NodeCore, SaveMapResult

log = logging.getLogger("vggt_ros.services")

NOT_CONFIGURED = "not configured (configure the lifecycle node first)"

Callback = TypeVar("Callback", bound=Callable[..., Any])


def guarded(callback: Callback) -> Callback:
    """Wrap a service callback `(request, response) -> response` so that it never raises: an exception
    becomes response.success = False with the exception's text (and one logged error)."""

    @functools.wraps(callback)
    def call(request: Any, response: Any) -> Any:
        try:
            return callback(request, response)
        except Exception as exc:
            log.exception("service callback %s failed", getattr(callback, "__name__", "?"))
            response.success = False
            response.message = f"{type(exc).__name__}: {exc}"
            return response

    return call  # type: ignore[return-value]


def save_map(core: NodeCore | None, name: str) -> SaveMapResult:
    """NodeCore.save_map with every failure turned into an answer; logs one line per call."""
    if core is None:
        return SaveMapResult(False, NOT_CONFIGURED)
    try:
        result = core.save_map(name)
    except Exception as exc:
        log.exception("save_map %r failed", name)
        return SaveMapResult(False, f"save_map failed: {type(exc).__name__}: {exc}")
    if result.success:
        log.info("save_map %r: %s", name, result.message)
    else:
        log.warning("save_map %r refused: %s", name, result.message)
    return result


def fill_save_map(response: Any, result: SaveMapResult) -> Any:
    """Copy a SaveMapResult into a vggt_ros_msgs/srv/SaveMap response."""
    response.success, response.message, response.path = bool(result.success), str(result.message), \
        str(result.path)
    response.num_points, response.num_keyframes = int(result.num_points), int(result.num_keyframes)
    return response


def reset(core: NodeCore | None) -> tuple[bool, str]:
    """NodeCore.reset as (success, message); never raises."""
    if core is None:
        return False, NOT_CONFIGURED
    try:
        core.reset()
    except Exception as exc:
        log.exception("reset failed")
        return False, f"reset failed: {type(exc).__name__}: {exc}"
    return True, "map and trajectory cleared"
