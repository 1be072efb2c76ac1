"""runtime.metric_input: the TF chain odom -> base_link -> camera, CameraInfo pairing of depth images,
bad messages counted by reason; Diagnostics WARN while a configured scale source is not metric yet."""

from __future__ import annotations

from typing import Any

import numpy as np
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.runtime.metric_input import MetricInput, depth_info_topics
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.stats import Diagnostics

B = MessageBuilder(RosbagsFamily())


class FakeCore:
    camera_frame_seen = "cam"

    def __init__(self) -> None:
        self.depth: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.odom: list[tuple[int, np.ndarray]] = []

    def submit_metric_depth(self, stamp: int, depth: np.ndarray, K: np.ndarray) -> None:
        self.depth.append((stamp, depth, K))

    def submit_odometry(self, stamp: int, T: np.ndarray) -> None:
        self.odom.append((stamp, T))


def _T(x: float, y: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    T[:2, 3] = (x, y)
    return T


def test_tf_chain_gives_odom_to_camera_and_ignores_other_trees() -> None:
    core: Any = FakeCore()
    mi = MetricInput(core, Params({"scale_source": "odometry"}))
    mi.on_tf(B.tf_message([B.transform_stamped(0, "base_link", "cam", _T(0.1))]), static=True)
    mi.on_tf(B.tf_message([B.transform_stamped(5, "world", "cam_gt", _T(3.0)),
                           B.transform_stamped(5, "odom", "base_link", _T(2.0, 1.0))]))
    assert len(core.odom) == 1 and core.odom[0][0] == 5
    np.testing.assert_allclose(core.odom[0][1][:3, 3], [2.1, 1.0, 0.0])
    bad = B.transform_stamped(6, "odom", "base_link", _T(np.nan))
    mi.on_tf(B.tf_message([bad]))
    assert mi.rejected == {"tf_not_finite": 1} and len(core.odom) == 1


def test_depth_needs_its_camera_info_and_a_depth_encoding() -> None:
    core: Any = FakeCore()
    mi = MetricInput(core, Params({"scale_source": "depth", "metric_depth_topic": "/cam/depth/image"}))
    mm = np.full((6, 8), 1500, np.uint16)
    mi.on_depth(B.image(7, "cam", mm, "16UC1"))
    assert mi.rejected == {"no_depth_camera_info": 1}
    K = np.array([[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]])
    mi.on_depth_info(B.camera_info(7, "cam", K, 80, 60))  # another resolution than the image
    mi.on_depth(B.image(7, "cam", mm, "16UC1"))
    assert sum(mi.rejected.values()) == 2 and not core.depth
    mi.on_depth_info(B.camera_info(7, "cam", K, 8, 6))
    mi.on_depth(B.image(7, "cam", mm, "16UC1"))
    mi.on_depth(B.image(8, "cam", np.zeros((6, 8, 3), np.uint8), "rgb8"))
    assert mi.rejected["depth_unsupported_encoding"] == 1
    assert len(core.depth) == 1 and float(core.depth[0][1][0, 0]) == 1.5


def test_depth_info_topic_rules() -> None:
    assert depth_info_topics(Params({"metric_depth_topic": "/camera/depth/image_rect_raw"})) == [
        "/camera/depth/camera_info", "/camera/depth/image_rect_raw/camera_info"]
    assert depth_info_topics(Params({"metric_depth_topic": "/d", "metric_depth_info_topic": "/i"})) == ["/i"]


def test_diagnostics_warn_until_metric() -> None:
    base = {"predictor": "simulated", "predictor_note": "", "mode": "live", "worker_alive": True}
    assert Diagnostics(**base).level == 0
    waiting = Diagnostics(**base, scale_source="depth", scale_state="not_metric_yet")
    assert waiting.level == 1 and "NOT METRIC YET" in waiting.message
    ok = Diagnostics(**base, scale_source="depth", scale_state="held", metric_scale=4.5,
                     metric_scale_sigma=0.002)
    assert ok.level == 0 and "4.5" in ok.message
