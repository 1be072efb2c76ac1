"""The one parameter table: YAML <-> table consistency, validation, descriptor data."""

from __future__ import annotations

import math

import pytest
import yaml
from vggt_ros.runtime.params import (
    PARAMETERS,
    SPECS,
    ParamError,
    Params,
    default_params_yaml_path,
    load_params_yaml,
    parse_params_yaml,
    render_params_yaml,
)


def _yaml_section() -> dict:
    doc = yaml.safe_load(default_params_yaml_path().read_text())
    return doc["/**"]["ros__parameters"]


def test_yaml_keys_are_exactly_the_declared_parameters():
    section = _yaml_section()
    assert set(section) == set(SPECS), (set(section) ^ set(SPECS))


def test_yaml_values_are_the_table_defaults_with_the_declared_type():
    for name, value in _yaml_section().items():
        spec = SPECS[name]
        assert type(value) is spec.type, f"{name}: YAML {type(value).__name__}, declared {spec.type.__name__}"
        assert value == spec.default, name


def test_every_parameter_has_default_range_and_description():
    assert len(PARAMETERS) == len(SPECS) >= 30
    for s in PARAMETERS:
        assert s.description.strip(), s.name
        assert s.validate(s.default) == s.default, s.name
        if s.type in (int, float):
            assert s.min_value is not None and s.max_value is not None, s.name
            assert s.min_value <= s.default <= s.max_value, s.name
        assert s.range_text, s.name


def test_model_and_device_parameters_are_read_only():
    for name in ("model_id", "model_revision", "weights_path", "device", "dtype", "predictor"):
        assert SPECS[name].read_only, name
    assert not SPECS["queue_size"].read_only


def test_load_default_yaml_gives_defaults():
    p = load_params_yaml(default_params_yaml_path())
    assert p.as_dict() == {s.name: s.default for s in PARAMETERS}
    assert p["drop_policy"] == "latest" and p["model_id"] == "facebook/VGGT-1B"


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("queue_size", 0, "below the range"),
        ("queue_size", 1001, "above the range"),
        ("queue_size", 2.5, "expected integer"),
        ("queue_size", True, "expected integer"),
        ("map_voxel_size_rel", "0.1", "expected double"),
        ("map_voxel_size_rel", math.nan, "not finite"),
        ("drop_policy", "newest", "one of: latest, oldest"),
        ("publish_tf", "base", "one of: camera, odom, none"),
        ("publish_depth", 1, "expected bool"),
        ("map_frame", "", "must not be empty"),
        ("not_a_parameter", 1, "unknown parameter"),
    ],
)
def test_validation_errors_name_the_parameter_and_problem(name, value, fragment):
    with pytest.raises(ParamError) as err:
        Params({name: value})
    assert fragment in str(err.value)
    assert name in str(err.value)


def test_int_is_accepted_for_double_and_coerced():
    p = Params({"map_voxel_size_rel": 1})
    assert p["map_voxel_size_rel"] == 1.0 and isinstance(p["map_voxel_size_rel"], float)


def test_replace_validates_and_guards_read_only():
    p = Params()
    q = p.replace(queue_size=8)
    assert q["queue_size"] == 8 and p["queue_size"] == SPECS["queue_size"].default != 8
    with pytest.raises(ParamError, match="read-only"):
        p.replace(allow_read_only=False, device="cpu")
    with pytest.raises(ParamError, match="below the range"):
        p.replace(window_new_frames=0)


def test_node_yaml_formats():
    text = """
vggt_ros:
  ros__parameters:
    queue_size: 2
    use_sim_time: true
/**:
  ros__parameters:
    drop_policy: oldest
"""
    p = parse_params_yaml(text)
    assert p["queue_size"] == 2 and p["drop_policy"] == "oldest"
    with pytest.raises(ParamError, match="no '/\\*\\*' or 'vggt_ros' section"):
        parse_params_yaml("other_node:\n  ros__parameters:\n    queue_size: 2\n")
    with pytest.raises(ParamError, match="ros__parameters"):
        parse_params_yaml("/**:\n  queue_size: 2\n")
    with pytest.raises(ParamError, match="unknown parameter 'window.size'"):
        parse_params_yaml("/**:\n  ros__parameters:\n    window:\n      size: 3\n")
    with pytest.raises(ParamError, match="does not parse"):
        parse_params_yaml("/**: [unclosed")


def test_load_params_yaml_names_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("/**:\n  ros__parameters:\n    queue_size: -1\n")
    with pytest.raises(ParamError, match="bad.yaml"):
        load_params_yaml(f)
    with pytest.raises(ParamError, match="cannot read"):
        load_params_yaml(tmp_path / "missing.yaml")


def test_descriptor_kwargs_carry_types_ranges_and_read_only():
    q = SPECS["queue_size"].descriptor_kwargs()
    assert q["type"] == 2 and q["integer_range"] == [{"from_value": 1, "to_value": 1000, "step": 0}]
    assert q["floating_point_range"] == [] and q["read_only"] is False
    v = SPECS["map_voxel_size_rel"].descriptor_kwargs()
    assert v["type"] == 3 and v["floating_point_range"][0]["from_value"] == pytest.approx(1e-5)
    d = SPECS["device"].descriptor_kwargs()
    assert d["type"] == 4 and d["read_only"] is True and "cuda" in d["additional_constraints"]
    assert SPECS["publish_depth"].descriptor_kwargs()["type"] == 1
    for s in PARAMETERS:
        kw = s.descriptor_kwargs()
        assert kw["name"] == s.name and kw["description"] == s.description


def test_config_yaml_is_the_rendered_table():
    assert default_params_yaml_path().read_text() == render_params_yaml()
    assert parse_params_yaml(render_params_yaml({"queue_size": 9, "map_frame": 'a"b'}))["map_frame"] == 'a"b'
