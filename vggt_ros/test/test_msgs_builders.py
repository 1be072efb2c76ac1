"""Builders with rosbags classes -> CDR -> .mcap -> decoded by mcap-ros2-support, field by field."""

from __future__ import annotations

import array
import math
from typing import Any

import numpy as np
import pytest
from mcap_independent import read_mcap
from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw
from vggt_ros.geometry.se3 import apply_T, invert_T, make_T, rot_x, rot_y, rot_z
from vggt_ros.io.bag import BagWriter
from vggt_ros.msgs.builders import (
    CLOUD_POINT_STEP,
    DIAG_WARN,
    POINTFIELD_FLOAT32,
    Diagnostic,
    MessageBuilder,
    pack_rgb,
    unpack_rgb,
)
from vggt_ros.msgs.family import RclpyFamily, RosbagsFamily
from vggt_ros.msgs.typestore import get_typestore
from vggt_ros.slam.updates import DepthFrame, FramePose, KeyframeAdded, WindowCloud, WindowStats

STAMP = 1_732_000_000_123_456_789  # a realistic epoch stamp with all 9 ns digits used
K = np.array([[210.5, 0.0, 161.25], [0.0, 211.0, 119.75], [0.0, 0.0, 1.0]])
T_MAP_CAM = make_T(rot_z(0.7) @ rot_y(-0.2) @ rot_x(-np.pi / 2), [1.5, -2.25, 0.375])


@pytest.fixture
def builder() -> MessageBuilder:
    return MessageBuilder(RosbagsFamily(), map_frame="map")


def roundtrip(tmp_path: Any, items: list[tuple[str, Any]]) -> dict[str, Any]:
    """Write (topic, msg) at STAMP through CDR into an .mcap; decode with the independent reader."""
    path = tmp_path / "out.mcap"
    with BagWriter(path) as w:
        for topic, msg in items:
            w.write(topic, STAMP, msg)
    decoded = read_mcap(path)
    assert [d.topic for d in decoded] == [t for t, _ in items]
    for d, (_, msg) in zip(decoded, items):
        assert d.schema == msg.__msgtype__
        assert d.log_time == STAMP
    return {d.topic: d.msg for d in decoded}


def assert_stamp(header: Any, frame_id: str) -> None:
    assert header.stamp.sec == 1_732_000_000
    assert header.stamp.nanosec == 123_456_789
    assert header.frame_id == frame_id


def T_of_pose(position: Any, orientation: Any) -> np.ndarray:
    q = np.array([orientation.x, orientation.y, orientation.z, orientation.w])
    return make_T(matrix_from_quat_xyzw(q), [position.x, position.y, position.z])


def test_tf_direction_against_known_pose(tmp_path: Any, builder: MessageBuilder) -> None:
    pose = FramePose(STAMP, 7, "camera_optical_frame", T_MAP_CAM, window_id=2)
    msg = roundtrip(tmp_path, [("/tf", builder.tf_message([builder.tf(pose)]))])["/tf"]
    (tf,) = msg.transforms
    assert_stamp(tf.header, "map")
    assert tf.child_frame_id == "camera_optical_frame"
    tr, rot = tf.transform.translation, tf.transform.rotation
    # tf2: the transform parent -> child maps child-frame points into the parent frame
    R = matrix_from_quat_xyzw(np.array([rot.x, rot.y, rot.z, rot.w]))
    p_cam = np.array([[0.3, -0.2, 2.0], [0.0, 0.0, 1.0], [-1.0, 0.5, 4.0]])
    p_map_msg = p_cam @ R.T + np.array([tr.x, tr.y, tr.z])
    np.testing.assert_allclose(p_map_msg, apply_T(T_MAP_CAM, p_cam), atol=1e-12)
    # and not the inverse (a sign/direction bug would pass a pure-rotation-free test)
    assert np.abs(p_map_msg - apply_T(invert_T(T_MAP_CAM), p_cam)).max() > 0.5
    assert math.isclose(rot.x**2 + rot.y**2 + rot.z**2 + rot.w**2, 1.0, rel_tol=1e-12)


