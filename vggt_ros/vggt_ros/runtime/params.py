"""The node's one parameter table, shared by the YAML loader, the replay and the rclpy node.

Every parameter is a `ParamSpec` (name, type, default, range or choices, description, read_only).
`load_params_yaml` reads the node's YAML format (`/**: ros__parameters: {...}`);
`ParamSpec.descriptor_kwargs()` gives the plain data an rclpy `ParameterDescriptor` needs, so the
node builds descriptors without logic of its own:

    kw = spec.descriptor_kwargs()
    ParameterDescriptor(name=kw["name"], type=kw["type"], description=kw["description"],
                        additional_constraints=kw["additional_constraints"], read_only=kw["read_only"],
                        integer_range=[IntegerRange(**r) for r in kw["integer_range"]],
                        floating_point_range=[FloatingPointRange(**r) for r in kw["floating_point_range"]])

Lengths are map units (arbitrary, fixed by the first window; docs/architecture.md#scale), times seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vggt_ros.slam.config import PipelineConfig

# The SLAM core's dataclass defaults are the one source of truth for every SLAM knob; the node's
# parameters below take their defaults from it (runtime.factory.pipeline_config maps them back,
# test_runtime_params.py checks that the round trip gives PipelineConfig() exactly).
_SLAM = PipelineConfig()
# rcl_interfaces/msg/ParameterType constants (rcl_interfaces ParameterType.msg)
_ROS_TYPE = {bool: 1, int: 2, float: 3, str: 4}
_TYPE_NAME = {bool: "bool", int: "integer", float: "double", str: "string"}


class ParamError(ValueError):
    """A parameter value is of the wrong type, out of range, unknown, or read-only."""


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter.

    Numeric types carry `min_value`/`max_value` (inclusive); strings carry `choices` (a closed set)
    or accept any value (`choices` empty, `allow_empty` says whether "" is valid).
    """

    name: str
    type: type
    default: Any
    description: str
    min_value: float | int | None = None
    max_value: float | int | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = False
    allow_empty: bool = True

    @property
    def range_text(self) -> str:
        """Human-readable range ("[1, 64]", "one of: latest, oldest", "any string", "true|false")."""
        if self.type is bool:
            return "true|false"
        if self.type in (int, float):
            return f"[{self.min_value}, {self.max_value}]"
        if self.choices:
            return "one of: " + ", ".join(self.choices)
        return "any string" if self.allow_empty else "non-empty string"

    def validate(self, value: Any) -> Any:
        """Return `value` coerced to the declared type (int -> float only), or raise ParamError."""
        t = self.type
        if t is bool:
            if not isinstance(value, bool):
                raise ParamError(f"parameter '{self.name}': expected bool, got {type(value).__name__} "
                                 f"{value!r}")
            return value
        if t is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamError(f"parameter '{self.name}': expected integer, got {type(value).__name__} "
                                 f"{value!r}")
        elif t is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"parameter '{self.name}': expected double, got {type(value).__name__} "
                                 f"{value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ParamError(f"parameter '{self.name}': {value!r} is not finite")
        elif t is str:
            if not isinstance(value, str):
                raise ParamError(f"parameter '{self.name}': expected string, got {type(value).__name__} "
                                 f"{value!r}")
            if self.choices and value not in self.choices:
                raise ParamError(f"parameter '{self.name}': {value!r} is not {self.range_text}")
            if not self.allow_empty and not value:
                raise ParamError(f"parameter '{self.name}': must not be empty")
            return value
        if self.min_value is not None and value < self.min_value:
            raise ParamError(f"parameter '{self.name}': {value!r} is below the range {self.range_text}")
        if self.max_value is not None and value > self.max_value:
            raise ParamError(f"parameter '{self.name}': {value!r} is above the range {self.range_text}")
        return value

    def descriptor_kwargs(self) -> dict[str, Any]:
        """Plain data for rcl_interfaces/ParameterDescriptor (ranges as dicts for IntegerRange(**r))."""
        int_range: list[dict[str, Any]] = []
        float_range: list[dict[str, Any]] = []
        lo, hi = self.min_value, self.max_value
        if self.type is int and lo is not None and hi is not None:
            int_range = [{"from_value": int(lo), "to_value": int(hi), "step": 0}]
        elif self.type is float and lo is not None and hi is not None:
            float_range = [{"from_value": float(lo), "to_value": float(hi), "step": 0.0}]
        return {
            "name": self.name,
            "type": _ROS_TYPE[self.type],
            "description": self.description,
            "additional_constraints": self.range_text,
            "read_only": self.read_only,
            "integer_range": int_range,
            "floating_point_range": float_range,
        }


