"""Build the pipeline and the predictor from the parameter table (shared by the replay and the node)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vggt_ros.slam.config import KeyframeConfig, MapConfig, PipelineConfig, ScaleConfig, StitchConfig
from vggt_ros.types import Predictor

from .params import Params

SIMULATED_NOTE = ("SIMULATED predictor (test double): poses, depth and tracks are the input bag's ground "
                  "truth plus documented noise; no network ran, the accuracy says nothing about VGGT")


class PredictorUnavailable(RuntimeError):
    """The predictor cannot be built (weights offline or missing, no ground truth for 'simulated').

    The message is meant for the user as is (no traceback needed).
    """


def pipeline_config(params: Params) -> PipelineConfig:
    """slam.config.PipelineConfig from the node parameters."""
    return PipelineConfig(
        window_size=params["window_anchors"] + params["window_new_frames"],
        num_anchors=params["window_anchors"],
        stitcher=params["stitcher"],
        predict_ahead=params["predict_ahead"],
        predict_after_keyframes=params["predict_after_keyframes"],
        depth_conf_threshold=params["depth_conf_threshold"],
        use_camera_intrinsics=params["use_camera_info"],
        cloud_stride=params["points_stride"],
        emit_depth=params["publish_depth"],
        standstill_max_change=params["standstill_max_change"],
        refuse_repeated_images=params["refuse_repeated_images"],
        keyframes=KeyframeConfig(
            min_covisible=params["keyframe_min_covisible"],
            max_motion_rel=params["keyframe_max_motion_rel"],
            min_motion_parallax_deg=params["keyframe_min_parallax_deg"],
            max_active=params["keyframe_max_active"],
        ),
        stitch=StitchConfig(
            max_rel_rms=params["max_window_residual_rel"],
            min_inlier_ratio=params["min_inlier_ratio"],
            num_queries=params["track_queries"],
        ),
        map=MapConfig(
            voxel_size_rel=params["map_voxel_size_rel"],
            max_bytes=params["map_max_mb"] * 1024 * 1024,
            points_per_keyframe=params["map_points_per_keyframe"],
        ),
        scale=ScaleConfig(
            source=params["scale_source"],
            max_dt_s=params["metric_depth_max_dt"],
            min_depth_m=params["metric_depth_min"],
            max_depth_m=params["metric_depth_max"],
        ),
    )


def model_spec(params: Params) -> str:
    """The weights source: weights_path when set, else 'model_id[@model_revision]'."""
    if params["weights_path"]:
        return params["weights_path"]
    return params["model_id"] + (f"@{params['model_revision']}" if params["model_revision"] else "")


_PRECISION = {"auto": "auto", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def make_vggt_predictor(params: Params, load: bool = True) -> Predictor:
    """The VGGT network (model.predictor.VGGTPredictor) configured from params; with load=True the weights
    are loaded now (hub or local file). Raises PredictorUnavailable with the loader's clear message when
    the weights cannot be had (offline, missing or wrong file) or the device does not exist.
    The rclpy node passes load=False and calls `.load()` in on_configure/on_activate (never in __init__).
    """
    from vggt_ros.model.predictor import PredictorConfig, VGGTPredictor
    from vggt_ros.model.weights import WeightsError

    try:
        pred = VGGTPredictor(model_spec(params), PredictorConfig(
            device=params["device"], precision=_PRECISION[params["dtype"]],  # type: ignore[arg-type]
            use_known_intrinsics=params["use_camera_info"], compile_backend=params["compile_backend"]))
        if load:
            pred.load()
    except WeightsError as exc:
        raise PredictorUnavailable(str(exc)) from exc
    except RuntimeError as exc:  # e.g. device 'cuda' requested without CUDA
        if "CUDA" in str(exc) or "device" in str(exc):
            raise PredictorUnavailable(str(exc)) from exc
        raise
    return pred


def make_simulated_predictor(ground_truth: Callable[[int], Any], seed: int = 0) -> Predictor:
    """SimulatedPredictor (the TEST DOUBLE of the network) over a ground-truth lookup by stamp_ns."""
    from vggt_ros.sim.simulated_predictor import SimulatedPredictor

    return SimulatedPredictor(ground_truth, seed=seed)


def make_pipeline(params: Params, predictor: Predictor, oom_guard: bool | None = None,
                  free_bytes: Callable[[], int] | None = None) -> Any:
    """slam.Pipeline(predictor, pipeline_config(params)).

    On CUDA (or with oom_guard=True) the predictor is wrapped in runtime.memory.OomGuardPredictor (an
    OOM splits the window instead of killing the node), and the new frames per window are capped to
    what the free GPU memory holds (`free_bytes`, default torch.cuda.mem_get_info; logged)."""
    from vggt_ros.slam.pipeline import Pipeline

    from .memory import OomGuardPredictor, cuda_free_bytes, device_of, fit_window_to_gpu

    on_cuda = device_of(predictor) == "cuda"
    if on_cuda or free_bytes is not None:
        new = fit_window_to_gpu(params["window_anchors"], params["window_new_frames"],
                                free_bytes or cuda_free_bytes)
        params = params.replace(window_new_frames=new)
    if oom_guard if oom_guard is not None else on_cuda:
        predictor = OomGuardPredictor(predictor)
    return Pipeline(predictor, pipeline_config(params))
