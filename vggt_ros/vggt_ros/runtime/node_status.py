"""What the live node reports on /diagnostics, without rclpy.

The node publishes `diagnostic_array(...)` from a timer on the STEADY (wall) clock every
diagnostics_period, in every lifecycle state: with use_sim_time the report keeps coming before a bag
plays and after it ends (a ROS-time timer only fires while /clock runs), while the header stamp is
the ROS clock's time (`ros_now_ns`, 0 before the first /clock message) like every other output.
Two statuses: the runtime's counters (`runtime.stats.Diagnostics`) and the GPU memory.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from vggt_ros.msgs.builders import Diagnostic, MessageBuilder

from .core import NodeCore
from .sinks import DIAGNOSTIC_NAME

GPU_NAME = "vggt_ros: gpu memory"
OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels


def runtime_status(state: str, core: NodeCore | None, hardware_id: str,
                   extra: Mapping[str, int] | None = None) -> Diagnostic:
    """The runtime's status in lifecycle `state`; `extra` adds counters the node keeps (key -> count)."""
    values: dict[str, str] = {"lifecycle_state": state}
    if core is None:
        return Diagnostic(DIAGNOSTIC_NAME, OK, f"{state}: no runtime (configure to start)", hardware_id,
                          values)
    d = core.diagnostics()
    values.update(d.key_values())
    values.update({k: str(v) for k, v in sorted((extra or {}).items())})
    return Diagnostic(DIAGNOSTIC_NAME, d.level, f"{state}: {d.message}", hardware_id, values)


def gpu_status(hardware_id: str) -> Diagnostic:
    """CUDA memory of this process (torch), or why there is none. Never imports torch itself."""
    torch: Any = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available():
            return Diagnostic(GPU_NAME, OK, "no CUDA device (CPU inference)", hardware_id)
        allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
        return Diagnostic(GPU_NAME, OK, f"{allocated / 2**20:.0f} MiB allocated", hardware_id, {
            "allocated_mib": f"{allocated / 2**20:.1f}",
            "reserved_mib": f"{reserved / 2**20:.1f}",
            "peak_allocated_mib": f"{torch.cuda.max_memory_allocated() / 2**20:.1f}",
            "total_mib": f"{total / 2**20:.1f}",
        })
    except Exception as exc:
        return Diagnostic(GPU_NAME, WARN, f"GPU memory unavailable: {type(exc).__name__}: {exc}", hardware_id)


def node_counters(live_input: Any, sink: Any) -> dict[str, int]:
    """Counters the node keeps outside NodeCore: CameraInfo rejections by reason, sink failures."""
    out: dict[str, int] = {}
    if live_input is not None:
        out.update({f"camera_info_rejected.{k}": v for k, v in live_input.camera_info_rejected.items()})
        metric = getattr(live_input, "metric", None)
        if metric is not None:
            out.update({f"metric_input_rejected.{k}": v for k, v in metric.as_dict().items()})
    if sink is not None:
        out.update(sink_errors=int(sink.errors), sink_suppressed=int(sink.suppressed))
    return out


def diagnostic_array(builder: MessageBuilder, ros_now_ns: int, state: str, core: NodeCore | None,
                     hardware_id: str, extra: Mapping[str, int] | None = None) -> Any:
    """The node's diagnostic_msgs/DiagnosticArray, stamped `ros_now_ns`. Never raises: a failure
    becomes an ERROR status (an exception in a timer callback would end the executor's spin)."""
    try:
        statuses = [runtime_status(state, core, hardware_id, extra), gpu_status(hardware_id)]
    except Exception as exc:
        statuses = [Diagnostic(DIAGNOSTIC_NAME, ERROR, f"diagnostics failed: {type(exc).__name__}: {exc}",
                               hardware_id)]
    return builder.diagnostics(max(0, int(ros_now_ns)), statuses)