def _p(name: str, t: type, default: Any, description: str, lo: Any = None, hi: Any = None,
       choices: tuple[str, ...] = (), read_only: bool = False, allow_empty: bool = True) -> ParamSpec:
    return ParamSpec(name, t, default, description, lo, hi, choices, read_only, allow_empty)


_BIG = 2**31 - 1

PARAMETERS: tuple[ParamSpec, ...] = (
    # --- input topics (relative names resolve in the node's namespace; remap as usual)
    _p("image_topic", str, "image", "Input image topic (sensor_msgs/Image).", allow_empty=False),
    _p("compressed_image_topic", str, "image/compressed",
       "Input topic when image_transport is 'compressed' (sensor_msgs/CompressedImage).", allow_empty=False),
    _p("image_transport", str, "raw", "Subscribe to raw Image or to CompressedImage (jpeg/png).",
       choices=("raw", "compressed"), read_only=True),
    _p("camera_info_topic", str, "camera_info",
       "Optional sensor_msgs/CameraInfo; its K is used when use_camera_info is true.", allow_empty=False),
    _p("use_camera_info", bool, _SLAM.use_camera_intrinsics,
       "Use CameraInfo K as the camera's intrinsics (else VGGT's predicted K)."),
    # --- frames and TF (REP 105)
    _p("map_frame", str, "map", "Map frame: the first keyframe's camera body frame (REP 105).",
       allow_empty=False),
    _p("camera_frame", str, "",
       "Optical frame of the camera; empty = the image header's frame_id."),
    _p("publish_tf", str, "camera",
       "TF to broadcast: 'camera' = map -> camera optical frame; 'odom' = map -> odom_frame computed "
       "through the odom -> camera TF (slam_toolbox's pattern); 'none' = no TF.",
       choices=("camera", "odom", "none")),
    _p("odom_frame", str, "odom", "Odometry frame for publish_tf 'odom'.", allow_empty=False),
    # --- model (read-only: changing them needs a reconfigure of the lifecycle node)
    _p("predictor", str, "vggt",
       "'vggt' = the VGGT network; 'simulated' = ground truth plus noise (TEST DOUBLE, no weights).",
       choices=("vggt", "simulated"), read_only=True),
    _p("model_id", str, "facebook/VGGT-1B", "Hugging Face hub repo of the VGGT checkpoint.",
       read_only=True, allow_empty=False),
    _p("model_revision", str, "", "Hub revision (commit, tag, branch); empty = default branch.",
       read_only=True),
    _p("weights_path", str, "",
       "Local checkpoint file (.pt/.safetensors); when set the hub is not contacted.", read_only=True),
    _p("device", str, "auto", "Inference device; 'auto' = cuda when available, else cpu.",
       choices=("auto", "cuda", "cpu"), read_only=True),
    _p("dtype", str, "auto",
       "Inference dtype; 'auto' = bfloat16 on GPUs with compute capability >= 8, float16 on older GPUs, "
       "float32 on CPU (the official VGGT demo's choice).",
       choices=("auto", "float32", "float16", "bfloat16"), read_only=True),
    _p("compile_backend", str, "",
       "Opt-in torch.compile of the aggregator's attention blocks at load: '' = eager; 'inductor' or "
       "'cudagraphs' on a GPU (the first windows of each size pay the compile time).",
       choices=("", "inductor", "cudagraphs", "aot_eager"), read_only=True),
    # --- sliding window, keyframes, stitching (slam.config.PipelineConfig explains the defaults)
    _p("window_anchors", int, _SLAM.num_anchors,
       "Anchor keyframes (already in the map) at the start of each window.", 1, 32),
    _p("window_new_frames", int, _SLAM.num_new,
       "New frames per window (anchors + new = window length).", 1, 64),
    _p("predict_ahead", bool, _SLAM.predict_ahead,
       "While tracking, choose each window's anchors before the previous window is stitched, so its "
       "prediction runs on a predictor thread beside that stitch (live); the replay predicts it at once "
       "with the same anchors (same result). Costs accuracy: docs/architecture.md#predicting-ahead.",
       read_only=True),
    _p("predict_after_keyframes", bool, _SLAM.predict_after_keyframes,
       "Launch the next window's prediction as soon as the current window's keyframes and anchor links are "
       "in the map, with the anchors a serial run chooses; its cloud, loop closure and map run beside it "
       "(live: on a predictor thread). No accuracy cost; overrides predict_ahead: "
       "docs/architecture.md#predicting-ahead.",
       read_only=True),
    _p("stitcher", str, _SLAM.stitcher,
       "Window-to-map alignment: 'tracks' (VGGT point tracks + anchor depth), or the baselines "
       "'camera_centres' / 'point_map'.", choices=("tracks", "camera_centres", "point_map")),
    _p("keyframe_min_covisible", float, _SLAM.keyframes.min_covisible,
       "A frame becomes a keyframe when fewer than this fraction of the last keyframe's tracks are still "
       "visible.", 0.0, 1.0),
    _p("keyframe_max_motion_rel", float, _SLAM.keyframes.max_motion_rel,
       "... or when the camera moved more than this fraction of the last keyframe's median depth.",
       0.0, 10.0),
    _p("keyframe_min_parallax_deg", float, _SLAM.keyframes.min_motion_parallax_deg,
       "... and the image moved: median track shift since the last keyframe at least this angle "
       "(a pose that moved while the image did not is pose noise, e.g. standing still at close range).",
       0.0, 90.0),
    _p("standstill_max_change", float, _SLAM.standstill_max_change,
       "A frame whose view changed less than this (grey levels, mean over a 32 x 24 thumbnail) since the "
       "last moving frame keeps that frame's pose and adds no keyframe: a standing camera's pose does not "
       "jitter. 0 = off.", 0.0, 255.0),
    _p("refuse_repeated_images", bool, _SLAM.refuse_repeated_images,
       "Refuse a frame whose image is byte for byte the last accepted one (a stalled driver re-sending its "
       "buffer: posing it would publish a standing camera while the robot moves). Real sensors' noise "
       "never repeats; turn off for a noise-free simulated camera, whose standing frames do."),
    _p("keyframe_max_active", int, _SLAM.keyframes.max_active,
       "Keyframes that keep image and depth as anchor candidates (older ones keep pose and points).", 1, 256),
    _p("depth_conf_threshold", float, _SLAM.depth_conf_threshold,
       "Depth pixels with VGGT confidence below this become NaN in depth/points/map (confidence >= 1).",
       1.0, 1000.0),
    _p("max_window_residual_rel", float, _SLAM.stitch.max_rel_rms,
       "Reject a window whose Sim(3) inlier RMS, each point relative to its own depth, exceeds this.",
       0.0, 10.0),
    _p("min_inlier_ratio", float, _SLAM.stitch.min_inlier_ratio,
       "Reject a window with fewer Sim(3) inliers than this fraction of its correspondences.", 0.0, 1.0),
    _p("track_queries", int, _SLAM.stitch.num_queries,
       "Points of the newest keyframe that VGGT's track head follows through each window; PnP pins the new "
       "frames on them. More pin tighter and cost more of the track head (README 'What sets a pinned link').",
       16, 4096),
    # --- metric scale (slam.config.ScaleConfig; docs/architecture.md#scale)
    _p("scale_source", str, _SLAM.scale.source,
       "Where metres come from: 'none' = map units stay the first window's (arbitrary); 'depth' = a "
       "metric depth image registered to the colour camera (metric_depth_topic); 'odometry' = the "
       "odom_frame -> camera TF (wheel odometry / VIO).", choices=("none", "depth", "odometry")),
    _p("metric_depth_topic", str, "",
       "Metric depth image (sensor_msgs/Image 16UC1 mm or 32FC1 m, REP 118) registered to the colour "
       "camera, any resolution; needed by scale_source 'depth'."),
    _p("metric_depth_info_topic", str, "",
       "CameraInfo of metric_depth_topic; empty = '<metric_depth_topic>/../camera_info' (image_transport's "
       "rule)."),
    _p("metric_depth_max_dt", float, _SLAM.scale.max_dt_s,
       "A metric depth image or odometry sample pairs with the colour frame nearest in stamp within "
       "this many seconds.", 0.0, 10.0),
    _p("metric_depth_min", float, _SLAM.scale.min_depth_m,
       "Metric depth below this many metres is not used (sensor minimum range).", 0.0, 1000.0),
    _p("metric_depth_max", float, _SLAM.scale.max_depth_m,
       "Metric depth above this many metres is not used (sensor maximum range).", 0.0, 1000.0),
    # --- lifecycle
    _p("autostart", bool, False,
       "Configure and activate at start, inside the node's process (slam.launch.py sets it from its "
       "autostart argument): no lifecycle service request that DDS discovery could lose on a loaded "
       "machine. false = wait for `ros2 lifecycle set` (a managed node's default).", read_only=True),
    # --- input queue
    _p("queue_size", int, _SLAM.window_size,
       "Frames waiting for the worker; when full the drop_policy applies. Default: one window, so a 30 Hz "
       "camera does not drop frames while a window of up to ~0.5 s is predicted.", 1, 1000),
    _p("drop_policy", str, "latest",
       "When the queue is full: 'latest' = drop the oldest waiting frame (newest wins); "
       "'oldest' = drop the incoming frame.", choices=("latest", "oldest")),
    _p("idle_flush", float, 1.0,
       "Live mode: when no image has arrived for this many seconds (wall time: the end of a bag, a camera "
       "that stopped), process the frames still waiting for a full window, as the replay does at the end; "
       "0 = wait for a full window.", 0.0, 3600.0),
    _p("pipelined", bool, True,
       "Live mode: build and publish window k's messages on a publisher thread while the worker runs the "
       "next window's prediction (same messages, same order). The replay is always serial.",),
    _p("prepare_frames", bool, True,
       "Live mode: preprocess (resize) each queued frame in the image callback's thread, beside the "
       "worker's forward, so a window finds its frames ready (same outputs). The replay is serial.",),
    # --- outputs
    _p("publish_depth", bool, _SLAM.emit_depth,
       "Publish depth (32FC1) and depth/camera_info for every new frame."),
    _p("publish_points", bool, True, "Publish each accepted window's cloud on 'points'."),
    _p("points_stride", int, _SLAM.cloud_stride,
       "Pixel stride of each window's cloud (1 = every pixel).", 1, 64),
    _p("points_max_per_window", int, 200000, "Subsample each window cloud to at most this many points.",
       1, _BIG),
    _p("map_publish_period", float, 2.0,
       "Seconds between global map publications (0 = on every change).", 0.0, 3600.0),
    _p("diagnostics_period", float, 1.0, "Seconds between /diagnostics publications.", 0.1, 3600.0),
    _p("map_voxel_size_rel", float, _SLAM.map.voxel_size_rel,
       "Global map voxel edge as a fraction of the first keyframe's median depth (map units are arbitrary).",
       1e-5, 10.0),
    _p("map_max_mb", int, _SLAM.map.max_bytes // (1024 * 1024),
       "Memory cap of the global map in MiB, whatever the sequence length.",
       1, 1_000_000),
    _p("map_points_per_keyframe", int, _SLAM.map.points_per_keyframe,
       "Points stored per keyframe before cap-driven thinning.",
       100, 10_000_000),
    _p("map_save_dir", str, "~/.ros/vggt_ros/maps",
       "Directory save_map writes into; a requested name cannot leave it.", read_only=True,
       allow_empty=False),
    _p("shutdown_timeout", float, 5.0,
       "Seconds stop() (deactivate, Ctrl-C) waits for the window in flight; after that it is cancelled "
       "or abandoned unpublished.", 0.1, 600.0),
    # --- restarts of the source
    _p("clock_jump_back_threshold", float, 1.0,
       "A frame stamped more than this many seconds before the newest one is a restarted source (a "
       "looped bag, a replayed clock): the map restarts (counted as clock_jump_back). A smaller step "
       "back is refused as non_monotonic_stamp. 0 = never restart.", 0.0, 1e6),
)

