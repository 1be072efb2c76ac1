"""`vggt-ros sample OUT_DIR`: a synthetic sequence as a ROS 2 bag, the demo's built-in input.

Writes OUT_DIR/sample.mcap (one self-contained ROS 2 .mcap, see io/bag.py) and
OUT_DIR/ground_truth.tum. Topics, all stamped with the image stamp (30 Hz) and logged at it:

  /camera/image_raw                  sensor_msgs/Image rgb8, frame_id camera_optical_frame (sensor-data QoS)
  /camera/camera_info                sensor_msgs/CameraInfo (plumb_bob, zero D)     (sensor-data QoS)
  /ground_truth/odometry             nav_msgs/Odometry, header 'world', child GT camera frame
  /tf                                world -> GT camera frame (tf2_msgs/TFMessage)
  /ground_truth/depth                sensor_msgs/Image 32FC1, metres along optical z, NaN invalid,
                                     frame_id camera_optical_frame (the image's camera, REP 118)
  /ground_truth/depth/camera_info    its CameraInfo (same K: depth is at image resolution)

Frames: 'world' is the synthetic room's frame (z up, metres, REP 103). The ground-truth camera
is the optical frame 'camera_optical_frame_gt', not the image's frame_id, so that playing the
bag into the live node (which publishes map -> camera_optical_frame) never gives one frame two
TF parents. Per frame the messages are written in the order listed above (camera_info before
its image), so a log-time-ordered reader sees them in that order.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from vggt_ros.io.bag import QOS_RELIABLE, QOS_SENSOR_DATA, QOS_TF, BagWriter, read_messages
from vggt_ros.io.tum import write_tum
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.convert import pose_to_matrix
from vggt_ros.msgs.decode import camera_info_K
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.msgs.stamps import stamp_ns
from vggt_ros.slam.updates import FramePose

if TYPE_CHECKING:  # vggt_ros.sim is imported lazily: the replay needs it only for ground truth
    from vggt_ros.sim.sequence import GroundTruth, SyntheticSequence

IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
GT_ODOMETRY_TOPIC = "/ground_truth/odometry"
GT_DEPTH_TOPIC = "/ground_truth/depth"
GT_DEPTH_INFO_TOPIC = "/ground_truth/depth/camera_info"
TF_TOPIC = "/tf"
WORLD_FRAME = "world"
GT_CAMERA_FRAME = "camera_optical_frame_gt"
BAG_NAME = "sample.mcap"
TUM_NAME = "ground_truth.tum"

TOPIC_QOS = {
    CAMERA_INFO_TOPIC: QOS_SENSOR_DATA,
    IMAGE_TOPIC: QOS_SENSOR_DATA,
    GT_ODOMETRY_TOPIC: QOS_RELIABLE,
    TF_TOPIC: QOS_TF,
    GT_DEPTH_TOPIC: QOS_RELIABLE,
    GT_DEPTH_INFO_TOPIC: QOS_RELIABLE,
}
TOPIC_TYPES = {
    CAMERA_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    IMAGE_TOPIC: "sensor_msgs/msg/Image",
    GT_ODOMETRY_TOPIC: "nav_msgs/msg/Odometry",
    TF_TOPIC: "tf2_msgs/msg/TFMessage",
    GT_DEPTH_TOPIC: "sensor_msgs/msg/Image",
    GT_DEPTH_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
}


def write_sample_bag(path: str | Path, sequence: SyntheticSequence, *, overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Write `sequence` (a SyntheticSequence) as a ROS 2 .mcap at `path`; returns topic -> count.

    progress(i, n) is called after each frame when given.
    """
    builder = MessageBuilder(RosbagsFamily(), map_frame=WORLD_FRAME)
    n = len(sequence)
    with BagWriter(path, overwrite=overwrite) as bag:
        for topic, qos in TOPIC_QOS.items():  # registration order = per-frame write order
            bag.add_topic(topic, TOPIC_TYPES[topic], qos)
        for i in range(n):
            frame = sequence[i]
            gt = sequence.ground_truth_at(i)
            stamp, fid = frame.stamp_ns, frame.frame_id
            h, w = frame.rgb.shape[:2]
            pose = FramePose(stamp, i, GT_CAMERA_FRAME, gt.T_world_cam, window_id=-1)
            depth = np.asarray(gt.depth, dtype=np.float32).copy()
            depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
            bag.write(CAMERA_INFO_TOPIC, stamp, builder.camera_info(stamp, fid, gt.K, w, h))
            bag.write(IMAGE_TOPIC, stamp, builder.rgb_image(stamp, fid, frame.rgb))
            bag.write(GT_ODOMETRY_TOPIC, stamp, builder.odometry(pose))
            bag.write(TF_TOPIC, stamp, builder.tf_message([builder.tf(pose)]))
            bag.write(GT_DEPTH_TOPIC, stamp, builder.depth_image(stamp, fid, depth))
            dh, dw = depth.shape
            bag.write(GT_DEPTH_INFO_TOPIC, stamp, builder.camera_info(stamp, fid, gt.K, dw, dh))
            if progress is not None:
                progress(i + 1, n)
        return dict(bag.counts)


