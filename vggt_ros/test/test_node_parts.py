"""The live node's ROS-free parts: QoS table, image -> Frame, input callbacks, guarded sink, /diagnostics.

Messages are built with rosbags classes (the same builders the node uses with rclpy classes).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from vggt_ros.io.bag import QOS_PROFILES
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.decode import ImageDecodeError
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.msgs.frame import DEFAULT_OPTICAL_FRAME, image_to_frame, intrinsics_if_size
from vggt_ros.msgs.qos import QOS, live_qos, publisher_depth, qos_spec
from vggt_ros.runtime.core import NodeCore
from vggt_ros.runtime.factory import make_pipeline
from vggt_ros.runtime.live_input import LiveInput
from vggt_ros.runtime.node_status import GPU_NAME, diagnostic_array, node_counters
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.publishing import TOPICS, ListSink, Publication
from vggt_ros.runtime.sinks import DIAGNOSTIC_NAME, GuardedSink
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor


@pytest.fixture(scope="module")
def seq():
    return make_sequence("loop", 20, width=64, height=48, frame_id="cam_optical")


@pytest.fixture(scope="module")
def builder():
    return MessageBuilder(RosbagsFamily())


# ---------------------------------------------------------------- QoS (issue 10.5, issue 12.2)
def test_one_qos_table_for_the_node_and_the_bag():
    assert set(QOS_PROFILES) == set(QOS)  # io.bag derives its profiles from msgs.qos
    for kind, spec in QOS.items():
        q = QOS_PROFILES[kind]
        assert q.depth == spec.depth and q.reliability.name.lower() == spec.reliability
        assert q.durability.name.lower() == spec.durability
    assert {t.qos for t in TOPICS.values()} <= set(QOS)  # every output topic has a table entry


@pytest.mark.parametrize("anchors,new", [(4, 12), (2, 4), (8, 64)])
def test_per_frame_outputs_are_published_at_a_depth_that_covers_a_window(anchors, new):
    window = anchors + new
    params = Params({"window_anchors": anchors, "window_new_frames": new})
    assert window == params["window_anchors"] + params["window_new_frames"]
    per_frame = {name for name, t in TOPICS.items() if t.per_frame}
    assert per_frame == {"depth", "depth/camera_info", "odometry", "/tf"}  # a window's burst each
    for t in TOPICS.values():
        spec = live_qos(t.qos, window, t.per_frame)
        assert spec.reliability == "reliable"
        if t.per_frame:
            assert spec.depth >= 2 * window
        else:  # one message per window or period: the table's depth (large clouds, latched map/path)
            assert spec.depth == QOS[t.qos].depth
    assert live_qos("reliable_transient_local", window).depth == 1
    assert live_qos("sensor_data", window).depth == 5
    assert publisher_depth(1) == 10  # never below rclpy's default
    with pytest.raises(ValueError, match="no QoS kind"):
        qos_spec("fast")


# ---------------------------------------------------------------- image -> Frame (node and replay)
def test_image_to_frame_stamp_frame_id_and_intrinsics(seq, builder):
    f = seq[3]
    msg = builder.rgb_image(f.stamp_ns, f.frame_id, f.rgb)
    frame = image_to_frame(msg, intrinsics_if_size(f.K, (48, 64)))
    assert frame.stamp_ns == f.stamp_ns and frame.frame_id == "cam_optical"
    np.testing.assert_array_equal(frame.rgb, f.rgb)
    np.testing.assert_array_equal(frame.K, f.K)
    assert image_to_frame(msg, intrinsics_if_size(f.K, (480, 640))).K is None  # other size: no K
    assert image_to_frame(msg, intrinsics_if_size(f.K, (0, 0))).K is not None  # info without a size
    unnamed = builder.rgb_image(f.stamp_ns, "", f.rgb)
    assert image_to_frame(unnamed).frame_id == DEFAULT_OPTICAL_FRAME
    with pytest.raises(ImageDecodeError):
        image_to_frame(dataclasses.replace(msg, encoding="weird16"))


# ---------------------------------------------------------------- live input callbacks
def _core(seq, **params):
    p = Params({"queue_size": 64, **params})
    return NodeCore(p, make_pipeline(p, SimulatedPredictor(seq.ground_truth)), ListSink())


def test_live_input_counts_bad_images_and_bad_camera_info(seq, builder):
    core = _core(seq)
    inp = LiveInput(core, use_camera_info=True)
    f = seq[0]
    inp.on_camera_info(builder.camera_info(f.stamp_ns, f.frame_id, np.zeros((3, 3)), 64, 48))
    assert inp.on_image(builder.rgb_image(f.stamp_ns, f.frame_id, f.rgb)) is True
    assert inp.camera_info_rejected == {"zero_K": 1}
    inp.on_camera_info(builder.camera_info(f.stamp_ns, f.frame_id, f.K, 64, 48))
    assert inp.intrinsics((48, 64)) is not None and inp.intrinsics((96, 128)) is None
    assert inp.camera_info_rejected == {"zero_K": 1, "size_mismatch": 1}
    bad = dataclasses.replace(builder.rgb_image(seq[1].stamp_ns, f.frame_id, f.rgb), encoding="weird16")
    assert inp.on_image(bad) is False
    assert inp.on_image(SimpleNamespace(header=None, encoding="rgb8")) is False  # not an image at all
    assert core.diagnostics().drops == {"unsupported_encoding": 1, "decode_error": 1}
    inp.clear()
    assert inp.intrinsics((48, 64)) is None
    assert node_counters(inp, None) == {"camera_info_rejected.size_mismatch": 1,
                                        "camera_info_rejected.zero_K": 1}


# ---------------------------------------------------------------- guarded sink
class _Broken:
    def publish(self, pub):
        raise RuntimeError("publisher gone")


def test_guarded_sink_never_raises_and_counts(seq):
    open_ = [True]
    inner = ListSink()
    sink = GuardedSink(inner, is_open=lambda: open_[0])
    sink.publish(Publication("/diagnostics", 1, None))  # the node's timer publishes those
    sink.publish(Publication("odometry", 1, None))
    open_[0] = False  # Ctrl-C: the context is gone
    sink.publish(Publication("odometry", 2, None))
    assert [p.stamp_ns for p in inner.items] == [1] and sink.suppressed == 1
    broken = GuardedSink(_Broken())
    broken.publish(Publication("odometry", 3, None))
    assert broken.errors == 1 and node_counters(None, broken) == {"sink_errors": 1, "sink_suppressed": 0}


# ---------------------------------------------------------------- /diagnostics (issue 10.10)
def test_diagnostics_report_in_every_state_with_the_ros_clock_stamp(seq, builder):
    # before configure, and with use_sim_time before /clock runs (ROS time 0): still a report
    arr = diagnostic_array(builder, 0, "unconfigured", None, "vggt_ros")
    assert (arr.header.stamp.sec, arr.header.stamp.nanosec) == (0, 0)
    names = [s.name for s in arr.status]
    assert names == [DIAGNOSTIC_NAME, GPU_NAME]
    assert {kv.key: kv.value for kv in arr.status[0].values} == {"lifecycle_state": "unconfigured"}
    core = _core(seq)
    core.count_drop("unsupported_encoding")
    arr = diagnostic_array(builder, 12 * 10**9 + 5, "active", core, "vggt_ros", {"sink_errors": 2})
    assert (arr.header.stamp.sec, arr.header.stamp.nanosec) == (12, 5)
    values = {kv.key: kv.value for kv in arr.status[0].values}
    assert values["drops.unsupported_encoding"] == "1" and values["sink_errors"] == "2"
    assert values["lifecycle_state"] == "active" and values["clock_jump_back"] == "0"
    assert arr.status[0].level == 1  # a drop is a warning

    class Exploding:
        def diagnostics(self):
            raise RuntimeError("boom")

    arr = diagnostic_array(builder, 1, "active", Exploding(), "vggt_ros")  # type: ignore[arg-type]
    assert arr.status[0].level == 2 and "boom" in arr.status[0].message
