"""ROS-free helpers of slam.launch.py and the node: names, topic resolution, RViz config rewriting.

Nothing here imports rclpy or launch, so the consistency tests run without ROS 2.
"""

from __future__ import annotations

from typing import Any

import yaml

from vggt_ros.runtime.params import SPECS
from vggt_ros.runtime.replay import output_topic

NODE_NAME = "vggt_ros"  # also the node name parse_params_yaml() looks for besides '/**'
NODE_EXECUTABLE = "vggt_node"  # console script, setup.py
RVIZ_NAMESPACE = "vggt"  # the namespace rviz/vggt_ros.rviz names (slam.launch.py's default)


def parse_bool(text: str) -> bool:
    """Launch-argument truth ('true'/'1'/'yes'/'on', any case); anything else is an error."""
    t = text.strip().lower()
    if t in ("true", "1", "yes", "on"):
        return True
    if t in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean, got {text!r}")


def model_parameters(model: str) -> dict[str, str]:
    """Launch argument `model` -> node parameters: a local checkpoint sets weights_path, a hub id
    model_id (and model_revision from 'org/name@rev').

    Path or hub id is model.weights.is_local_weights_spec's guess (the only one). '' -> {} (the params
    file decides).
    """
    from vggt_ros.model.weights import is_local_weights_spec

    m = model.strip()
    if not m:
        return {}
    if is_local_weights_spec(m):
        return {"weights_path": m}
    repo, _, rev = m.partition("@")
    return {"model_id": repo, "model_revision": rev, "weights_path": ""} if rev else \
        {"model_id": m, "weights_path": ""}


def input_topic_parameters(image: str = "", camera_info: str = "") -> dict[str, str]:
    """Launch arguments `image` / `camera_info` -> the node's input-topic parameters.

    The parameters are the ONE knob for the input topics (the launch passes no remappings, so nothing
    can silently win over `image:=`): `image` sets image_topic and compressed_image_topic
    (`<image>/compressed`, image_transport's convention); '' leaves the params file's value.
    """
    out: dict[str, str] = {}
    if image.strip():
        out["image_topic"] = image.strip()
        out["compressed_image_topic"] = image.strip().rstrip("/") + "/compressed"
    if camera_info.strip():
        out["camera_info_topic"] = camera_info.strip()
    return out


def node_parameter_overrides(*, model: str = "", predictor: str = "", image_transport: str = "",
                             use_sim_time: bool = False, image: str = "",
                             camera_info: str = "", autostart: bool = False,
                             publish_tf: str = "") -> dict[str, Any]:
    """The parameters slam.launch.py passes after the params file; values validated by the table."""
    out: dict[str, Any] = {"use_sim_time": bool(use_sim_time), "autostart": bool(autostart)}
    for name, value in (*model_parameters(model).items(), ("predictor", predictor.strip()),
                        ("image_transport", image_transport.strip()), ("publish_tf", publish_tf.strip()),
                        *input_topic_parameters(image, camera_info).items()):
        if value or name == "weights_path":
            out[name] = SPECS[name].validate(value)
    return out


def resolve_name(name: str, namespace: str, node_name: str = NODE_NAME) -> str:
    """Fully qualified name of a topic/service as rcl expands it (absolute, '~' private, or relative).

    Absolute and relative names resolve exactly as the replay names its output bag's topics.
    """
    if name.startswith("~"):
        return output_topic(f"{node_name}/{name[1:].lstrip('/')}".rstrip("/"), namespace)
    return output_topic(name, namespace)


def _topic_values(node: Any) -> list[dict[str, Any]]:
    """Every `Topic: {Value: ...}` mapping in an RViz config tree (displays may nest in groups)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        topic = node.get("Topic")
        if isinstance(topic, dict) and "Value" in topic:
            found.append(topic)
        for value in node.values():
            found.extend(_topic_values(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_topic_values(value))
    return found


def rviz_displays(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat list of the display dicts of a parsed RViz config (groups expanded)."""
    out: list[dict[str, Any]] = []

    def walk(displays: list[Any]) -> None:
        for d in displays or []:
            if isinstance(d, dict):
                out.append(d)
                walk(d.get("Displays", []))

    walk(config.get("Visualization Manager", {}).get("Displays", []))
    return out


def rviz_config(publish_tf: str) -> str:
    """The shipped RViz config for a publish_tf mode: 'odom' -> vggt_ros_odom.rviz (the robot's TF tree
    parents the camera: TF shows map and odom, camera poses from odometry), else vggt_ros.rviz."""
    return "vggt_ros_odom.rviz" if publish_tf.strip() == "odom" else "vggt_ros.rviz"


def rewrite_rviz_config(text: str, *, namespace: str, image_topic: str | None = None,
                        config_namespace: str = RVIZ_NAMESPACE) -> str:
    """The RViz config with the node's topics moved from `config_namespace` to `namespace`.

    Topics under '/<config_namespace>/' become '/<namespace>/...'; the camera image display (the only
    one outside that namespace, the launch's default `image`) gets `image_topic`. Returns YAML text.
    """
    config = yaml.safe_load(text)
    old = "/" + config_namespace.strip("/") + "/"
    for topic in _topic_values(config):
        value = str(topic["Value"])
        if value.startswith(old):
            topic["Value"] = resolve_name(value[len(old):], namespace)
        elif image_topic and not value.startswith("/tf"):
            topic["Value"] = image_topic
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