def test_depth_image_and_camera_info(tmp_path: Any, builder: MessageBuilder) -> None:
    h, w = 6, 8
    depth = np.linspace(0.5, 7.5, h * w, dtype=np.float32).reshape(h, w)
    depth[1, 2] = np.nan
    depth[4, 7] = np.nan
    K_small = K * np.array([[w / 320, 1, w / 320], [1, h / 240, h / 240], [1, 1, 1]])
    frame = DepthFrame(STAMP, 3, "cam_optical", depth, np.ones_like(depth), K_small)
    img, info = builder.depth(frame)
    out = roundtrip(tmp_path, [("depth", img), ("depth/camera_info", info)])
    d, ci = out["depth"], out["depth/camera_info"]
    assert_stamp(d.header, "cam_optical")
    assert (d.height, d.width, d.encoding, d.is_bigendian, d.step) == (h, w, "32FC1", 0, 4 * w)
    got = np.frombuffer(bytes(d.data), dtype="<f4").reshape(h, w)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(depth))
    assert np.isnan(got).sum() == 2
    np.testing.assert_array_equal(got[~np.isnan(got)], depth[~np.isnan(depth)])
    assert_stamp(ci.header, "cam_optical")
    assert (ci.height, ci.width) == (h, w)  # K at the depth resolution
    np.testing.assert_array_equal(np.array(ci.k).reshape(3, 3), K_small)
    P = np.array(ci.p).reshape(3, 4)
    np.testing.assert_array_equal(P[:, :3], K_small)
    np.testing.assert_array_equal(P[:, 3], 0.0)
    np.testing.assert_array_equal(np.array(ci.r).reshape(3, 3), np.eye(3))
    assert ci.distortion_model == "plumb_bob"
    assert list(ci.d) == [0.0] * 5


def test_rgb_image(tmp_path: Any, builder: MessageBuilder) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = roundtrip(tmp_path, [("img", builder.rgb_image(STAMP, "cam", rgb))])["img"]
    assert (msg.height, msg.width, msg.encoding, msg.step) == (5, 7, "rgb8", 21)
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.uint8).reshape(5, 7, 3), rgb)
    with pytest.raises(ValueError):
        builder.rgb_image(STAMP, "cam", rgb.astype(np.float32))


def test_point_cloud2_layout_and_rgb_as_rviz_reads_it(tmp_path: Any, builder: MessageBuilder) -> None:
    pts = np.array([[1.0, 2.0, 3.0], [np.nan, 0.0, 1.0], [-4.5, 0.25, 8.0], [0.0, np.inf, 0.0],
                    [7.0, -8.0, 9.5]], dtype=np.float32)
    cols = np.array([[255, 128, 1], [9, 9, 9], [0, 0, 0], [1, 2, 3], [18, 52, 86]], dtype=np.uint8)
    conf = np.array([1.5, 2.0, 3.25, 4.0, 100.0], dtype=np.float32)
    cloud = WindowCloud(STAMP, 4, pts, cols, conf)
    msg = roundtrip(tmp_path, [("points", builder.cloud(cloud))])["points"]
    assert_stamp(msg.header, "map")
    n = 3  # two non-finite points dropped
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, n, 20, 20 * n)
    assert CLOUD_POINT_STEP == 20
    assert msg.is_dense is True and msg.is_bigendian is False
    fields = [(f.name, f.offset, f.datatype, f.count) for f in msg.fields]
    assert fields == [("x", 0, POINTFIELD_FLOAT32, 1), ("y", 4, 7, 1), ("z", 8, 7, 1),
                      ("rgb", 12, 7, 1), ("confidence", 16, 7, 1)]
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(n, 20)
    xyz = raw[:, 0:12].copy().view("<f4")
    np.testing.assert_array_equal(xyz, pts[[0, 2, 4]])
    # RViz's RGB8 transformer reinterprets the float32 'rgb' bits as uint32 0x00RRGGBB
    rgb_u32 = raw[:, 12:16].copy().view("<u4").reshape(n)
    assert [hex(v) for v in rgb_u32] == ["0xff8001", "0x0", "0x123456"]
    np.testing.assert_array_equal(raw[:, 16:20].copy().view("<f4").reshape(n), conf[[0, 2, 4]])


