"""The rosbags typestore vggt_ros uses: ROS 2 Humble's standard types plus vggt_ros_msgs.

Humble's definitions are used for writing because sensor_msgs, geometry_msgs, nav_msgs,
tf2_msgs and diagnostic_msgs are wire-identical from Humble to Jazzy, so Humble's hashes
play on both. The custom message text is the package copy in `definitions/`, kept
byte-identical to the canonical `vggt_ros_msgs/msg/*.msg` (test_msgs_typestore.py checks it),
so a pip-installed vggt_ros works without the vggt_ros_msgs source tree.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg
from rosbags.typesys import get_typestore as _rosbags_typestore

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"
CUSTOM_PACKAGE = "vggt_ros_msgs"
CUSTOM_MESSAGES = ("Keyframe", "WindowStats", "LoopClosure")


def custom_msg_text(name: str) -> str:
    """The .msg text of vggt_ros_msgs/msg/<name> (package copy)."""
    return (DEFINITIONS_DIR / f"{name}.msg").read_text()


@lru_cache(maxsize=1)
def get_typestore() -> Any:
    """Humble typestore with vggt_ros_msgs/msg/{Keyframe, WindowStats, LoopClosure} registered (cached)."""
    store = _rosbags_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name in CUSTOM_MESSAGES:
        types.update(get_types_from_msg(custom_msg_text(name), f"{CUSTOM_PACKAGE}/msg/{name}"))
    store.register(types)
    return store
