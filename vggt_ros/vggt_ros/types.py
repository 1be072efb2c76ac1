"""Core data types that cross module boundaries: frames in, window predictions out.

Everything here is numpy; no ROS types and no torch tensors cross these boundaries
(docs/architecture.md#predictor-contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera image, the single input type for every source (live topic, bag, synthetic).

    stamp_ns: source image stamp, integer nanoseconds (exact round trip with ROS stamps).
    rgb: (H, W, 3) uint8, RGB order.
    K: (3, 3) float64 pinhole intrinsics at the rgb resolution, or None when unknown.
    frame_id: the image's optical frame (REP 103 optical axes: x right, y down, z forward).
    """

    stamp_ns: int
    rgb: np.ndarray
    K: np.ndarray | None = None
    frame_id: str = "camera_optical_frame"

    @property
    def stamp(self) -> float:
        """Stamp in seconds (float; for display and evaluation only)."""
        return self.stamp_ns * 1e-9

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


@dataclass
class WindowPrediction:
    """What a predictor returns for one window of S frames, all at the camera's resolution.

    The window frame ("win") is frame 0's camera, OpenCV optical axes, in window units
    (scale normalised per inference, arbitrary; VGGT README, vggt#37).

    T_cam_win: (S, 4, 4) float64, camera-from-window (maps window points into camera s).
    K: (S, 3, 3) float64 intrinsics at camera resolution.
    depth: frame index -> (H, W) float32 depth along optical z, window units (only the frames asked).
    depth_conf: frame index -> (H, W) float32 confidence, >= 1 (VGGT's 1 + exp(x) activation).
    tracks: (S, N, 2) float32 pixel (x, y) of each query point in each frame; tracks[0] == queries.
    vis: (S, N) float32 visibility probability in [0, 1].
    conf: (S, N) float32 track confidence in [0, 1].
    descriptors: frame index -> (D,) float32 global place descriptor (optional; VGGT's from its
        DINOv2 patch tokens; empty = the pipeline computes a classical one from the image).
    """

    T_cam_win: np.ndarray
    K: np.ndarray
    depth: dict[int, np.ndarray]
    depth_conf: dict[int, np.ndarray]
    tracks: np.ndarray
    vis: np.ndarray
    conf: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    descriptors: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.T_cam_win.shape[0])


@runtime_checkable
class Predictor(Protocol):
    """A network that turns a window of frames into geometry (VGGTPredictor, SimulatedPredictor).

    frames: the window in order; frames[0] is an anchor keyframe and defines the gauge.
    query_points: (N, 2) float32 pixel (x, y) on frames[0] to track through the window (N may be 0).
    depth_for: indices of the frames whose depth is wanted (the new frames).
    """

    name: str

    def predict(
        self,
        frames: Sequence[Frame],
        query_points: np.ndarray,
        depth_for: Sequence[int],
    ) -> WindowPrediction: ...
