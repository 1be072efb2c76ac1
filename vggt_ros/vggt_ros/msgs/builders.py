"""Pipeline updates (slam/updates.py) -> ROS messages, for any `MessageFamily`.

One `MessageBuilder` per output channel set; it holds the family and the frame names and is
otherwise stateless (the runtime keeps what accumulates, e.g. the poses of the Path).
Conventions (docs/architecture.md#conventions):
- everything pose-like is in the map frame (`map_frame`, REP 105); camera frames are optical;
- depth is 32FC1 along optical z, NaN invalid, frame_id optical, stamp = source image stamp,
  with a CameraInfo whose K is at the depth resolution (REP 118);
- PointCloud2 is x, y, z, rgb, confidence as little-endian FLOAT32 (point_step 20), height 1,
  rgb packed 0x00RRGGBB into the float's bits (what RViz's RGB8 transformer reads).
Quaternions go through vggt_ros.geometry.quaternion only; stamps through msgs.stamps only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vggt_ros.geometry.quaternion import quat_xyzw_from_matrix
from vggt_ros.msgs.family import MessageFamily
from vggt_ros.msgs.stamps import header_msg, time_msg
from vggt_ros.slam.updates import DepthFrame, FramePose, KeyframeAdded, LoopClosure, WindowStats

# sensor_msgs/PointField datatypes
POINTFIELD_FLOAT32 = 7
# x, y, z, rgb, confidence; all little-endian float32
CLOUD_FIELDS = ("x", "y", "z", "rgb", "confidence")
CLOUD_DTYPE = np.dtype([(name, "<f4") for name in CLOUD_FIELDS])
CLOUD_POINT_STEP = CLOUD_DTYPE.itemsize  # 20
CLOUD_OFFSETS = {name: 4 * i for i, name in enumerate(CLOUD_FIELDS)}  # byte offset of each field

# diagnostic_msgs/DiagnosticStatus levels
DIAG_OK, DIAG_WARN, DIAG_ERROR, DIAG_STALE = 0, 1, 2, 3


@dataclass(frozen=True)
class Diagnostic:
    """One diagnostic_msgs/DiagnosticStatus: level DIAG_*, values shown as key/value strings."""

    name: str
    level: int
    message: str
    hardware_id: str = ""
    values: Mapping[str, str] = field(default_factory=dict)


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N,) float32 whose bits are the uint32 0x00RRGGBB (RViz's 'rgb')."""
    c = np.asarray(colors, dtype=np.uint8).reshape(-1, 3).astype(np.uint32)
    packed = (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]
    return packed.astype("<u4").view("<f4")


def unpack_rgb(rgb: np.ndarray) -> np.ndarray:
    """Inverse of pack_rgb: (N,) float32 bits -> (N, 3) uint8 RGB."""
    u = np.ascontiguousarray(rgb, dtype="<f4").view("<u4")
    return np.stack([(u >> 16) & 0xFF, (u >> 8) & 0xFF, u & 0xFF], axis=-1).astype(np.uint8)


