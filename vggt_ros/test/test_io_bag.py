"""Bag reading (ROS 1 .bag, ROS 2 .db3 / .mcap / directories) and .mcap writing with QoS metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_independent import read_mcap
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores
from rosbags.typesys import get_typestore as rosbags_typestore
from vggt_ros.io.bag import (
    QOS_LATCHED,
    QOS_PROFILES,
    QOS_SENSOR_DATA,
    QOS_TF_STATIC,
    BagWriter,
    bag_topics,
    read_messages,
)
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.decode import decode_image
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.msgs.stamps import stamp_ns
from vggt_ros.msgs.typestore import get_typestore

RGB = (np.arange(4 * 6 * 3) * 11 % 256).astype(np.uint8).reshape(4, 6, 3)


@pytest.fixture
def b() -> MessageBuilder:
    return MessageBuilder(RosbagsFamily())


def test_qos_metadata_in_mcap_channels_and_rosbags(tmp_path: Path, b: MessageBuilder) -> None:
    path = tmp_path / "q.mcap"
    with BagWriter(path) as w:
        w.add_topic("/camera/image_raw", "sensor_msgs/msg/Image", QOS_SENSOR_DATA)
        w.add_topic("map", "sensor_msgs/msg/PointCloud2", QOS_LATCHED)
        w.write("/camera/image_raw", 10, b.rgb_image(10, "cam", RGB))
        w.write("map", 11, b.point_cloud(11, np.ones((1, 3)), np.ones((1, 3), np.uint8), np.ones(1)))
        w.write("/tf_static", 12, b.tf_message([b.transform_stamped(12, "base", "cam", np.eye(4))]))
        w.write("/tf", 13, b.tf_message([b.transform_stamped(13, "map", "cam", np.eye(4))]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.mcap"]  # one self-contained file
    # rosbag2 QoS enums (metadata v8, integers): reliability 1 reliable / 2 best effort,
    # durability 1 transient local / 2 volatile
    want = {"/camera/image_raw": (2, 2, 5), "map": (1, 1, 1), "/tf_static": (1, 1, 1),
            "/tf": (1, 2, 100)}
    seen = {}
    for d in read_mcap(path):
        (profile,) = yaml.safe_load(d.channel_metadata["offered_qos_profiles"])
        seen[d.topic] = (profile["reliability"], profile["durability"], profile["depth"])
        assert profile["history"] == 1  # keep last
    assert seen == want
    topics = bag_topics(path)
    assert topics["/camera/image_raw"].qos[0].reliability == QosReliability.BEST_EFFORT
    assert topics["/tf_static"].qos == (QOS_TF_STATIC,)
    assert topics["map"].qos[0].durability == QosDurability.TRANSIENT_LOCAL
    assert {t: i.count for t, i in topics.items()} == {t: 1 for t in want}
    with open(path, "rb") as f:  # rosbag2's own metadata record, as `ros2 bag record` writes it
        meta = {m.name: m.metadata for m in make_reader(f).iter_metadata()}
    info = yaml.safe_load(meta["rosbag2"]["serialized_metadata"])
    assert info["storage_identifier"] == "mcap" and info["message_count"] == 4 and info["version"] == 8
    assert info["relative_file_paths"] == ["q.mcap"]


def test_qos_profile_names() -> None:
    assert set(QOS_PROFILES) == {"sensor_data", "reliable_volatile", "reliable_transient_local", "tf",
                                 "tf_static"}
    assert QOS_PROFILES["reliable_transient_local"].depth == 1


def test_log_time_order_is_deterministic(tmp_path: Path, b: MessageBuilder) -> None:
    path = tmp_path / "o.mcap"
    writes = [("/a", 30), ("/b", 10), ("/a", 20), ("/c", 20), ("/b", 20), ("/a", 5)]
    with BagWriter(path) as w:
        for topic, t in writes:
            w.write(topic, t, b.rgb_image(t, topic, RGB))
    got = [(m.topic, m.stamp_ns) for m in read_messages(path)]
    # sorted by log time; equal times keep write order
    assert got == [("/a", 5), ("/b", 10), ("/a", 20), ("/c", 20), ("/b", 20), ("/a", 30)]
    assert got == [(m.topic, m.stamp_ns) for m in read_messages(path)]
    assert [m.stamp_ns for m in read_messages(path, ["/b"])] == [10, 20]
    assert list(read_messages(path, ["/nothing"])) == []


def test_overwrite_and_directory_output(tmp_path: Path, b: MessageBuilder) -> None:
    path = tmp_path / "x.mcap"
    with BagWriter(path) as w:
        w.write("/a", 1, b.rgb_image(1, "cam", RGB))
    with pytest.raises(FileExistsError):
        BagWriter(path)
    with BagWriter(path, overwrite=True) as w:
        w.write("/z", 2, b.rgb_image(2, "cam", RGB))
    assert [m.topic for m in read_messages(path)] == ["/z"]
    d = tmp_path / "bagdir"
    with BagWriter(d) as w:
        w.write("/a", 3, b.rgb_image(3, "cam", RGB))
    assert (d / "metadata.yaml").is_file() and (d / "bagdir.mcap").is_file()
    (m,) = read_messages(d)
    np.testing.assert_array_equal(decode_image(m.message), RGB)
    with pytest.raises(ValueError):
        with BagWriter(tmp_path / "t.mcap") as w:
            w.write("/a", 1, b.rgb_image(1, "cam", RGB))
            w.write("/a", 2, b.camera_info(2, "cam", np.eye(3), 6, 4))


def test_custom_messages_roundtrip_through_rosbags(tmp_path: Path, b: MessageBuilder) -> None:
    from vggt_ros.slam.updates import WindowStats

    path = tmp_path / "c.mcap"
    stats = WindowStats(3, 77, 8, 4, (0, 1), True, "ok", 1.5, 0.01, 30, 40, {"predict": 0.2})
    with BagWriter(path) as w:
        w.write("window_stats", 77, b.window_stats(stats, frames_dropped=5))
    (m,) = read_messages(path)
    assert m.msgtype == "vggt_ros_msgs/msg/WindowStats"
    got = (m.message.window_id, m.message.frames_dropped, list(m.message.anchor_keyframe_ids))
    assert got == (3, 5, [0, 1])


def test_read_ros2_sqlite3_directory_and_file(tmp_path: Path, b: MessageBuilder) -> None:
    ts = get_typestore()
    d = tmp_path / "sq"
    with Writer2(d, version=8, storage_plugin=StoragePlugin.SQLITE3) as w:
        conn = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        for t in (200, 100):
            w.write(conn, t, ts.serialize_cdr(b.rgb_image(t, "cam", RGB), "sensor_msgs/msg/Image"))
    for path in (d, d / "sq.db3"):
        msgs = list(read_messages(path))
        assert [m.stamp_ns for m in msgs] == [100, 200]
        assert [stamp_ns(m.message.header.stamp) for m in msgs] == [100, 200]
        np.testing.assert_array_equal(decode_image(msgs[0].message), RGB)


def test_read_ros1_bag(tmp_path: Path) -> None:
    ts1 = rosbags_typestore(Stores.ROS1_NOETIC)
    Image, Header, Time = (ts1.types[n] for n in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                  "builtin_interfaces/msg/Time"))
    path = tmp_path / "old.bag"
    with Writer1(path) as w:
        conn = w.add_connection("/usb_cam/image_raw", "sensor_msgs/msg/Image", typestore=ts1)
        for i, t in enumerate((1_500_000_000_250_000_000, 1_500_000_000_283_333_333)):
            sec, ns = divmod(t, 10**9)
            msg = Image(header=Header(seq=i, stamp=Time(sec=sec, nanosec=ns), frame_id="usb_cam"),
                        height=4, width=6, encoding="bgr8", is_bigendian=0, step=18,
                        data=np.ascontiguousarray(RGB[..., ::-1]).reshape(-1))
            w.write(conn, t, ts1.serialize_ros1(msg, "sensor_msgs/msg/Image"))
    msgs = list(read_messages(path))
    assert [m.msgtype for m in msgs] == ["sensor_msgs/msg/Image"] * 2
    assert [stamp_ns(m.message.header.stamp) for m in msgs] == [1_500_000_000_250_000_000,
                                                                  1_500_000_000_283_333_333]
    np.testing.assert_array_equal(decode_image(msgs[1].message), RGB)
    assert bag_topics(path)["/usb_cam/image_raw"].count == 2


def test_corrupt_payload_is_reported_not_raised(tmp_path: Path, b: MessageBuilder) -> None:
    ts = get_typestore()
    d = tmp_path / "bad"
    with Writer2(d, version=8, storage_plugin=StoragePlugin.MCAP) as w:
        conn = w.add_connection("/camera/image_raw", "sensor_msgs/msg/Image", typestore=ts)
        w.write(conn, 1, ts.serialize_cdr(b.rgb_image(1, "cam", RGB), "sensor_msgs/msg/Image"))
        w.write(conn, 2, b"\x00\x01\x00\x00\xff\xff")  # CDR header then garbage
        w.write(conn, 3, ts.serialize_cdr(b.rgb_image(3, "cam", RGB), "sensor_msgs/msg/Image"))
    msgs = list(read_messages(d))
    assert [m.error is None for m in msgs] == [True, False, True]
    assert msgs[1].message is None and msgs[1].error.startswith("deserialize")
    assert stamp_ns(msgs[2].message.header.stamp) == 3


def test_missing_bag() -> None:
    with pytest.raises(FileNotFoundError):
        list(read_messages("/nonexistent/x.mcap"))
