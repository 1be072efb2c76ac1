"""Streaming reconstruction core: sliding windows, keyframes, track-based stitching, bounded global map.

Entry point: `Pipeline(predictor, PipelineConfig()).push(frame) -> list[Update]`, `flush()`,
`skip_next_window(reason)`, `drop_pending(reason)`, `reset()`, `trajectory()`, `counters`,
`global_map`. Updates (slam.updates) are all in the map frame (first keyframe's body frame).
"""

from vggt_ros.slam.config import KeyframeConfig, MapConfig, PipelineConfig, StitchConfig
from vggt_ros.slam.global_map import GlobalMap, MapSnapshot
from vggt_ros.slam.keyframes import Keyframe, KeyframeManager
from vggt_ros.slam.pipeline import Pipeline, PipelineCounters
from vggt_ros.slam.stitching import CameraCentreStitcher, PointMapStitcher, TrackStitcher, make_stitcher
from vggt_ros.slam.window import FrameWindow

__all__ = [
    "CameraCentreStitcher",
    "FrameWindow",
    "GlobalMap",
    "Keyframe",
    "KeyframeConfig",
    "KeyframeManager",
    "MapConfig",
    "MapSnapshot",
    "Pipeline",
    "PipelineConfig",
    "PipelineCounters",
    "PointMapStitcher",
    "StitchConfig",
    "TrackStitcher",
    "make_stitcher",
]