class MessageBuilder:
    """Builds every output message of vggt_ros from pipeline updates.

    family: where message classes come from (RosbagsFamily, RclpyFamily).
    map_frame: frame_id of map-frame outputs (poses, clouds, path, odometry).
    """

    def __init__(self, family: MessageFamily, map_frame: str = "map") -> None:
        self.family = family
        self.map_frame = map_frame
        # path(): each pose's PoseStamped, by stamp, with the FramePose it was built from
        self._path_poses: dict[int, tuple[FramePose, Any]] = {}

    def _msg(self, msgtype: str, **fields: Any) -> Any:
        return self.family.cls(msgtype)(**fields)

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        return header_msg(self.family, stamp_ns, frame_id)

    # ------------------------------------------------------------------ geometry
    def pose(self, T: np.ndarray) -> Any:
        """geometry_msgs/Pose of a (4, 4) transform T_parent_child (child's origin in parent)."""
        T = np.asarray(T, dtype=np.float64)
        q = np.asarray(quat_xyzw_from_matrix(T[:3, :3]), dtype=np.float64)
        t = T[:3, 3]
        return self._msg(
            "geometry_msgs/msg/Pose",
            position=self._msg("geometry_msgs/msg/Point", x=float(t[0]), y=float(t[1]), z=float(t[2])),
            orientation=self._quaternion(q),
        )

    def _quaternion(self, q: np.ndarray) -> Any:
        return self._msg(
            "geometry_msgs/msg/Quaternion", x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])
        )

    def transform_stamped(self, stamp_ns: int, parent: str, child: str, T_parent_child: np.ndarray) -> Any:
        """geometry_msgs/TransformStamped parent -> child: maps child-frame points into parent (tf2)."""
        T = np.asarray(T_parent_child, dtype=np.float64)
        q = np.asarray(quat_xyzw_from_matrix(T[:3, :3]), dtype=np.float64)
        t = T[:3, 3]
        return self._msg(
            "geometry_msgs/msg/TransformStamped",
            header=self.header(stamp_ns, parent),
            child_frame_id=child,
            transform=self._msg(
                "geometry_msgs/msg/Transform",
                translation=self._msg(
                    "geometry_msgs/msg/Vector3", x=float(t[0]), y=float(t[1]), z=float(t[2])
                ),
                rotation=self._quaternion(q),
            ),
        )

    def tf(self, pose: FramePose) -> Any:
        """TransformStamped map -> pose.frame_id (the image's optical frame), from T_map_cam."""
        return self.transform_stamped(pose.stamp_ns, self.map_frame, pose.frame_id, pose.T_map_cam)

    def tf_message(self, transforms: Sequence[Any]) -> Any:
        """tf2_msgs/TFMessage holding the given TransformStamped messages (for /tf, /tf_static)."""
        return self._msg("tf2_msgs/msg/TFMessage", transforms=list(transforms))

    def pose_stamped(self, pose: FramePose) -> Any:
        """geometry_msgs/PoseStamped of T_map_cam, frame_id = map."""
        return self._msg(
            "geometry_msgs/msg/PoseStamped",
            header=self.header(pose.stamp_ns, self.map_frame),
            pose=self.pose(pose.T_map_cam),
        )

    def path(self, stamp_ns: int, poses: Sequence[FramePose]) -> Any:
        """nav_msgs/Path of the poses so far (in the given order), frame_id = map.

        The path is published after every window and grows with the run (up to PathState.max_len), so
        each pose's PoseStamped is built once and reused while the same FramePose object is in the path
        (a pose-graph correction replaces the object: rebuilt); poses that left the path are forgotten.
        """
        cache = self._path_poses
        out = []
        for p in poses:
            hit = cache.get(p.stamp_ns)
            if hit is None or hit[0] is not p:
                hit = cache[p.stamp_ns] = (p, self.pose_stamped(p))
            out.append(hit[1])
        if len(cache) > 2 * len(poses) + 64:
            keep = {p.stamp_ns for p in poses}
            self._path_poses = {k: v for k, v in cache.items() if k in keep}
        return self._msg("nav_msgs/msg/Path", header=self.header(stamp_ns, self.map_frame), poses=out)

    def odometry(self, stamp_ns: int, T_map_cam: np.ndarray, child_frame_id: str) -> Any:
        """nav_msgs/Odometry: header map, child = camera optical frame, pose = T_map_cam (4, 4).

        Covariances are unknown and left all zero; nav_msgs defines no 'unknown' marker (the -1
        convention is sensor_msgs/Imu's), so fusing nodes must configure their own. Twist is zero
        (not estimated). evo reads Odometry (not Path) for trajectories.
        """
        zeros36 = np.zeros(36, dtype=np.float64)
        return self._msg(
            "nav_msgs/msg/Odometry",
            header=self.header(stamp_ns, self.map_frame),
            child_frame_id=child_frame_id,
            pose=self._msg(
                "geometry_msgs/msg/PoseWithCovariance", pose=self.pose(T_map_cam), covariance=zeros36
            ),
            twist=self._msg(
                "geometry_msgs/msg/TwistWithCovariance",
                twist=self._msg(
                    "geometry_msgs/msg/Twist",
                    linear=self._msg("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=0.0),
                    angular=self._msg("geometry_msgs/msg/Vector3", x=0.0, y=0.0, z=0.0),
                ),
                covariance=zeros36.copy(),
            ),
        )

    # ------------------------------------------------------------------ images
    def camera_info(self, stamp_ns: int, frame_id: str, K: np.ndarray, width: int, height: int) -> Any:
        """sensor_msgs/CameraInfo of a pinhole K at width x height: plumb_bob, D = 0, R = I, P = [K|0]."""
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        P = np.zeros((3, 4), dtype=np.float64)
        P[:, :3] = K
        return self._msg(
            "sensor_msgs/msg/CameraInfo",
            header=self.header(stamp_ns, frame_id),
            height=int(height),
            width=int(width),
            distortion_model="plumb_bob",
            d=self.family.sequence(np.zeros(5, dtype=np.float64)),
            k=K.reshape(9).copy(),
            r=np.eye(3, dtype=np.float64).reshape(9),
            p=P.reshape(12),
            binning_x=0,
            binning_y=0,
            roi=self._msg(
                "sensor_msgs/msg/RegionOfInterest",
                x_offset=0, y_offset=0, height=0, width=0, do_rectify=False,
            ),
        )

    def image(self, stamp_ns: int, frame_id: str, array: np.ndarray, encoding: str) -> Any:
        """sensor_msgs/Image of a C-contiguous (H, W[, C]) array, little-endian, unpadded rows.

        encoding must match the array: 'rgb8' (H,W,3 uint8), 'mono8', '32FC1' (H,W float32), ...
        """
        a = np.asarray(array)
        if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and np.little_endian is False):
            a = a.astype(a.dtype.newbyteorder("<"))
        a = np.ascontiguousarray(a)
        height, width = int(a.shape[0]), int(a.shape[1])
        step = a.strides[0] if height > 0 else width * a.itemsize * (a.shape[2] if a.ndim == 3 else 1)
        return self._msg(
            "sensor_msgs/msg/Image",
            header=self.header(stamp_ns, frame_id),
            height=height,
            width=width,
            encoding=encoding,
            is_bigendian=0,
            step=int(step),
            data=self.family.sequence(np.frombuffer(a.tobytes(), dtype=np.uint8)),
        )

    def rgb_image(self, stamp_ns: int, frame_id: str, rgb: np.ndarray) -> Any:
        """sensor_msgs/Image rgb8 of an (H, W, 3) uint8 RGB array."""
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"rgb8 needs (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        return self.image(stamp_ns, frame_id, rgb, "rgb8")

    def depth_image(self, stamp_ns: int, frame_id: str, depth: np.ndarray) -> Any:
        """sensor_msgs/Image 32FC1 of an (H, W) depth (optical z; NaN stays NaN), step = 4 W."""
        depth = np.asarray(depth, dtype=np.float32)
        if depth.ndim != 2:
            raise ValueError(f"depth must be (H, W), got {depth.shape}")
        return self.image(stamp_ns, frame_id, depth, "32FC1")

    def depth(self, frame: DepthFrame) -> tuple[Any, Any]:
        """(Image 32FC1, CameraInfo at the depth's resolution) of a DepthFrame."""
        h, w = frame.depth.shape
        return (
            self.depth_image(frame.stamp_ns, frame.frame_id, frame.depth),
            self.camera_info(frame.stamp_ns, frame.frame_id, frame.K, w, h),
        )

    # ------------------------------------------------------------------ clouds
    def point_cloud(
        self,
        stamp_ns: int,
        points: np.ndarray,
        colors: np.ndarray,
        confidence: np.ndarray,
        frame_id: str | None = None,
    ) -> Any:
        """sensor_msgs/PointCloud2 (height 1, is_dense) of (N,3) points, (N,3) uint8 RGB, (N,) conf.

        Points with any non-finite coordinate are dropped first, so is_dense is true.
        frame_id defaults to the map frame (WindowCloud and MapChanged are in the map).
        """
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        conf = np.asarray(confidence, dtype=np.float32).reshape(-1)
        if not (len(pts) == len(cols) == len(conf)):
            raise ValueError(f"points {len(pts)}, colors {len(cols)}, confidence {len(conf)} differ")
        keep = np.isfinite(pts).all(axis=1)
        if not keep.all():
            pts, cols, conf = pts[keep], cols[keep], conf[keep]
        n = len(pts)
        cloud = np.empty((n, len(CLOUD_FIELDS)), dtype="<f4")  # CLOUD_DTYPE's layout: 5 float32 per point
        cloud[:, :3] = pts
        cloud[:, 3] = pack_rgb(cols)
        cloud[:, 4] = conf
        fields = [
            self._msg(
                "sensor_msgs/msg/PointField",
                name=name,
                offset=CLOUD_OFFSETS[name],
                datatype=POINTFIELD_FLOAT32,
                count=1,
            )
            for name in CLOUD_FIELDS
        ]
        return self._msg(
            "sensor_msgs/msg/PointCloud2",
            header=self.header(stamp_ns, frame_id or self.map_frame),
            height=1,
            width=n,
            fields=fields,
            is_bigendian=False,
            point_step=CLOUD_POINT_STEP,
            row_step=CLOUD_POINT_STEP * n,
            data=self.family.sequence(cloud.view(np.uint8).reshape(-1)),
            is_dense=True,
        )

    def cloud(self, update: Any) -> Any:
        """PointCloud2 of a WindowCloud or MapChanged update (map frame)."""
        return self.point_cloud(update.stamp_ns, update.points, update.colors, update.confidence)

    # ------------------------------------------------------------------ custom
    def keyframe(
        self,
        kf: KeyframeAdded,
        alignment_residual: float | None = None,
        alignment_inliers: int | None = None,
    ) -> Any:
        """vggt_ros_msgs/Keyframe; the alignment numbers are those of the window that added it
        (kf.residual_rel / kf.num_inliers unless given)."""
        return self._msg(
            "vggt_ros_msgs/msg/Keyframe",
            header=self.header(kf.stamp_ns, self.map_frame),
            keyframe_id=int(kf.keyframe_id),
            frame_index=int(kf.frame_index),
            window_id=int(kf.window_id),
            camera_frame_id=kf.frame_id,
            pose=self.pose(kf.T_map_cam),
            camera_info=self.camera_info(kf.stamp_ns, kf.frame_id, kf.K, kf.width, kf.height),
            scale=float(kf.scale),
            alignment_residual=float(kf.residual_rel if alignment_residual is None else alignment_residual),
            alignment_inliers=int(kf.num_inliers if alignment_inliers is None else alignment_inliers),
            segment_id=int(kf.segment_id),
        )

    def loop_closure(self, ev: LoopClosure) -> Any:
        """vggt_ros_msgs/LoopClosure of a pose-graph correction (map frame)."""
        return self._msg(
            "vggt_ros_msgs/msg/LoopClosure",
            header=self.header(ev.stamp_ns, self.map_frame),
            query_keyframe_id=int(ev.query_keyframe_id),
            match_keyframe_id=int(ev.match_keyframe_id),
            match_stamp=time_msg(self.family, ev.match_stamp_ns),
            score=float(ev.score),
            num_inliers=int(ev.num_inliers),
            merged_segment=int(ev.merged_segment),
            correction_m=float(ev.correction_m),
            correction_deg=float(ev.correction_deg),
            correction_scale=float(ev.correction_scale),
        )

    def window_stats(
        self,
        stats: WindowStats,
        frames_dropped: int = 0,
        windows_rejected: int = 0,
        total_time_s: float | None = None,
    ) -> Any:
        """vggt_ros_msgs/WindowStats; timings from stats.timings_s keys 'predict', 'stitch', 'total'
        (slam.updates.WindowStats names them).

        frames_dropped / windows_rejected are the runtime's cumulative counters.
        total_time_s overrides timings_s['total'] (the runtime measures stamp-to-publish).
        """
        t = stats.timings_s

        def timing(key: str) -> float:
            return float(t.get(key, math.nan))

        total = timing("total") if total_time_s is None else float(total_time_s)
        return self._msg(
            "vggt_ros_msgs/msg/WindowStats",
            header=self.header(stats.stamp_ns, self.map_frame),
            window_id=int(stats.window_id),
            num_frames=int(stats.num_frames),
            num_new_frames=int(stats.num_new),
            anchor_keyframe_ids=self.family.sequence(np.asarray(stats.anchor_keyframe_ids, dtype=np.uint32)),
            accepted=bool(stats.accepted),
            reason=str(stats.reason),
            scale=float(stats.scale),
            residual_rms=float(stats.residual_rms),
            num_inliers=int(stats.num_inliers),
            num_correspondences=int(stats.num_correspondences),
            predict_time_s=timing("predict"),
            stitch_time_s=timing("stitch"),
            total_time_s=total,
            frames_dropped=int(frames_dropped),
            windows_rejected=int(windows_rejected),
            tracking_state=str(stats.tracking_state),
            segment_id=int(stats.segment_id),
            scale_state=str(stats.scale_state),
            metric_scale=float(stats.metric_scale),
            metric_scale_sigma=float(stats.metric_scale_sigma),
        )

    def diagnostics(self, stamp_ns: int, statuses: Sequence[Diagnostic]) -> Any:
        """diagnostic_msgs/DiagnosticArray (header frame_id empty, as diagnostic_updater does)."""
        return self._msg(
            "diagnostic_msgs/msg/DiagnosticArray",
            header=self.header(stamp_ns, ""),
            status=[
                self._msg(
                    "diagnostic_msgs/msg/DiagnosticStatus",
                    level=self.family.byte(s.level),
                    name=s.name,
                    message=s.message,
                    hardware_id=s.hardware_id,
                    values=[
                        self._msg("diagnostic_msgs/msg/KeyValue", key=str(k), value=str(v))
                        for k, v in s.values.items()
                    ],
                )
                for s in statuses
            ],
        )
