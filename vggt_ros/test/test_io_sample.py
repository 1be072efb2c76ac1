"""The sample bag: read back by rosbags AND by mcap + mcap-ros2-support; image bytes, stamps and
poses round-trip exactly; ground truth drives the simulated predictor from the bag alone."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap_independent import read_mcap
from vggt_ros.geometry.quaternion import matrix_from_quat_xyzw, quat_xyzw_from_matrix
from vggt_ros.geometry.se3 import apply_T
from vggt_ros.io import sample
from vggt_ros.io.bag import bag_topics, read_messages
from vggt_ros.io.tum import read_tum
from vggt_ros.msgs.decode import camera_info_K, decode_image
from vggt_ros.msgs.stamps import stamp_ns
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor
from vggt_ros.types import Frame

N, W, H = 10, 64, 48


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path, Path]:
    seq = make_sequence("loop", N, width=W, height=H)
    bag, tum = sample.write_sample(tmp_path_factory.mktemp("sample"), seq)
    return seq, bag, tum


def test_topics_counts_types_and_qos(written: tuple) -> None:
    _, bag, _ = written
    topics = bag_topics(bag)
    assert {t: (i.msgtype, i.count) for t, i in topics.items()} == {
        t: (sample.TOPIC_TYPES[t], 1 if t == sample.TF_STATIC_TOPIC else N) for t in sample.TOPIC_TYPES}
    assert topics["/camera/image_raw"].qos[0].reliability.name == "BEST_EFFORT"
    assert topics["/camera/camera_info"].qos[0].reliability.name == "BEST_EFFORT"
    assert topics["/ground_truth/odometry"].qos[0].reliability.name == "RELIABLE"
    assert topics["/tf"].qos[0].depth == 100


def test_rosbags_readback_exact(written: tuple) -> None:
    seq, bag, _ = written
    stamps = [int(s) for s in seq.stamps_ns]
    assert np.all(np.diff(stamps) >= 33_333_333) and np.all(np.diff(stamps) <= 33_333_334)  # 30 Hz
    by_topic: dict[str, list] = {}
    for m in read_messages(bag):
        assert m.error is None
        header = m.message.transforms[0].header if m.topic.startswith("/tf") else m.message.header
        assert stamp_ns(header.stamp) == m.stamp_ns  # logged at the header stamp
        by_topic.setdefault(m.topic, []).append(m)
    order = [m.topic for m in read_messages(bag)][: len(sample.TOPIC_TYPES)]
    assert order == list(sample.TOPIC_TYPES)  # camera_info before its image, per frame
    for i in range(N):
        frame, gt = seq[i], seq.ground_truth_at(i)
        img = by_topic["/camera/image_raw"][i]
        assert img.stamp_ns == stamps[i]
        assert (img.message.encoding, img.message.header.frame_id) == ("rgb8", "camera_optical_frame")
        assert bytes(img.message.data) == frame.rgb.tobytes()  # image bytes exact
        np.testing.assert_array_equal(decode_image(img.message), frame.rgb)
        K, reason = camera_info_K(by_topic["/camera/camera_info"][i].message, image_size=(H, W))
        assert reason == "ok"
        np.testing.assert_array_equal(K, seq.K)
        odo = by_topic["/ground_truth/odometry"][i].message
        assert (odo.header.frame_id, odo.child_frame_id) == ("world", "camera_optical_frame_gt")
        o, p = odo.pose.pose.orientation, odo.pose.pose.position
        q_want = quat_xyzw_from_matrix(gt.T_world_cam[:3, :3])
        assert [o.x, o.y, o.z, o.w] == list(q_want)  # exact: the message holds what we computed
        assert [p.x, p.y, p.z] == list(gt.T_world_cam[:3, 3])
        tf = by_topic["/tf"][i].message.transforms[0]
        assert (tf.header.frame_id, tf.child_frame_id) == ("world", "camera_optical_frame_gt")
        r, t = tf.transform.rotation, tf.transform.translation
        pt_cam = np.array([[0.1, -0.2, 1.5]])
        pt_world = pt_cam @ matrix_from_quat_xyzw(np.array([r.x, r.y, r.z, r.w])).T + [t.x, t.y, t.z]
        np.testing.assert_allclose(pt_world, apply_T(gt.T_world_cam, pt_cam), atol=1e-12)
        dep = by_topic["/ground_truth/depth"][i].message
        assert (dep.encoding, dep.step, dep.header.frame_id) == ("32FC1", 4 * W, "camera_optical_frame")
        got = np.frombuffer(bytes(dep.data), "<f4").reshape(H, W)
        np.testing.assert_array_equal(got, gt.depth)
        dinfo = by_topic["/ground_truth/depth/camera_info"][i].message
        assert (dinfo.width, dinfo.height) == (W, H)


def test_independent_mcap_reader_exact(written: tuple) -> None:
    seq, bag, _ = written
    decoded = read_mcap(bag)
    assert len(decoded) == 8 * N + 1  # + the one /tf_static
    images = [d for d in decoded if d.topic == "/camera/image_raw"]
    odos = [d for d in decoded if d.topic == "/ground_truth/odometry"]
    depths = [d for d in decoded if d.topic == "/ground_truth/depth"]
    for i, (img, odo, dep) in enumerate(zip(images, odos, depths)):
        frame, gt = seq[i], seq.ground_truth_at(i)
        assert img.log_time == odo.log_time == int(seq.stamps_ns[i])
        h = img.msg.header.stamp
        assert h.sec * 10**9 + h.nanosec == int(seq.stamps_ns[i])
        assert (img.msg.height, img.msg.width, img.msg.step, img.msg.encoding) == (H, W, 3 * W, "rgb8")
        assert bytes(img.msg.data) == frame.rgb.tobytes()
        o, p = odo.msg.pose.pose.orientation, odo.msg.pose.pose.position
        assert [o.x, o.y, o.z, o.w] == list(quat_xyzw_from_matrix(gt.T_world_cam[:3, :3]))
        assert [p.x, p.y, p.z] == list(gt.T_world_cam[:3, 3])
        np.testing.assert_array_equal(np.frombuffer(bytes(dep.msg.data), "<f4").reshape(H, W), gt.depth)
    (profile,) = yaml.safe_load(images[0].channel_metadata["offered_qos_profiles"])
    assert profile["reliability"] == 2  # best effort (sensor data)


def test_tum_ground_truth(written: tuple) -> None:
    seq, _, tum = written
    assert tum.name == "ground_truth.tum" and tum.parent == written[1].parent
    stamps, T = read_tum(tum)
    np.testing.assert_array_equal(stamps, seq.stamps_ns)
    np.testing.assert_allclose(T, seq.poses, atol=2e-9)  # 9 decimals in the file


def test_read_ground_truth_drives_simulated_predictor(written: tuple) -> None:
    seq, bag, _ = written
    lookup = sample.read_ground_truth(bag)
    for i in (0, N - 1):
        gt_bag, gt_seq = lookup(int(seq.stamps_ns[i])), seq.ground_truth_at(i)
        assert gt_bag.stamp_ns == gt_seq.stamp_ns
        np.testing.assert_allclose(gt_bag.T_world_cam, gt_seq.T_world_cam, atol=1e-12)
        np.testing.assert_array_equal(gt_bag.K, gt_seq.K)
        np.testing.assert_array_equal(gt_bag.depth, gt_seq.depth)
    with pytest.raises(KeyError):
        lookup(int(seq.stamps_ns[0]) + 1)
    # frames decoded from the bag + ground truth from the bag == the sequence's own prediction
    frames = [Frame(stamp_ns(m.message.header.stamp), decode_image(m.message), None,
                    m.message.header.frame_id) for m in read_messages(bag, ["/camera/image_raw"])][:4]
    q = np.array([[10.0, 10.0], [32.0, 24.0], [50.0, 40.0]], np.float32)
    from_bag = SimulatedPredictor(lookup, seed=3).predict(frames, q, [1, 2, 3])
    from_seq = SimulatedPredictor(seq.ground_truth, seed=3).predict([seq[i] for i in range(4)], q, [1, 2, 3])
    np.testing.assert_allclose(from_bag.T_cam_win, from_seq.T_cam_win, atol=1e-9)
    np.testing.assert_allclose(from_bag.tracks, from_seq.tracks, atol=1e-4)
    for i in (1, 2, 3):
        np.testing.assert_allclose(from_bag.depth[i], from_seq.depth[i], rtol=1e-6, equal_nan=True)


def test_read_ground_truth_refuses_a_bag_without_it(tmp_path: Path) -> None:
    from vggt_ros.io.bag import BagWriter
    from vggt_ros.msgs.builders import MessageBuilder
    from vggt_ros.msgs.family import RosbagsFamily

    b = MessageBuilder(RosbagsFamily())
    with BagWriter(tmp_path / "cam.mcap") as w:
        w.write("/camera/image_raw", 1, b.rgb_image(1, "cam", np.zeros((2, 2, 3), np.uint8)))
    with pytest.raises(ValueError, match="no complete ground truth"):
        sample.read_ground_truth(tmp_path / "cam.mcap")


def test_cli_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    sample.register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "demo"
    args = parser.parse_args(["sample", str(out), "--frames", "4", "--kind", "forward",
                              "--width", "40", "--height", "30"])
    assert args.func(args) == 0
    assert (out / "sample.mcap").is_file() and (out / "ground_truth.tum").is_file()
    assert "4 frames forward at 40x30" in capsys.readouterr().out
    assert bag_topics(out / "sample.mcap")["/camera/image_raw"].count == 4
    assert args.func(args) == 0  # rerun replaces the bag
    assert bag_topics(out / "sample.mcap")["/camera/image_raw"].count == 4
    bad = parser.parse_args(["sample", str(out), "--frames", "0"])
    assert bad.func(bad) == 2


def test_sensor_topics_metric_depth_and_odometry_chain(tmp_path: Path) -> None:
    """The robot sensors: half-resolution 16UC1 depth near the truth (1 % noise, ~10 % holes, ~2 %
    outliers) registered to the colour camera, and odom -> base_link -> camera with 2 % drift."""
    from vggt_ros.geometry.se3 import invert_T
    from vggt_ros.msgs.convert import transform_to_matrix
    from vggt_ros.msgs.decode import decode_depth_m
    from vggt_ros.sim.sensors import DepthSensor, OdometryNoise, OdometrySensor

    seq = make_sequence("forward", 40, width=160, height=120)
    sensors = sample.SensorOptions(DepthSensor(), OdometrySensor(OdometryNoise(slip_every=0)), seed=3)
    bag, _ = sample.write_sample(tmp_path, seq, sensors=sensors)
    depth = [m.message for m in read_messages(bag, [sample.DEPTH_TOPIC])]
    info = [m.message for m in read_messages(bag, [sample.DEPTH_INFO_TOPIC])]
    assert depth[0].encoding == "16UC1" and (depth[0].width, depth[0].height) == (80, 60)
    K_d, _ = camera_info_K(info[0], (60, 80))
    assert K_d is not None and np.allclose(K_d[:2], seq.K[:2] / 2)
    d = decode_depth_m(depth[5])
    truth = seq.ground_truth_at(5).depth[::2, ::2]
    holes = float(np.mean(~np.isfinite(d)))
    assert 0.08 < holes < 0.13
    ratio = d[np.isfinite(d)] / truth[np.isfinite(d)]
    assert abs(float(np.median(ratio)) - 1.0) < 0.003
    assert 0.01 < float(np.mean(np.abs(ratio - 1) > 0.1)) < 0.03  # the outliers
    static = [m.message for m in read_messages(bag, [sample.TF_STATIC_TOPIC])]
    T_base_cam = transform_to_matrix(static[0].transforms[0].transform)
    odom = [next(t for t in m.message.transforms if t.child_frame_id == "base_link")
            for m in read_messages(bag, [sample.TF_TOPIC])]
    T_odom_cam = [transform_to_matrix(t.transform) @ T_base_cam for t in odom]
    travel_odom = np.linalg.norm(T_odom_cam[-1][:3, 3] - T_odom_cam[0][:3, 3])
    P = seq.poses
    travel_true = np.linalg.norm((invert_T(P[0]) @ P[-1])[:3, 3])
    assert 0.012 < travel_odom / travel_true - 1 < 0.028