def write_sample(out_dir: str | Path, sequence: SyntheticSequence, *,
                 progress: Callable[[int, int], None] | None = None) -> tuple[Path, Path]:
    """OUT_DIR/sample.mcap (replaced if present) and OUT_DIR/ground_truth.tum of `sequence`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / BAG_NAME
    write_sample_bag(bag, sequence, overwrite=True, progress=progress)
    tum = write_tum(out / TUM_NAME, np.asarray(sequence.stamps_ns), np.asarray(sequence.poses))
    return bag, tum


def ground_truth_part(topic: str, msg: Any) -> tuple[int, str, np.ndarray]:
    """One ground-truth message -> (stamp_ns, key, value): 'T' (4, 4) T_world_cam from the odometry,
    'depth' (H, W) float32 metres from the unpadded 32FC1 image, 'K' (3, 3) from the depth CameraInfo.

    Works with any message family (rosbags or rclpy classes). ValueError on a message that cannot be
    ground truth (other topic, other encoding, wrong size, unusable K).
    """
    stamp = stamp_ns(msg.header.stamp)
    if topic == GT_ODOMETRY_TOPIC:
        return stamp, "T", pose_to_matrix(msg.pose.pose)
    if topic == GT_DEPTH_TOPIC:
        if msg.encoding != "32FC1" or int(msg.step) != 4 * int(msg.width):
            raise ValueError(f"{topic} at {stamp}: want unpadded 32FC1, got {msg.encoding}")
        raw = np.frombuffer(bytes(msg.data), dtype=">f4" if msg.is_bigendian else "<f4")
        if raw.size != int(msg.height) * int(msg.width):
            raise ValueError(f"{topic} at {stamp}: {raw.size} values for {msg.width}x{msg.height}")
        return stamp, "depth", raw.astype(np.float32).reshape(int(msg.height), int(msg.width))
    if topic == GT_DEPTH_INFO_TOPIC:
        K, reason = camera_info_K(msg)
        if K is None:
            raise ValueError(f"{topic} at {stamp}: unusable K ({reason})")
        return stamp, "K", K
    raise ValueError(f"{topic} is not a ground-truth topic")


def read_ground_truth(bag_path: str | Path) -> Callable[[int], GroundTruth]:
    """Ground truth of a sample bag as `lookup(stamp_ns) -> GroundTruth` (KeyError for unknown stamps).

    Reads /ground_truth/odometry (T_world_cam), /ground_truth/depth (metres, NaN invalid) and
    /ground_truth/depth/camera_info (K); stamps are the header stamps. Everything is loaded once
    (300 frames at 320x240 hold ~92 MB of depth). Only stamps with all three parts are kept.
    """
    from vggt_ros.sim.sequence import GroundTruth as _GroundTruth

    parts: dict[int, dict[str, np.ndarray]] = {}
    for m in read_messages(bag_path, [GT_ODOMETRY_TOPIC, GT_DEPTH_TOPIC, GT_DEPTH_INFO_TOPIC]):
        if m.message is None:
            continue
        stamp, key, value = ground_truth_part(m.topic, m.message)
        parts.setdefault(stamp, {})[key] = value
    table = {
        s: _GroundTruth(s, e["T"], e["K"], e["depth"])
        for s, e in parts.items()
        if {"T", "K", "depth"} <= e.keys()
    }
    if not table:
        raise ValueError(f"{bag_path} has no complete ground truth on {GT_ODOMETRY_TOPIC}, {GT_DEPTH_TOPIC}")

    def lookup(stamp_ns: int) -> GroundTruth:
        try:
            return table[int(stamp_ns)]
        except KeyError:
            raise KeyError(f"no ground truth at stamp {stamp_ns} ns in {bag_path}") from None

    return lookup


# ---------------------------------------------------------------------------------------- CLI
def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample",
        help="write a synthetic sequence as a ROS 2 bag (sample.mcap) + ground_truth.tum",
        description="Render a synthetic room sequence and write OUT_DIR/sample.mcap (image, camera_info, "
        "ground-truth odometry, /tf and depth, 30 Hz) and OUT_DIR/ground_truth.tum.",
    )
    p.add_argument("out_dir", type=Path, help="output folder (created; sample.mcap is replaced)")
    p.add_argument("--frames", type=int, default=300, help="number of frames (default 300 = 10 s at 30 Hz)")
    p.add_argument("--kind", choices=("loop", "forward", "rotation", "still"), default="loop",
                   help="camera trajectory (default loop: one closed lap of the room)")
    p.add_argument("--width", type=int, default=320, help="image width in pixels (default 320)")
    p.add_argument("--height", type=int, default=240, help="image height in pixels (default 240)")
    p.add_argument("--seed", type=int, default=0, help="texture seed of the room (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vggt_ros.sim.sequence import make_sequence

    if args.frames < 1 or args.width < 8 or args.height < 8:
        print("vggt-ros sample: need --frames >= 1 and an image of at least 8x8 pixels")
        return 2
    seq = make_sequence(args.kind, args.frames, width=args.width, height=args.height, seed=args.seed)
    t0 = time.monotonic()
    with tqdm(total=len(seq), unit="frame", desc="sample", disable=None) as bar:
        bag, tum = write_sample(args.out_dir, seq, progress=lambda i, n: bar.update(1))
    dt = time.monotonic() - t0
    print(f"wrote {bag} ({len(seq)} frames {args.kind} at {args.width}x{args.height}, 30 Hz, "
          f"{bag.stat().st_size / 1e6:.1f} MB) and {tum} in {dt:.1f} s")
    return 0
