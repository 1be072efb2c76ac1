"""What the pipeline emits: one dataclass per kind of result, all in the map frame.

The map frame is the first keyframe's camera *body* frame (REP 105 / REP 103: x forward,
y left, z up); cameras are their *optical* frames (x right, y down, z forward).
Poses are named by direction: T_map_cam maps camera-optical points into the map.
Lengths are map units (arbitrary, fixed by the first window) until a metric source exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np


@dataclass(frozen=True)
class FramePose:
    """Pose of one processed frame. T_map_cam: (4, 4) float64."""

    stamp_ns: int
    frame_index: int
    frame_id: str
    T_map_cam: np.ndarray
    window_id: int
    is_keyframe: bool = False


@dataclass(frozen=True)
class DepthFrame:
    """Depth of one frame at camera resolution.

    depth: (H, W) float32 along optical z, map units, NaN where invalid or below threshold.
    raw_confidence: (H, W) float32 (>= 1, VGGT's scale) as predicted, also where depth is NaN
        (read-only: the prediction's own array; `confidence` masks it).
    K: (3, 3) float64 intrinsics matching depth's resolution.
    """

    stamp_ns: int
    frame_index: int
    frame_id: str
    depth: np.ndarray
    raw_confidence: np.ndarray
    K: np.ndarray

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) float32 confidence, NaN where depth is NaN (a new array per call: no consumer on the
        node's path pays for it)."""
        masked = np.where(np.isnan(self.depth), np.float32(np.nan), self.raw_confidence)
        return masked.astype(np.float32, copy=False)


@dataclass(frozen=True)
class WindowCloud:
    """Points of one accepted window in the map frame.

    points: (N, 3) float32 map; colors: (N, 3) uint8 RGB; confidence: (N,) float32.
    """

    stamp_ns: int
    window_id: int
    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray


@dataclass(frozen=True)
class KeyframeAdded:
    """A frame promoted to keyframe. T_map_cam (4, 4); K (3, 3) at size = (H, W).

    scale: window -> map scale of the window that added it; residual_rel / num_inliers: that
    window's alignment quality; segment_id: the map segment it belongs to.
    """

    keyframe_id: int
    frame_index: int
    stamp_ns: int
    frame_id: str
    T_map_cam: np.ndarray
    K: np.ndarray
    size: tuple[int, int]
    window_id: int
    scale: float = 1.0
    residual_rel: float = 0.0
    num_inliers: int = 0
    segment_id: int = 0

    @property
    def height(self) -> int:
        return int(self.size[0])

    @property
    def width(self) -> int:
        return int(self.size[1])


@dataclass(frozen=True)
class MapChanged:
    """The fused global map after a change (voxel-downsampled), map frame.

    points: (N, 3) float32; colors: (N, 3) uint8; confidence: (N,) float32.
    """

    stamp_ns: int
    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    num_keyframes: int


@dataclass(frozen=True)
class WindowStats:
    """Bookkeeping of one window, accepted or rejected (reason says why).

    timings_s keys: "predict", "stitch", "emit", "loop" (seconds; the runtime adds "total").
    tracking_state: slam.tracking.TrackingState value after this window; segment_id: the map
    segment the window's frames were posed in (or would have been).
    scale_state: slam.metric_scale.ScaleState value ('none', 'not_metric_yet', 'metric', 'held');
    metric_scale: metres per first-window unit applied to the map so far (NaN until metric);
    metric_scale_sigma: its relative uncertainty (1 sigma; NaN until metric).
    loop_verifications: loop/relocalisation verification predictions run for this window's new
    keyframes; loop_checks_skipped: its new keyframes whose loop candidates were left unverified
    once the window's budget (LoopConfig.max_loop_verifications_per_window) was spent.
    """

    window_id: int
    stamp_ns: int
    num_frames: int
    num_new: int
    anchor_keyframe_ids: tuple[int, ...]
    accepted: bool
    reason: str
    scale: float
    residual_rms: float
    num_inliers: int
    num_correspondences: int
    timings_s: dict[str, float] = field(default_factory=dict)
    tracking_state: str = "tracking"
    segment_id: int = 0
    scale_state: str = "none"
    metric_scale: float = float("nan")
    metric_scale_sigma: float = float("nan")
    loop_verifications: int = 0
    loop_checks_skipped: int = 0


@dataclass(frozen=True)
class LoopClosure:
    """A verified loop or relocalisation, applied by the pose graph (map frame).

    stamp_ns / match_stamp_ns: image stamps of the query and the matched keyframe; query/match:
    keyframe ids; merged_segment: the segment folded into match's segment (-1 when
    both were already one segment: a loop); correction_m / correction_deg / correction_scale:
    the largest change the optimisation made to a keyframe (map units, degrees, scale ratio).
    """

    stamp_ns: int
    query_keyframe_id: int
    match_keyframe_id: int
    match_stamp_ns: int
    score: float
    num_inliers: int
    merged_segment: int
    correction_m: float
    correction_deg: float
    correction_scale: float


@dataclass(frozen=True)
class TrajectoryCorrected:
    """Every emitted pose so far after a pose-graph correction (republish path, map, keyframes).

    stamps_ns (N,) int64; T_map_cam (N, 4, 4); keyframe_ids (K,), keyframe T_map_cam (K, 4, 4).
    """

    stamp_ns: int
    stamps_ns: np.ndarray
    T_map_cam: np.ndarray
    keyframe_ids: np.ndarray
    keyframe_T_map_cam: np.ndarray


@dataclass(frozen=True)
class FrameRefused:
    """A frame refused at the pipeline's door (bad size, NaN, non-monotonic stamp, ...)."""

    stamp_ns: int
    reason: str


Update = Union[
    FramePose,
    DepthFrame,
    WindowCloud,
    KeyframeAdded,
    MapChanged,
    WindowStats,
    FrameRefused,
    LoopClosure,
    TrajectoryCorrected,
]


def reason_key(reason: str) -> str:
    """Counter key of a reason: the text before any ' (details)'."""
    return reason.split(" (", 1)[0]
