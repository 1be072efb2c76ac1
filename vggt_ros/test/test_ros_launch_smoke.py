"""launch_testing smoke test: slam.launch.py + `ros2 bag play --clock` of a tiny sample bag, on real ROS 2.

The node runs in TEST MODE (predictor 'simulated': the bag's ground truth plus documented noise, no
weights) with use_sim_time; the test checks that odometry, path, depth, points and TF arrive with the
contract's frames, and that save_map writes a map. Skips where launch_testing (ROS 2) is absent.
Everything DDS does stays on 127.0.0.1: CYCLONEDDS_URI is set at import, before any participant exists.
"""

from __future__ import annotations

import os
import tempfile
import time
import unittest
from pathlib import Path

import pytest

pytest.importorskip("launch_testing")
pytest.importorskip("rclpy")

os.environ["CYCLONEDDS_URI"] = "file://" + str(
    Path(__file__).resolve().parents[1] / "config" / "cyclonedds_loopback.xml")

import launch  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import rclpy  # noqa: E402
import yaml  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402
from vggt_ros.io.sample import write_sample_bag  # noqa: E402
from vggt_ros.runtime.params import SPECS  # noqa: E402
from vggt_ros.sim.sequence import make_sequence  # noqa: E402

NS = "vggt"
WORK = Path(tempfile.mkdtemp(prefix="vggt_ros_launch_test_"))
BAG = WORK / "sample.mcap"
MAPS = WORK / "maps"


def _write_inputs() -> Path:
    """A 60-frame (2 s) 160x120 sample bag and a params file with a short window."""
    write_sample_bag(BAG, make_sequence("loop", 60, width=160, height=120), overwrite=True)
    values = {"window_anchors": 2, "window_new_frames": 4, "map_publish_period": 0.0,
              "map_save_dir": str(MAPS), "queue_size": 64, "drop_policy": "oldest"}
    params = WORK / "params.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        k: v for k, v in values.items() if k in SPECS}}}))
    return params


@pytest.mark.launch_test
def generate_test_description():
    params = _write_inputs()
    slam = launch.actions.IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            os.path.join(get_package_share_directory("vggt_ros"), "launch", "slam.launch.py")),
        launch_arguments={
            "namespace": NS, "params_file": str(params), "predictor": "simulated", "use_sim_time": "true",
            "image": "/camera/image_raw", "camera_info": "/camera/camera_info", "autostart": "true",
        }.items(),
    )
    # the lifecycle needs a moment to configure and activate before the images start
    play = launch.actions.ExecuteProcess(
        cmd=["ros2", "bag", "play", "--clock", "100", "-s", "mcap", "--rate", "0.5", str(BAG)],
        output="screen")
    return launch.LaunchDescription([
        slam,
        launch.actions.TimerAction(period=8.0, actions=[play]),
        launch_testing.actions.ReadyToTest(),
    ]), {"play": play}


class TestLiveNodeOnTheSampleBag(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        rclpy.init()
        cls.node = rclpy.create_node("vggt_ros_smoke_probe")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_outputs_arrive_with_the_contract_frames(self) -> None:
        got: dict[str, list] = {k: [] for k in ("odometry", "path", "depth", "points", "tf")}
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        n = self.node
        n.create_subscription(Odometry, f"/{NS}/odometry", got["odometry"].append, 50)
        n.create_subscription(PathMsg, f"/{NS}/path", got["path"].append, latched)
        n.create_subscription(Image, f"/{NS}/depth", got["depth"].append, 50)
        n.create_subscription(PointCloud2, f"/{NS}/points", got["points"].append, 10)
        n.create_subscription(TFMessage, "/tf", got["tf"].append, 100)
        end = time.monotonic() + 90.0
        while time.monotonic() < end and not all(got.values()):
            rclpy.spin_once(n, timeout_sec=0.2)
        missing = [k for k, v in got.items() if not v]
        self.assertFalse(missing, f"no messages on {missing}")
        self.assertEqual(got["odometry"][-1].header.frame_id, "map")
        self.assertEqual(got["odometry"][-1].child_frame_id, "camera_optical_frame")
        self.assertEqual(got["depth"][-1].encoding, "32FC1")
        self.assertEqual(got["depth"][-1].header.frame_id, "camera_optical_frame")
        self.assertEqual(got["points"][-1].header.frame_id, "map")
        self.assertGreater(got["points"][-1].width, 0)
        tfs = [t for m in got["tf"] for t in m.transforms]
        self.assertTrue(any(t.header.frame_id == "map" and t.child_frame_id == "camera_optical_frame"
                            for t in tfs))

    def test_save_map_writes_inside_the_map_directory(self) -> None:
        from vggt_ros_msgs.srv import SaveMap

        client = self.node.create_client(SaveMap, f"/{NS}/save_map")
        self.assertTrue(client.wait_for_service(timeout_sec=30.0))
        deadline = time.monotonic() + 60.0
        result = None
        while time.monotonic() < deadline:  # the map exists once the first window is accepted
            future = client.call_async(SaveMap.Request(name="smoke"))
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=10.0)
            result = future.result()
            if result is not None and result.success:
                break
            time.sleep(1.0)
        self.assertIsNotNone(result)
        self.assertTrue(result.success, result.message)
        self.assertTrue(Path(result.path).resolve().is_relative_to(MAPS.resolve()))
        self.assertGreater(result.num_points, 0)

    def test_z_bag_player_finishes(self, proc_info, play) -> None:  # runs last (unittest sorts by name)
        proc_info.assertWaitForShutdown(process=play, timeout=120)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_bag_player_finished_cleanly(self, proc_info, play) -> None:
        launch_testing.asserts.assertExitCodes(proc_info, process=play)