def test_pack_unpack_rgb_all_values() -> None:
    rng = np.random.default_rng(3)
    cols = rng.integers(0, 256, (5000, 3), dtype=np.uint8)
    cols[0] = [255, 255, 255]
    packed = pack_rgb(cols)
    assert packed.dtype == np.float32
    assert np.isfinite(packed).all()  # top byte 0: never a NaN pattern that filters could eat
    np.testing.assert_array_equal(unpack_rgb(packed), cols)


def test_empty_cloud(tmp_path: Any, builder: MessageBuilder) -> None:
    empty = builder.point_cloud(STAMP, np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0))
    msg = roundtrip(tmp_path, [("map", empty)])["map"]
    assert (msg.width, msg.row_step, len(bytes(msg.data))) == (0, 0, 0)
    with pytest.raises(ValueError):
        builder.point_cloud(STAMP, np.zeros((2, 3)), np.zeros((3, 3), np.uint8), np.zeros(2))


def test_path_and_odometry(tmp_path: Any, builder: MessageBuilder) -> None:
    poses = [
        FramePose(STAMP - 2 * 33_333_333, 0, "cam", make_T(np.eye(3), [0, 0, 0]), 0),
        FramePose(STAMP - 33_333_333, 1, "cam", make_T(rot_z(0.1), [0.1, 0, 0]), 0),
        FramePose(STAMP, 2, "cam", T_MAP_CAM, 1),
    ]
    out = roundtrip(tmp_path, [("path", builder.path(STAMP, poses)),
                               ("odometry", builder.odometry(STAMP, T_MAP_CAM, poses[2].frame_id))])
    path = out["path"]
    assert_stamp(path.header, "map")
    assert len(path.poses) == 3
    for ps, fp in zip(path.poses, poses):
        assert ps.header.frame_id == "map"
        assert ps.header.stamp.sec * 10**9 + ps.header.stamp.nanosec == fp.stamp_ns
        np.testing.assert_allclose(T_of_pose(ps.pose.position, ps.pose.orientation), fp.T_map_cam, atol=1e-12)
    odo = out["odometry"]
    assert_stamp(odo.header, "map")
    assert odo.child_frame_id == "cam"
    np.testing.assert_allclose(T_of_pose(odo.pose.pose.position, odo.pose.pose.orientation), T_MAP_CAM,
                               atol=1e-12)
    assert list(odo.pose.covariance) == [0.0] * 36
    assert odo.twist.twist.linear.x == 0.0


