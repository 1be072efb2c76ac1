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
    assert out == {"use_sim_time": True, "autostart": False, "model_id": "facebook/VGGT-1B",
                   "weights_path": "", "predictor": "simulated"}
    # '' leaves the params file in charge; autostart is the launch's own argument (default true there)
    assert node_parameter_overrides() == {"use_sim_time": False, "autostart": False}
    with pytest.raises(ParamError, match="predictor"):
        node_parameter_overrides(predictor="resnet")
    with pytest.raises(ParamError, match="image_transport"):
        node_parameter_overrides(image_transport="theora")


def test_model_argument_existing_relative_folder_is_a_path(tmp_path, monkeypatch) -> None:
    """Old code: 'models/vggt' (an existing relative folder) became model_id 'models/vggt', a hub lookup."""
    (tmp_path / "models" / "vggt").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert model_parameters("models/vggt") == {"weights_path": "models/vggt"}
    assert model_parameters("./ckpt") == {"weights_path": "./ckpt"}
    assert model_parameters("../x/model") == {"weights_path": "../x/model"}
    assert model_parameters("facebook/VGGT-1B@abc123") == {
        "model_id": "facebook/VGGT-1B", "model_revision": "abc123", "weights_path": ""}


def test_launch_and_loader_share_one_guess(tmp_path, monkeypatch) -> None:
    from vggt_ros.model.weights import ModelSource

    (tmp_path / "models" / "vggt").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    for spec in ("models/vggt", "facebook/VGGT-1B", "a/b@v1", "./m.pt", "m.safetensors", "~/w", "org/x.pt"):
        is_path = "weights_path" in model_parameters(spec) and model_parameters(spec)["weights_path"] != ""
        assert (ModelSource.parse(spec).path is not None) == is_path, spec
