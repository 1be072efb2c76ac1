"""Standstill hold: a camera whose image does not change keeps the pose it had (a zero-velocity hold).

Every window predicts every new frame's pose with its own error; for a standing camera those errors
are all there is, so its published pose jitters: a camera standing 5 s 0.35 m from a pillar moved 10
mm and 1.45 deg from frame to frame (median; stop_and_go, 1x noise, seed 0), and TF consumers saw it
walk. Visual-inertial systems hold the pose when the IMU says the platform stands (a zero-velocity
update); without an IMU the image says it: the frame's grey thumbnail (geometry.image.thumbnail)
against the reference frame's, the last frame that moved. Within `max_change` grey levels
(geometry.image.image_change) the frame stands at the reference's pose, refined by the mean of the
standing frames' own estimates so far (HeldPose): the hold's error falls as the camera stands, and
what is published moves by at most 1/n of one estimate's error at the n-th standing frame.

The reference is the frame where the stop began, not the previous frame: a camera creeping slower
than the threshold per frame accumulates change against it and is posed again once it shows (its
pose lags by at most that much image motion, about a pixel). A person walking through the view of a
standing camera changes the image: those frames are posed by the network as before, never held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vggt_ros.geometry.image import image_change, thumbnail
from vggt_ros.geometry.se3 import invert_T, make_T, nearest_rotation


@dataclass
class StandstillDetector:
    """Marks frames whose view has not changed since the reference frame.

    max_change: grey levels (0-255) of image_change below which a frame stands; 0 turns the hold off.
    """

    max_change: float
    _ref_index: int | None = None  # set together with _ref_thumb
    _ref_thumb: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        if not (np.isfinite(self.max_change) and self.max_change >= 0.0):
            raise ValueError(f"max_change must be finite and >= 0, got {self.max_change}")

    def observe(self, index: int, rgb: np.ndarray) -> int | None:
        """The stream index of the reference frame when the frame at `index` (an (H, W, 3) uint8 image,
        validated) shows the reference's view; None when it moved (it becomes the reference)."""
        if self.max_change <= 0.0:
            return None
        thumb = thumbnail(rgb)
        if self._ref_index is not None and image_change(thumb, self._ref_thumb) < self.max_change:
            return self._ref_index
        self._ref_index, self._ref_thumb = int(index), thumb
        return None


@dataclass
class HeldPose:
    """A standstill: the reference frame (stream index ref_index, row of its pose among the emitted ones,
    map segment) and the sum of the standing frames' estimated poses relative to it (the reference
    counts as one, at identity). Relative poses stay valid when a loop closure moves the reference."""

    ref_index: int
    row: int
    segment_id: int
    count: int = 1
    R_sum: np.ndarray = field(default_factory=lambda: np.eye(3))
    t_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def add(self, T_world_ref: np.ndarray, T_world_cam: np.ndarray) -> np.ndarray:
        """Take one standing frame's estimate T_world_cam (4,4); returns the held pose (4,4): the
        reference's T_world_ref composed with the mean offset (chordal mean rotation, mean translation)."""
        rel = invert_T(T_world_ref) @ T_world_cam
        self.count += 1
        self.R_sum += rel[:3, :3]
        self.t_sum += rel[:3, 3]
        return T_world_ref @ make_T(nearest_rotation(self.R_sum / self.count), self.t_sum / self.count)