SPECS: dict[str, ParamSpec] = {s.name: s for s in PARAMETERS}


class Params(Mapping[str, Any]):
    """Validated parameter values (immutable mapping name -> value); use `replace()` to change."""

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        merged = {s.name: s.default for s in PARAMETERS}
        for name, value in (values or {}).items():
            if name not in SPECS:
                raise ParamError(f"unknown parameter '{name}' (declared: {', '.join(sorted(SPECS))})")
            merged[name] = SPECS[name].validate(value)
        self._values = merged

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"

    def replace(self, allow_read_only: bool = True, **changes: Any) -> Params:
        """A copy with `changes` validated; with allow_read_only=False read-only names raise ParamError."""
        if not allow_read_only:
            for name in changes:
                if name in SPECS and SPECS[name].read_only:
                    raise ParamError(f"parameter '{name}' is read-only")
        return Params({**self._values, **changes})

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """ROS nesting: {"a": {"b": 1}} is parameter "a.b"."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_params_yaml(text: str, node_name: str = "vggt_ros") -> Params:
    """Parse the node's YAML (`/**:` or `<node_name>:` or `/<node_name>:` -> `ros__parameters`)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamError(f"params YAML does not parse: {exc}") from exc
    if doc is None:
        return Params()
    if not isinstance(doc, Mapping):
        raise ParamError("params YAML: top level must be a mapping of node names")
    values: dict[str, Any] = {}
    matched = False
    for key in ("/**", node_name, "/" + node_name):
        section = doc.get(key)
        if section is None:
            continue
        if not isinstance(section, Mapping) or not isinstance(section.get("ros__parameters"), Mapping):
            raise ParamError(f"params YAML: '{key}' must contain a 'ros__parameters' mapping")
        values.update(_flatten(section["ros__parameters"]))
        matched = True
    if not matched:
        raise ParamError(f"params YAML: no '/**' or '{node_name}' section with ros__parameters "
                         f"(found: {', '.join(map(str, doc))})")
    values.pop("use_sim_time", None)  # declared by rclpy itself on every node
    return Params(values)


