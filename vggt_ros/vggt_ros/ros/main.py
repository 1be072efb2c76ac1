"""Console script `vggt_node`: the vggt_ros lifecycle node in its own process.

Ctrl-C (or an external shutdown) makes the node stop publishing at once and cancel the window in
flight (VggtNode.interrupt), then ONE bounded stop (shutdown_timeout) and exit code 0. A worker that
is still inside native code after that (a network that cannot be cancelled) is left behind with
os._exit(0), since tearing the interpreter down under it aborts the process
(`terminate called without an active exception`).
"""

from __future__ import annotations

import os
import sys

import rclpy
import rclpy.logging
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from vggt_ros.ros.launch_config import NODE_NAME
from vggt_ros.ros.node import VggtNode


def main(args: list[str] | None = None) -> int:
    """Console script `vggt_node`: spin the lifecycle node on a multi-threaded executor; exit 0 on Ctrl-C."""
    rclpy.init(args=args)
    node: VggtNode | None = None
    try:
        try:
            node = VggtNode()
        except Exception as exc:  # a bad params file (type, range, choice): say which, exit non-zero
            rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {type(exc).__name__}: {exc}")
            return 1
        node.autostart()
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        if node is not None:
            node.interrupt()
    finally:
        abandoned = False
        if node is not None:
            abandoned = not node.shutdown_runtime()  # one wait of at most shutdown_timeout
            node.destroy_node()
        if rclpy.ok():  # Humble has no rclpy.try_shutdown()
            rclpy.shutdown()
    if abandoned:  # a thread still inside native code: leave without interpreter teardown (no abort)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
