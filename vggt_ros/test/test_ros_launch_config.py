"""ros/launch_config.py: launch-argument parsing, name resolution, model argument (no ROS)."""

from __future__ import annotations

import pytest
from vggt_ros.ros.launch_config import model_parameters, node_parameter_overrides, parse_bool, resolve_name
from vggt_ros.runtime.params import ParamError


@pytest.mark.parametrize("text,value", [("true", True), ("True", True), ("1", True), ("false", False),
                                        ("0", False), ("", False), (" on ", True)])
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_parse_bool_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_bool("maybe")


@pytest.mark.parametrize("name,ns,expected", [
    ("map", "vggt", "/vggt/map"),
    ("depth/camera_info", "/vggt/", "/vggt/depth/camera_info"),
    ("map", "", "/map"),
    ("/tf", "vggt", "/tf"),
    ("~/state", "a/b", "/a/b/vggt_ros/state"),
])
def test_resolve_name(name: str, ns: str, expected: str) -> None:
    assert resolve_name(name, ns) == expected


@pytest.mark.parametrize("model,expected", [
    ("", {}),
    ("facebook/VGGT-1B", {"model_id": "facebook/VGGT-1B", "weights_path": ""}),
    ("/data/vggt.pt", {"weights_path": "/data/vggt.pt"}),
    ("weights/model.safetensors", {"weights_path": "weights/model.safetensors"}),
    ("~/vggt", {"weights_path": "~/vggt"}),
])
def test_model_argument(model: str, expected: dict) -> None:
    assert model_parameters(model) == expected


def test_overrides_validate_through_the_table() -> None:
    out = node_parameter_overrides(model="facebook/VGGT-1B", predictor="simulated", use_sim_time=True)
    assert out == {"use_sim_time": True, "model_id": "facebook/VGGT-1B", "weights_path": "",
                   "predictor": "simulated"}
    assert node_parameter_overrides() == {"use_sim_time": False}  # '' leaves the params file in charge
    with pytest.raises(ParamError, match="predictor"):
        node_parameter_overrides(predictor="resnet")
    with pytest.raises(ParamError, match="image_transport"):
        node_parameter_overrides(image_transport="theora")
