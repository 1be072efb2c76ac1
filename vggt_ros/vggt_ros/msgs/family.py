"""Message-class families: where the builders get their ROS message classes from.

The builders in this package are written once and work with two families:

- `RosbagsFamily`: rosbags' typestore dataclasses (offline replay, bag writing, tests).
- `RclpyFamily`: the generated rclpy classes (`sensor_msgs.msg.Image`, ...), imported lazily
  inside the family so that importing vggt_ros.msgs never imports ROS.

The two disagree on a few field representations, which each family converts through hooks:

- numeric sequences (`uint8[] data`, `float64[] d`, `uint32[] ids`): rosbags wants numpy
  arrays; rclpy's setters accept `array.array` (numpy is not a `Sequence` to them).
- `byte` fields (DiagnosticStatus.level): rosbags uses int, rclpy a 1-long `bytes`.
Fixed-size numeric arrays (`float64[9] k`) are numpy arrays in both.
Every builder passes every field by keyword, which both families' constructors accept.
"""

from __future__ import annotations

import array
import importlib
from typing import Any, Protocol

import numpy as np

# numpy dtype -> array.array typecode for the sequence types ROS messages use
_TYPECODES = {
    np.dtype(np.uint8): "B",
    np.dtype(np.int8): "b",
    np.dtype(np.uint16): "H",
    np.dtype(np.int16): "h",
    np.dtype(np.uint32): "I",
    np.dtype(np.int32): "i",
    np.dtype(np.uint64): "Q",
    np.dtype(np.int64): "q",
    np.dtype(np.float32): "f",
    np.dtype(np.float64): "d",
}


class MessageFamily(Protocol):
    """Resolves 'pkg/msg/Name' to a class and converts the field kinds the families disagree on."""

    name: str

    def cls(self, msgtype: str) -> Any:
        """The message class of `msgtype`, e.g. 'sensor_msgs/msg/Image'."""
        ...

    def sequence(self, values: np.ndarray) -> Any:
        """A 1-D numeric array (dtype kept) as this family's unbounded-sequence value."""
        ...

    def byte(self, value: int) -> Any:
        """An int 0..255 as this family's `byte` field value."""
        ...


class RosbagsFamily:
    """rosbags typestore classes; the typestore defaults to vggt_ros's (with vggt_ros_msgs)."""

    name = "rosbags"

    def __init__(self, typestore: Any = None) -> None:
        if typestore is None:
            from vggt_ros.msgs.typestore import get_typestore

            typestore = get_typestore()
        self.typestore = typestore

    def cls(self, msgtype: str) -> Any:
        return self.typestore.types[msgtype]

    def sequence(self, values: np.ndarray) -> Any:
        return np.ascontiguousarray(values).reshape(-1)

    def byte(self, value: int) -> Any:
        return int(value)


class RclpyFamily:
    """The rclpy message classes of a sourced ROS 2 install (imported on first use only)."""

    name = "rclpy"

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def cls(self, msgtype: str) -> Any:
        if msgtype not in self._cache:
            pkg, kind, name = msgtype.split("/")
            self._cache[msgtype] = getattr(importlib.import_module(f"{pkg}.{kind}"), name)
        return self._cache[msgtype]

    def sequence(self, values: np.ndarray) -> Any:
        values = np.ascontiguousarray(values).reshape(-1)
        return array.array(_TYPECODES[values.dtype], values.tobytes())

    def byte(self, value: int) -> Any:
        return bytes([int(value)])
