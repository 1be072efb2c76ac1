"""Replay reads ROS 1 bags too: a bgr8 image stream with CameraInfo in a .bag (rosbags' ROS 1 writer)."""

from __future__ import annotations

import json

import numpy as np
from rosbags.rosbag1 import Writer as Writer1
from rosbags.typesys import Stores, get_typestore
from vggt_ros.io.tum import read_tum
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.replay import replay
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor

N_FRAMES = 40  # 16 + 12 + 12: every frame leaves in a full window


def write_ros1_bag(path, frames):
    """frames as ROS 1 bgr8 Images + CameraInfo (Noetic definitions: header.seq, K/D/R/P)."""
    ts1 = get_typestore(Stores.ROS1_NOETIC)
    T = ts1.types
    Header, Time = T["std_msgs/msg/Header"], T["builtin_interfaces/msg/Time"]
    with Writer1(path) as w:
        c_img = w.add_connection("/usb_cam/image_raw", "sensor_msgs/msg/Image", typestore=ts1)
        c_info = w.add_connection("/usb_cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=ts1)
        for i, f in enumerate(frames):
            sec, ns = divmod(f.stamp_ns, 10**9)
            hdr = Header(seq=i, stamp=Time(sec=sec, nanosec=ns), frame_id=f.frame_id)
            h, wd = f.rgb.shape[:2]
            roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                         do_rectify=False)
            P = np.zeros((3, 4))
            P[:, :3] = f.K
            info = T["sensor_msgs/msg/CameraInfo"](
                header=hdr, height=h, width=wd, distortion_model="plumb_bob", D=np.zeros(5),
                K=f.K.reshape(9).copy(), R=np.eye(3).reshape(9), P=P.reshape(12), binning_x=0, binning_y=0,
                roi=roi)
            bgr = np.ascontiguousarray(f.rgb[..., ::-1]).reshape(-1)
            img = T["sensor_msgs/msg/Image"](header=hdr, height=h, width=wd, encoding="bgr8", is_bigendian=0,
                                            step=wd * 3, data=bgr)
            w.write(c_info, f.stamp_ns, ts1.serialize_ros1(info, "sensor_msgs/msg/CameraInfo"))
            w.write(c_img, f.stamp_ns, ts1.serialize_ros1(img, "sensor_msgs/msg/Image"))


def test_replay_of_a_ros1_bag(tmp_path):
    seq = make_sequence("loop", 300, width=128, height=96)
    frames = [seq[i] for i in range(N_FRAMES)]
    bag = tmp_path / "cam.bag"
    write_ros1_bag(bag, frames)
    # the ground truth comes from the sequence (a ROS 1 camera bag has none); the replay path is the same
    res = replay(bag, tmp_path / "out", Params({"predictor": "simulated"}), progress=False,
                 predictor=SimulatedPredictor(seq.ground_truth))
    rep = res.report
    assert res.image_topic == "/usb_cam/image_raw" and res.frames_in_bag == N_FRAMES
    assert rep["frames_processed"] == N_FRAMES and rep["frames_dropped"] == 0
    stamps, T = read_tum(tmp_path / "out" / "trajectory.tum")
    assert stamps.tolist() == [f.stamp_ns for f in frames]
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["camera_info_topic"] == "/usb_cam/camera_info"
    # the ROS 1 CameraInfo (field 'K') is read: no camera_info problems counted
    assert on_disk["camera_info_problems"] == {}, on_disk["camera_info_problems"]
