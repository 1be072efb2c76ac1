"""slam.launch.py, rviz/vggt_ros.rviz, config/vggt_ros.yaml and the node's topic table agree (no ROS needed).

The launch file is read as text/AST (launch and launch_ros are not importable here); the RViz config is
parsed as YAML; the node's outputs come from runtime.publishing.TOPICS, the table the node creates its
publishers from.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from vggt_ros.ros.launch_config import (
    NODE_EXECUTABLE,
    NODE_NAME,
    RVIZ_NAMESPACE,
    node_parameter_overrides,
    resolve_name,
    rewrite_rviz_config,
    rviz_config,
    rviz_displays,
)
from vggt_ros.runtime.params import SPECS, load_params_yaml
from vggt_ros.runtime.publishing import TOPICS
from vggt_ros.runtime.replay import DEFAULT_NAMESPACE

PKG = Path(__file__).resolve().parents[1]
LAUNCH = PKG / "launch" / "slam.launch.py"
RVIZ = PKG / "rviz" / "vggt_ros.rviz"
RVIZ_ODOM = PKG / "rviz" / "vggt_ros_odom.rviz"
PARAMS = PKG / "config" / "vggt_ros.yaml"

# RViz display class -> the message type it subscribes to (rviz_default_plugins)
DISPLAY_TYPES = {
    "rviz_default_plugins/PointCloud2": "sensor_msgs/msg/PointCloud2",
    "rviz_default_plugins/Path": "nav_msgs/msg/Path",
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/Odometry": "nav_msgs/msg/Odometry",
}
WINDOW = SPECS["window_anchors"].default + SPECS["window_new_frames"].default


def launch_arguments() -> dict[str, object]:
    """name -> default_value of every DeclareLaunchArgument in slam.launch.py (literals as values)."""
    tree = ast.parse(LAUNCH.read_text())
    out: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            name = ast.literal_eval(node.args[0])
            default = next(k.value for k in node.keywords if k.arg == "default_value")
            literal = isinstance(default, ast.Constant)
            out[name] = ast.literal_eval(default) if literal else ast.unparse(default)
    return out


def launch_keywords() -> set[str]:
    """Every keyword argument name used in the launch file."""
    return {n.arg for n in ast.walk(ast.parse(LAUNCH.read_text())) if isinstance(n, ast.keyword) and n.arg}


@pytest.fixture(scope="module", params=[RVIZ, RVIZ_ODOM], ids=["camera", "odom"])
def rviz(request: pytest.FixtureRequest) -> dict:
    """Each shipped RViz config (publish_tf camera/none, and odom)."""
    return yaml.safe_load(request.param.read_text())


def published_topics(namespace: str) -> dict[str, str]:
    """Resolved name -> TOPICS key of everything the node publishes in `namespace`."""
    return {resolve_name(name, namespace): name for name in TOPICS}


def test_launch_defaults_match_rviz_namespace() -> None:
    args = launch_arguments()
    assert args["namespace"] == RVIZ_NAMESPACE == "vggt"
    # the replay's output bag uses the same namespace, so RViz shows `ros2 bag play output.mcap` as live
    assert DEFAULT_NAMESPACE.strip("/") == RVIZ_NAMESPACE
    for name in ("image", "camera_info", "params_file", "use_sim_time", "model", "predictor", "autostart",
                 "rviz", "namespace"):
        assert name in args, f"slam.launch.py lacks launch argument {name!r}"
    assert args["rviz"] == "false" and args["autostart"] == "true" and args["use_sim_time"] == "false"


def test_every_rviz_topic_is_published_by_the_node_or_is_the_launch_input(rviz: dict) -> None:
    args = launch_arguments()
    outputs = published_topics(str(args["namespace"]))
    image_input = str(args["image"])
    seen: set[str] = set()
    for display in rviz_displays(rviz):
        topic = display.get("Topic", {}).get("Value")
        if topic is None:
            continue
        cls = display["Class"]
        if topic == image_input:
            assert cls == "rviz_default_plugins/Image"
            # cameras publish with the sensor-data profile (best effort): a reliable reader gets nothing
            assert display["Topic"]["Reliability Policy"] == "Best Effort"
            seen.add("<camera>")
            continue
        assert topic in outputs, f"RViz display {display['Name']!r} shows {topic}, which the node does not " \
                                 f"publish (it publishes {sorted(outputs)})"
        spec = TOPICS[outputs[topic]]
        assert DISPLAY_TYPES[cls] == spec.msgtype, f"{display['Name']}: {cls} cannot show {spec.msgtype}"
        # QoS: a Transient Local reader needs a transient-local writer; latched topics should be read so
        rviz_durability = display["Topic"]["Durability Policy"]
        latched = spec.qos == "reliable_transient_local"
        assert rviz_durability == ("Transient Local" if latched else "Volatile"), display["Name"]
        assert display["Topic"]["Reliability Policy"] == "Reliable"  # every output is reliable
        if spec.per_frame:  # a window's frames come at once (README "Subscribers and bursts"): RViz's
            assert display["Topic"]["Depth"] >= WINDOW, display["Name"]  # default depth 5 lost ~12 %
        seen.add(outputs[topic])
    # docs/architecture.md#rviz: RViz shows the global map, window cloud, path, depth, camera image, TF
    assert {"map", "points", "path", "depth", "<camera>"} <= seen
    assert any(d["Class"] == "rviz_default_plugins/TF" for d in rviz_displays(rviz))


def test_rviz_fixed_frame_is_the_default_map_frame(rviz: dict) -> None:
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == SPECS["map_frame"].default


def test_launch_sets_the_input_topic_parameters_and_remaps_nothing() -> None:
    """One knob for the input topics: `image:=` sets the image_topic parameter; no remap can lose to it."""
    assert "remappings" not in launch_keywords()
    out = node_parameter_overrides(image="/front/image_raw", camera_info="/front/camera_info")
    assert out["image_topic"] == "/front/image_raw"
    assert out["compressed_image_topic"] == "/front/image_raw/compressed"
    assert out["camera_info_topic"] == "/front/camera_info"
    assert "image_topic" not in node_parameter_overrides()  # '' leaves the params file in charge


@pytest.mark.parametrize("config", [RVIZ, RVIZ_ODOM], ids=["camera", "odom"])
@pytest.mark.parametrize("namespace", ["robot1/camera", "", "/cam"])
def test_rviz_rewrite_follows_the_launch_namespace(config: Path, namespace: str) -> None:
    text = rewrite_rviz_config(config.read_text(), namespace=namespace, image_topic="/front/image_raw")
    outputs = published_topics(namespace)
    topics = {d["Name"]: d["Topic"]["Value"] for d in rviz_displays(yaml.safe_load(text)) if "Topic" in d}
    assert topics["Camera"] == "/front/image_raw"
    for name, topic in topics.items():
        if name != "Camera":
            assert topic in outputs, (name, topic)
    expected_prefix = "/" + namespace.strip("/") + "/" if namespace.strip("/") else "/"
    assert topics["Global map"] == expected_prefix + "map"
    # everything else of the config survives the round trip
    original = rviz_displays(yaml.safe_load(config.read_text()))
    rewritten = rviz_displays(yaml.safe_load(text))
    assert [d["Class"] for d in original] == [d["Class"] for d in rewritten]


def test_params_file_the_launch_passes_loads_with_the_table() -> None:
    assert launch_arguments()["params_file"] == "default_params"
    assert '"config", "vggt_ros.yaml"' in LAUNCH.read_text()  # share/vggt_ros/config/vggt_ros.yaml
    params = load_params_yaml(PARAMS, NODE_NAME)  # raises on unknown keys or bad values
    doc = yaml.safe_load(PARAMS.read_text())
    keys = set(doc["/**"]["ros__parameters"])
    assert keys <= set(SPECS)
    assert all(params[k] == SPECS[k].validate(doc["/**"]["ros__parameters"][k]) for k in keys)


def test_every_parameter_has_default_range_and_description() -> None:
    for spec in SPECS.values():
        kw = spec.descriptor_kwargs()
        assert kw["description"].strip(), spec.name
        assert kw["additional_constraints"], spec.name
        spec.validate(spec.default)  # the default is inside its own range
        if spec.type in (int, float):
            r = kw["integer_range"] or kw["floating_point_range"]
            assert len(r) == 1 and r[0]["from_value"] <= spec.default <= r[0]["to_value"], spec.name


def test_setup_installs_launch_rviz_config_and_the_executable() -> None:
    setup = (PKG / "setup.py").read_text()
    for pattern in ('"launch/*.py"', '"rviz/*.rviz"', '"config/*.yaml"'):
        assert pattern in setup
    assert re.search(rf"{NODE_EXECUTABLE}\s*=\s*vggt_ros\.ros\.main:main", setup)
    tree = ast.parse(LAUNCH.read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "NODE_EXECUTABLE" in names and "NODE_NAME" in names


def test_launch_leaves_dds_configuration_alone() -> None:
    """The user's DDS settings (CYCLONEDDS_URI, ROS_DOMAIN_ID, ...) apply: no env changes in the launch."""
    tree = ast.parse(LAUNCH.read_text())
    calls = {getattr(n.func, "id", getattr(n.func, "attr", ""))
             for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not calls & {"SetEnvironmentVariable", "AppendEnvironmentVariable", "putenv", "setdefault"}
    assert "environ" not in {getattr(n, "attr", "") for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def test_autostart_is_the_nodes_own_parameter_not_a_lifecycle_request() -> None:
    """On a real Humble under load the launch's ChangeState(configure) request was lost in DDS discovery and
    the node sat unconfigured; the node now configures and activates itself from its `autostart` parameter."""
    text = LAUNCH.read_text()
    assert "ChangeState" not in text and "EmitEvent" not in text
    assert "autostart=autostart" in text
    assert node_parameter_overrides(autostart=True)["autostart"] is True
    assert node_parameter_overrides()["autostart"] is False
    assert SPECS["autostart"].default is False and SPECS["autostart"].read_only  # ros2 run: a managed node


def test_the_odom_config_is_the_one_for_publish_tf_odom() -> None:
    assert rviz_config("odom") == RVIZ_ODOM.name and rviz_config("") == rviz_config("camera") == RVIZ.name
    assert (PKG / "rviz" / rviz_config("none")).is_file() and RVIZ_ODOM.is_file()
    odom = yaml.safe_load(RVIZ_ODOM.read_text())
    tf = next(d for d in rviz_displays(odom) if d["Class"] == "rviz_default_plugins/TF")
    assert tf["Frames"]["All Enabled"] is False  # the robot's tree: only the correction map -> odom
    assert tf["Frames"]["map"]["Value"] and tf["Frames"][SPECS["odom_frame"].default]["Value"]
    poses = [d for d in rviz_displays(odom) if d["Class"] == "rviz_default_plugins/Odometry"]
    assert [d["Topic"]["Value"] for d in poses] == [f"/{RVIZ_NAMESPACE}/odometry"]
    assert node_parameter_overrides(publish_tf="odom")["publish_tf"] == "odom"
    assert "publish_tf" not in node_parameter_overrides()  # '' = the params file's
    assert "publish_tf" in launch_arguments() and launch_arguments()["publish_tf"] == ""
