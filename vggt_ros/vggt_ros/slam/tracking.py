"""Tracking state and map segments (ORB-SLAM3's explicit states, Atlas-style segments).

States (reported per window in WindowStats.tracking_state and on /diagnostics):
- "initializing": no map yet (the first window of the run is being formed or was rejected);
- "tracking": the window was stitched to the current segment's keyframes;
- "lost": the window could not be stitched and could not start a segment; its frames are dropped
  and the next window tries again (the map is kept, nothing is merged);
- "recovered": the window could not be stitched (a bad alignment) but, re-predicted alone, it is
  self-consistent: its frames continue the segment from the last posed camera with its depth scale
  (continuity guess), weakly linked in the pose graph, so loops within the segment still see drift;
- "new_segment": the window's views break off from the map (no track reaches its first new frame:
  a kidnap, a cut), so it started a new map segment with its own gauge, placed where the camera
  was last seen with the last known scale (a guess, no edge to the old segments);
- "relocalised": a verified loop connected the current segment to an earlier one and the two were
  merged by the pose graph (segment ids of the merged keyframes become the earlier segment's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class TrackingState(str, Enum):
    INITIALIZING = "initializing"
    TRACKING = "tracking"
    LOST = "lost"
    RECOVERED = "recovered"
    NEW_SEGMENT = "new_segment"
    RELOCALISED = "relocalised"


@dataclass
class TrackingStatus:
    """The tracker's state machine: state, current segment, and event counts for diagnostics."""

    state: TrackingState = TrackingState.INITIALIZING
    segment_id: int = 0
    segments_started: int = 0
    lost_windows: int = 0
    relocalisations: int = 0
    loop_closures: int = 0
    loops_rejected: int = 0
    loops_retracted: int = 0  # accepted loops removed later, outvoted by loops that disagreed with them
    merged: dict[int, int] = field(default_factory=dict)

    def start_segment(self, first: bool) -> int:
        """A new segment (the first of the run when `first`); returns its id."""
        if not first:
            self.segment_id = self.segments_started
        self.segments_started += 1
        self.state = TrackingState.INITIALIZING if first else TrackingState.NEW_SEGMENT
        return self.segment_id

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "segment_id": self.segment_id,
            "segments_started": self.segments_started,
            "lost_windows": self.lost_windows,
            "relocalisations": self.relocalisations,
            "loop_closures": self.loop_closures,
            "loops_rejected": self.loops_rejected,
            "loops_retracted": self.loops_retracted,
        }