def test_keyframe_and_window_stats(tmp_path: Any, builder: MessageBuilder) -> None:
    kf = KeyframeAdded(keyframe_id=5, frame_index=123, stamp_ns=STAMP, frame_id="cam_opt",
                       T_map_cam=T_MAP_CAM, K=K, size=(240, 320), window_id=9, scale=0.75)
    stats = WindowStats(window_id=9, stamp_ns=STAMP, num_frames=8, num_new=4, anchor_keyframe_ids=(2, 4, 5),
                        accepted=False, reason="too_few_inliers", scale=1.25, residual_rms=0.031,
                        num_inliers=12, num_correspondences=40, timings_s={"predict": 0.5, "stitch": 0.02})
    out = roundtrip(tmp_path, [
        ("keyframes", builder.keyframe(kf, alignment_residual=0.031, alignment_inliers=12)),
        ("window_stats",
         builder.window_stats(stats, frames_dropped=17, windows_rejected=3, total_time_s=0.7)),
    ])
    m = out["keyframes"]
    assert_stamp(m.header, "map")
    assert (m.keyframe_id, m.frame_index, m.window_id, m.camera_frame_id) == (5, 123, 9, "cam_opt")
    np.testing.assert_allclose(T_of_pose(m.pose.position, m.pose.orientation), T_MAP_CAM, atol=1e-12)
    assert (m.camera_info.width, m.camera_info.height) == (320, 240)
    assert_stamp(m.camera_info.header, "cam_opt")
    np.testing.assert_array_equal(np.array(m.camera_info.k).reshape(3, 3), K)
    assert m.scale == 0.75 and m.alignment_inliers == 12 and m.segment_id == 0
    assert m.alignment_residual == pytest.approx(0.031, rel=1e-6)  # float32
    s = out["window_stats"]
    assert_stamp(s.header, "map")
    assert (s.window_id, s.num_frames, s.num_new_frames) == (9, 8, 4)
    assert list(s.anchor_keyframe_ids) == [2, 4, 5]
    assert (s.accepted, s.reason) == (False, "too_few_inliers")
    assert (s.num_inliers, s.num_correspondences, s.frames_dropped, s.windows_rejected) == (12, 40, 17, 3)
    assert s.scale == 1.25
    assert s.predict_time_s == pytest.approx(0.5) and s.stitch_time_s == pytest.approx(0.02, rel=1e-6)
    assert s.total_time_s == pytest.approx(0.7, rel=1e-6)


def test_window_stats_missing_timing_is_nan(builder: MessageBuilder) -> None:
    stats = WindowStats(1, STAMP, 2, 1, (0,), True, "ok", 1.0, 0.0, 5, 5, {"predict": 0.25})
    m = builder.window_stats(stats)
    assert m.predict_time_s == 0.25 and math.isnan(m.stitch_time_s) and math.isnan(m.total_time_s)


def test_diagnostics(tmp_path: Any, builder: MessageBuilder) -> None:
    diag = Diagnostic("vggt_ros: runtime", DIAG_WARN, "dropping frames", "sim",
                      {"frames_dropped": "4", "queue": "2/5"})
    msg = roundtrip(tmp_path, [("/diagnostics", builder.diagnostics(STAMP, [diag]))])["/diagnostics"]
    assert_stamp(msg.header, "")
    (st,) = msg.status
    assert (st.level, st.name, st.message) == (1, "vggt_ros: runtime", "dropping frames")
    assert st.hardware_id == "sim"
    assert [(kv.key, kv.value) for kv in st.values] == [("frames_dropped", "4"), ("queue", "2/5")]


def test_rclpy_family_hooks_without_ros() -> None:
    fam = RclpyFamily()  # only the hooks: importing classes needs a ROS install
    seq = fam.sequence(np.array([1, 2, 300], dtype=np.uint32))
    assert isinstance(seq, array.array) and seq.typecode == "I" and list(seq) == [1, 2, 300]
    data = fam.sequence(np.frombuffer(b"\x00\xff\x10", np.uint8))
    assert data.typecode == "B" and data.tobytes() == b"\x00\xff\x10"
    assert fam.sequence(np.array([0.5, -1.0])).typecode == "d"
    assert fam.byte(2) == b"\x02"


class _StrictFamily:
    """Keyword-only classes that demand exactly the typestore's fields (as rclpy's __init__ checks
    names), with rclpy-style hooks: catches a builder that passes a field positionally, forgets
    one, or hands a numpy array where rclpy needs an array.array."""

    name = "strict"

    def __init__(self) -> None:
        self.store = get_typestore()
        self.hooks = RclpyFamily()

    def cls(self, msgtype: str) -> Any:
        names = [f[0] for f in self.store.fielddefs[msgtype][1]]
        kinds = {f[0]: f[1] for f in self.store.fielddefs[msgtype][1]}

        def make(**kw: Any) -> dict[str, Any]:
            assert sorted(kw) == sorted(names), (msgtype, sorted(kw), sorted(names))
            for key, (kind, *rest) in kinds.items():
                elem = rest[0][0] if kind.name == "SEQUENCE" else None
                if elem is not None and elem[0].name == "BASE" and elem[1][0] != "string":
                    assert isinstance(kw[key], (array.array, list)), (msgtype, key, type(kw[key]))
            return {"__msgtype__": msgtype, **kw}

        return make

    def sequence(self, values: np.ndarray) -> Any:
        return self.hooks.sequence(values)

    def byte(self, value: int) -> Any:
        return self.hooks.byte(value)


