"""The sample bag: a synthetic sequence written as a ROS 2 .mcap (the demo's built-in input).

Writes OUT_DIR/sample.mcap (one self-contained ROS 2 .mcap, see io/bag.py) and
OUT_DIR/ground_truth.tum. Topics, all stamped with the image stamp (30 Hz) and logged at it:

  /camera/image_raw                  sensor_msgs/Image rgb8, frame_id camera_optical_frame (sensor-data QoS)
  /camera/camera_info                sensor_msgs/CameraInfo (plumb_bob, zero D)     (sensor-data QoS)
  /ground_truth/odometry             nav_msgs/Odometry, header 'world', child GT camera frame
  /tf                                world -> GT camera frame (tf2_msgs/TFMessage)
  /ground_truth/depth                sensor_msgs/Image 32FC1, metres along optical z, NaN invalid,
                                     frame_id camera_optical_frame (the image's camera, REP 118)
  /ground_truth/depth/camera_info    its CameraInfo (same K: depth is at image resolution)

Robot sensor topics (SensorOptions; on by default, `vggt-ros sample --no-depth-sensor / --no-odometry`):

  /camera/depth/image_rect_raw       sensor_msgs/Image 16UC1 millimetres, 0 = no return, registered to the
                                     colour camera at half its resolution (sim.sensors.DepthSensor noise:
                                     1 % + mm quantisation, 10 % holes, 2 % outliers), frame_id
                                     camera_optical_frame                              (sensor-data QoS)
  /camera/depth/camera_info          its CameraInfo (K of the half-resolution image)   (sensor-data QoS)
  /tf (same message as above)        odom -> base_link: wheel odometry (sim.sensors.OdometrySensor: 2 %
                                     drift, slip events)
  /tf_static                         base_link -> camera_optical_frame (written once, first stamp)

The odometry chain ends in the image's frame, so a live node playing this bag should use
publish_tf 'odom' (map -> odom) or 'none', not 'camera' (two TF parents for camera_optical_frame).

Frames: 'world' is the synthetic room's frame (z up, metres, REP 103). The ground-truth camera
is the optical frame 'camera_optical_frame_gt', not the image's frame_id, so that playing the
bag into the live node (which publishes map -> camera_optical_frame) never gives one frame two
TF parents. Per frame the messages are written in the order listed above (camera_info before
its image), so a log-time-ordered reader sees them in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vggt_ros.io.bag import QOS_RELIABLE, QOS_SENSOR_DATA, QOS_TF, QOS_TF_STATIC, BagWriter
from vggt_ros.io.tum import write_tum
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.sim.sensors import DepthSensor, OdometrySensor

if TYPE_CHECKING:  # vggt_ros.sim is imported by the caller that renders the sequence
    from vggt_ros.sim.sequence import SyntheticSequence

IMAGE_TOPIC = "/camera/image_raw"
CAMERA_INFO_TOPIC = "/camera/camera_info"
GT_ODOMETRY_TOPIC = "/ground_truth/odometry"
GT_DEPTH_TOPIC = "/ground_truth/depth"
GT_DEPTH_INFO_TOPIC = "/ground_truth/depth/camera_info"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
DEPTH_TOPIC = "/camera/depth/image_rect_raw"
DEPTH_INFO_TOPIC = "/camera/depth/camera_info"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
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
    DEPTH_INFO_TOPIC: QOS_SENSOR_DATA,
    DEPTH_TOPIC: QOS_SENSOR_DATA,
    TF_STATIC_TOPIC: QOS_TF_STATIC,
}
TOPIC_TYPES = {
    CAMERA_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    IMAGE_TOPIC: "sensor_msgs/msg/Image",
    GT_ODOMETRY_TOPIC: "nav_msgs/msg/Odometry",
    TF_TOPIC: "tf2_msgs/msg/TFMessage",
    GT_DEPTH_TOPIC: "sensor_msgs/msg/Image",
    GT_DEPTH_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    DEPTH_INFO_TOPIC: "sensor_msgs/msg/CameraInfo",
    DEPTH_TOPIC: "sensor_msgs/msg/Image",
    TF_STATIC_TOPIC: "tf2_msgs/msg/TFMessage",
}
SENSOR_TOPICS = {DEPTH_TOPIC: "depth", DEPTH_INFO_TOPIC: "depth", TF_STATIC_TOPIC: "odometry"}


@dataclass(frozen=True)
class SensorOptions:
    """Robot sensor topics of the sample: a metric depth camera and wheel odometry (None = not written).
    seed: their noise seed."""

    depth: DepthSensor | None = DepthSensor()
    odometry: OdometrySensor | None = OdometrySensor()
    seed: int = 0



def _wanted_topics(sensors: SensorOptions) -> list[str]:
    on = {"depth": sensors.depth is not None, "odometry": sensors.odometry is not None}
    return [t for t in TOPIC_QOS if on.get(SENSOR_TOPICS.get(t, ""), True)]


def write_sample_bag(path: str | Path, sequence: SyntheticSequence, *, overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None,
                     stop: Callable[[], bool] | None = None,
                     sensors: SensorOptions | None = None) -> dict[str, int]:
    """Write `sequence` (a SyntheticSequence) as a ROS 2 .mcap at `path`; returns topic -> count.

    progress(i, n) is called after each frame when given. stop() is asked after each frame: True ends
    the bag there (a complete, readable .mcap of the frames written; counts[IMAGE_TOPIC] says how many).
    sensors: robot sensor topics (default SensorOptions(): depth camera and odometry on).
    """
    sensors = SensorOptions() if sensors is None else sensors
    builder = MessageBuilder(RosbagsFamily(), map_frame=WORLD_FRAME)
    n = len(sequence)
    odom = (sensors.odometry.poses(np.asarray(sequence.poses), sensors.seed)
            if sensors.odometry is not None else None)
    with BagWriter(path, overwrite=overwrite) as bag:
        for topic in _wanted_topics(sensors):  # registration order = per-frame write order
            bag.add_topic(topic, TOPIC_TYPES[topic], TOPIC_QOS[topic])
        for i in range(n):
            frame = sequence[i]
            gt = sequence.ground_truth_at(i)
            stamp, fid = frame.stamp_ns, frame.frame_id
            h, w = frame.rgb.shape[:2]
            depth = np.asarray(gt.depth, dtype=np.float32).copy()
            depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
            bag.write(CAMERA_INFO_TOPIC, stamp, builder.camera_info(stamp, fid, gt.K, w, h))
            bag.write(IMAGE_TOPIC, stamp, builder.rgb_image(stamp, fid, frame.rgb))
            bag.write(GT_ODOMETRY_TOPIC, stamp, builder.odometry(stamp, gt.T_world_cam, GT_CAMERA_FRAME))
            tfs = [builder.transform_stamped(stamp, WORLD_FRAME, GT_CAMERA_FRAME, gt.T_world_cam)]
            if odom is not None:
                tfs.append(builder.transform_stamped(stamp, ODOM_FRAME, BASE_FRAME, odom[i]))
            bag.write(TF_TOPIC, stamp, builder.tf_message(tfs))
            bag.write(GT_DEPTH_TOPIC, stamp, builder.depth_image(stamp, fid, depth))
            dh, dw = depth.shape
            bag.write(GT_DEPTH_INFO_TOPIC, stamp, builder.camera_info(stamp, fid, gt.K, dw, dh))
            _write_sensors(bag, builder, sensors, i, stamp, fid, gt.K, gt.depth)
            if progress is not None:
                progress(i + 1, n)
            if stop is not None and stop():
                break
        return dict(bag.counts)


def _write_sensors(bag: BagWriter, builder: MessageBuilder, sensors: SensorOptions, i: int, stamp: int,
                   fid: str, K: np.ndarray, depth_m: np.ndarray) -> None:
    """Frame i's depth-camera messages (and, on the first frame, the static camera mount)."""
    if sensors.depth is not None:
        mm = sensors.depth.measure(depth_m, sensors.seed * 1_000_003 + i)
        h, w = mm.shape
        bag.write(DEPTH_INFO_TOPIC, stamp, builder.camera_info(stamp, fid, sensors.depth.intrinsics(K), w, h))
        bag.write(DEPTH_TOPIC, stamp, builder.image(stamp, fid, mm, "16UC1"))
    if sensors.odometry is not None and i == 0:
        bag.write(TF_STATIC_TOPIC, stamp, builder.tf_message(
            [builder.transform_stamped(stamp, BASE_FRAME, fid, sensors.odometry.T_base_cam)]))


def write_sample(out_dir: str | Path, sequence: SyntheticSequence, *,
                 progress: Callable[[int, int], None] | None = None,
                 stop: Callable[[], bool] | None = None,
                 sensors: SensorOptions | None = None) -> tuple[Path, Path]:
    """OUT_DIR/sample.mcap (replaced if present) and OUT_DIR/ground_truth.tum of `sequence`.

    When stop() ends it early, ground_truth.tum holds exactly the frames in the bag.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / BAG_NAME
    counts = write_sample_bag(bag, sequence, overwrite=True, progress=progress, stop=stop, sensors=sensors)
    n = counts.get(IMAGE_TOPIC, 0)
    tum = write_tum(out / TUM_NAME, np.asarray(sequence.stamps_ns)[:n], np.asarray(sequence.poses)[:n])
    return bag, tum
