"""Integer nanoseconds <-> builtin_interfaces/Time: the one conversion point of the package.

Stamps travel as int nanoseconds (exact); a float seconds value would lose ns precision
past ~104 days of epoch time. Time.sec is int32 and Time.nanosec uint32 in [0, 1e9).
"""

from __future__ import annotations

from typing import Any

from vggt_ros.msgs.family import MessageFamily

NS_PER_S = 1_000_000_000


def split_ns(stamp_ns: int) -> tuple[int, int]:
    """int ns -> (sec, nanosec) with 0 <= nanosec < 1e9 (floor division, also for negatives)."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    if not -(2**31) <= sec < 2**31:
        raise ValueError(f"stamp {stamp_ns} ns does not fit builtin_interfaces/Time (int32 sec)")
    return sec, nanosec


def time_msg(family: MessageFamily, stamp_ns: int) -> Any:
    """builtin_interfaces/msg/Time of an int ns stamp."""
    sec, nanosec = split_ns(stamp_ns)
    return family.cls("builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)


def stamp_ns(time: Any) -> int:
    """int ns of a builtin_interfaces/Time (ROS 2) or a ROS 1 time (secs/nsecs), any family."""
    if hasattr(time, "nanosec"):
        return int(time.sec) * NS_PER_S + int(time.nanosec)
    return int(time.secs) * NS_PER_S + int(time.nsecs)


def header_msg(family: MessageFamily, stamp: int, frame_id: str) -> Any:
    """std_msgs/msg/Header with an int ns stamp."""
    return family.cls("std_msgs/msg/Header")(stamp=time_msg(family, stamp), frame_id=frame_id)