def load_params_yaml(path: str | Path, node_name: str = "vggt_ros") -> Params:
    """Read and validate a params file; raises ParamError naming the file on any problem."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ParamError(f"cannot read params file {p}: {exc}") from exc
    try:
        return parse_params_yaml(text, node_name)
    except ParamError as exc:
        raise ParamError(f"{p}: {exc}") from exc


def default_params_yaml_path() -> Path:
    """config/vggt_ros.yaml of the source tree (the installed copy lives in share/vggt_ros/config)."""
    return Path(__file__).resolve().parents[2] / "config" / "vggt_ros.yaml"


def _yaml_scalar(spec: ParamSpec, value: Any) -> str:
    if spec.type is bool:
        return "true" if value else "false"
    if spec.type is str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if spec.type is float:
        text = repr(float(value))
        return text if ("." in text or "e" in text) else text + ".0"
    return str(int(value))


def render_params_yaml(params: Mapping[str, Any] | None = None) -> str:
    """The node's YAML of `params` (defaults when None), one commented entry per table row.

    config/vggt_ros.yaml is this text for the defaults (test_runtime_params.py checks it).
    """
    import textwrap

    values = Params(params).as_dict() if params is not None else {s.name: s.default for s in PARAMETERS}
    lines = [
        "# vggt_ros node parameters, generated from the one table in vggt_ros/runtime/params.py",
        "# (python -c 'from vggt_ros.runtime.params import render_params_yaml as r; print(r(), end=\"\")').",
        "# Use: ros2 launch vggt_ros slam.launch.py params_file:=<file>; vggt-ros replay BAG --params <file>",
        "# Lengths are map units (arbitrary scale fixed by the first window), times are seconds.",
        "/**:",
        "  ros__parameters:",
    ]
    for s in PARAMETERS:
        text = f"{s.description} Range: {s.range_text}." + (" Read-only." if s.read_only else "")
        lines += ["    # " + line for line in textwrap.wrap(text, 100)]
        lines.append(f"    {s.name}: {_yaml_scalar(s, values[s.name])}")
    return "\n".join(lines) + "\n"
