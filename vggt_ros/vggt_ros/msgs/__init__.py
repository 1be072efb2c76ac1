"""Core results -> ROS messages, and incoming camera messages -> numpy, for any message-class family.

- `MessageBuilder(family, map_frame)`: pipeline updates -> TF, depth Image + CameraInfo, PointCloud2,
  Path, Odometry, vggt_ros_msgs Keyframe / WindowStats, DiagnosticArray (builders.py).
- `RosbagsFamily` / `RclpyFamily`: where message classes come from (family.py; rclpy imported lazily).
- `decode_image`, `decode_compressed_image`, `decode_any`, `camera_info_K`, `ImageDecodeError` (decode.py).
- `time_msg`, `stamp_ns`: int ns <-> builtin_interfaces/Time (stamps.py).
- `get_typestore()`: rosbags typestore with vggt_ros_msgs registered (typestore.py).
"""

from vggt_ros.msgs.builders import Diagnostic, MessageBuilder, pack_rgb, unpack_rgb
from vggt_ros.msgs.decode import (
    SUPPORTED_ENCODINGS,
    ImageDecodeError,
    camera_info_K,
    decode_any,
    decode_compressed_image,
    decode_image,
)
from vggt_ros.msgs.family import MessageFamily, RclpyFamily, RosbagsFamily
from vggt_ros.msgs.stamps import stamp_ns, time_msg
from vggt_ros.msgs.typestore import get_typestore

__all__ = [
    "Diagnostic", "MessageBuilder", "pack_rgb", "unpack_rgb", "SUPPORTED_ENCODINGS", "ImageDecodeError",
    "camera_info_K", "decode_any", "decode_compressed_image", "decode_image", "MessageFamily",
    "RclpyFamily", "RosbagsFamily", "stamp_ns", "time_msg", "get_typestore",
]