def test_every_builder_passes_all_fields_by_keyword() -> None:
    b = MessageBuilder(_StrictFamily(), "map")
    pose = FramePose(STAMP, 0, "cam", T_MAP_CAM, 0)
    kf = KeyframeAdded(0, 0, STAMP, "cam", T_MAP_CAM, K, (240, 320), 0)
    stats = WindowStats(0, STAMP, 2, 1, (0,), True, "ok", 1.0, 0.0, 5, 5)
    depth = DepthFrame(STAMP, 0, "cam", np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), K)
    built = [
        b.tf_message([b.tf(pose)]), b.path(STAMP, [pose]), b.odometry(STAMP, T_MAP_CAM, "cam"),
        *b.depth(depth),
        b.rgb_image(STAMP, "cam", np.zeros((2, 2, 3), np.uint8)),
        b.point_cloud(STAMP, np.ones((2, 3)), np.ones((2, 3), np.uint8), np.ones(2)),
        b.keyframe(kf), b.window_stats(stats), b.diagnostics(STAMP, [Diagnostic("a", 0, "ok")]),
    ]
    assert [m["__msgtype__"] for m in built][-3:] == [
        "vggt_ros_msgs/msg/Keyframe", "vggt_ros_msgs/msg/WindowStats", "diagnostic_msgs/msg/DiagnosticArray"]
    assert built[-1]["status"][0]["level"] == b"\x00"


def test_loop_closure_message(tmp_path: Any, builder: MessageBuilder) -> None:
    from vggt_ros.slam.updates import LoopClosure

    ev = LoopClosure(STAMP, 40, 2, STAMP - 10**9, 0.93, 120, -1, 0.25, 1.5, 1.02)
    m = roundtrip(tmp_path, [("loop_closures", builder.loop_closure(ev))])["loop_closures"]
    assert_stamp(m.header, "map")
    assert (m.query_keyframe_id, m.match_keyframe_id, m.num_inliers, m.merged_segment) == (40, 2, 120, -1)
    assert m.match_stamp.sec * 10**9 + m.match_stamp.nanosec == STAMP - 10**9
    assert m.correction_m == 0.25 and m.correction_scale == pytest.approx(1.02)


def test_path_reuses_pose_messages_and_rebuilds_corrected_ones(builder: MessageBuilder) -> None:
    """The path grows every window: a pose's PoseStamped is built once; a corrected pose (a new FramePose
    object) is rebuilt; the values equal a fresh build."""
    import dataclasses

    poses = [FramePose(1000 + i, i, "cam", make_T(rot_z(0.1 * i), [i, 0, 0]), 0, False) for i in range(50)]
    first = builder.path(5, poses[:40])
    moved = dataclasses.replace(poses[10], T_map_cam=make_T(rot_z(1.0), [0, 2, 0]))
    poses[10] = moved
    second = builder.path(6, poses)
    assert all(second.poses[i] is first.poses[i] for i in range(40) if i != 10)
    assert second.poses[10] is not first.poses[10]
    fresh = MessageBuilder(RosbagsFamily(), map_frame="map").path(6, poses)
    for a, b in zip(second.poses, fresh.poses):
        assert a.header.stamp == b.header.stamp and a.pose.position == b.pose.position
        assert a.pose.orientation == b.pose.orientation
    assert second.poses[10].pose.position.y == 2.0
    more = [FramePose(5000 + i, i, "cam", make_T(np.eye(3), [i, 0, 0]), 0, False) for i in range(150)]
    builder.path(7, more)
    builder.path(8, more[-5:])  # poses that left the path are forgotten
    assert sorted(builder._path_poses) == [p.stamp_ns for p in more[-5:]]
