"""Counters and timing statistics of the runtime (what /diagnostics and report.json show)."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class Samples:
    """The last `maxlen` samples of a quantity (seconds), with percentiles."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._values: deque[float] = deque(maxlen=maxlen)

    def add(self, value: float) -> None:
        self._values.append(float(value))

    def extend(self, values: Iterable[float]) -> None:
        self._values.extend(float(v) for v in values)

    def percentile(self, q: float) -> float | None:
        """q in [0, 100]; None without samples."""
        if not self._values:
            return None
        return float(np.percentile(np.fromiter(self._values, float), q))

    def mean(self) -> float | None:
        return float(np.mean(np.fromiter(self._values, float))) if self._values else None

    def __len__(self) -> int:
        return len(self._values)


class RateMeter:
    """Event rate (Hz) over the last `window` events, from their monotonic times (s)."""

    def __init__(self, window: int = 60) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self, t: float) -> None:
        self._times.append(t)

    def rate(self) -> float | None:
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return None
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])


@dataclass
class Diagnostics:
    """A snapshot of the runtime's counters (all cumulative since start; times in seconds).

    frames_dropped counts every frame that never reached a published pose: bad input, queue overflow,
    refused by the pipeline, left in the queue or cancelled at shutdown ('shutdown'), pending at a reset
    or a source restart ('reset', 'clock_jump_back'); `drops` splits it by reason.
    latency_*: receipt (push) to publication of the frame's pose, wall clock.
    stamp_latency_*: image stamp to publication on the node's clock (None without a clock, e.g. replay).
    """

    predictor: str
    predictor_note: str
    mode: str
    frames_received: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    windows_accepted: int = 0
    windows_rejected: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    keyframes: int = 0
    map_points: int = 0
    queue_depth: int = 0
    queue_size: int = 0
    queue_high_water: int = 0
    input_rate_hz: float | None = None
    output_rate_hz: float | None = None
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    stamp_latency_p50_s: float | None = None
    stamp_latency_p95_s: float | None = None
    predict_time_p50_s: float | None = None
    resets: int = 0
    worker_alive: bool = False
    worker_errors: int = 0
    tf_failures: int = 0
    clock_jump_back: int = 0  # restarts of the source detected from its stamps (looped bag)
    idle_flushes: int = 0  # live: quiet periods (idle_flush) in which the pending frames were processed
    publications_suppressed: int = 0  # outputs of a window abandoned at stop, or after the transport went
    tracking_state: str = "initializing"  # slam.tracking.TrackingState of the newest window
    segment_id: int = 0  # map segment being tracked
    segments: int = 0  # segments started so far (merged ones included)
    loop_closures: int = 0  # verified loops applied by the pose graph (relocalisations included)
    relocalisations: int = 0  # loops that merged a segment into an earlier one
    loops_retracted: int = 0  # accepted loops removed later: outvoted by loops that disagreed (pose graph)
    loop_verifications: int = 0  # predictions run to verify loop / relocalisation candidates
    loop_checks_skipped: int = 0  # keyframes whose loop candidates a window's budget left unverified
    windows_predicted_ahead: int = 0  # predict_ahead / _after_keyframes: predicted on the predictor thread
    ahead_repredicted: int = 0  # ... whose anchors became unusable (or were requeued): predicted again
    frames_held: int = 0  # standing still: published at the pose where the stop began (slam.standstill)
    gauges_repinned: int = 0  # network-posed keyframes moved onto their anchors' map points (repin_gauge)
    anchor_links: int = 0  # pose-graph edges from anchors measured again by later windows (anchor_links)
    anchor_links_refused: int = 0  # ... removed again: their local solve failed or moved a keyframe too far
    oom_retries: int = 0  # CUDA out-of-memory errors survived by splitting the window (runtime/memory.py)
    forward_frames: int = 0  # frames per network forward after an OOM; 0 = the whole window
    scale_source: str = "none"  # params scale_source (docs/architecture.md#scale)
    scale_state: str = "none"  # slam.metric_scale.ScaleState: none, not_metric_yet, metric, held
    metric_scale: float | None = None  # metres per first-window unit applied to the map (None: not yet)
    metric_scale_sigma: float | None = None  # its relative uncertainty (1 sigma)
    scale_rejected: dict[str, int] = field(default_factory=dict)  # metric samples rejected, by reason

    @property
    def level(self) -> int:
        """diagnostic_msgs/DiagnosticStatus level: 0 OK, 1 WARN (drops or rejections), 2 ERROR (worker)."""
        if self.worker_errors and self.mode == "live" and not self.worker_alive:
            return 2
        lost = self.tracking_state == "lost"
        not_metric = self.scale_source != "none" and self.scale_state in ("not_metric_yet", "none")
        if self.frames_dropped or self.windows_rejected or self.worker_errors or lost or not_metric:
            return 1
        return 0

    @property
    def message(self) -> str:
        return (f"{self.frames_processed} frames processed, {self.frames_dropped} dropped, "
                f"{self.windows_rejected} windows rejected; tracking: {self.tracking_state} "
                f"(segment {self.segment_id}, {self.loop_closures} loop closures); "
                + self._scale_text() + f"; predictor {self.predictor}"
                + (f" ({self.predictor_note})" if self.predictor_note else ""))

    def _scale_text(self) -> str:
        if self.scale_source == "none":
            return "map units arbitrary (scale_source none)"
        if self.metric_scale is None:
            return f"NOT METRIC YET (scale_source {self.scale_source}: outputs are not metres)"
        return (f"metric scale {self.scale_state} ({self.scale_source}): {self.metric_scale:.4g} "
                f"+- {100 * (self.metric_scale_sigma or 0.0):.2g} %")

    def key_values(self) -> list[tuple[str, str]]:
        """(key, value) strings for DiagnosticStatus.values; drops and rejections one key per reason."""
        out: list[tuple[str, str]] = []
        for key, value in self.as_dict().items():
            if isinstance(value, dict):
                out.extend((f"{key}.{k}", str(v)) for k, v in sorted(value.items()))
            else:
                out.append((key, "" if value is None else (f"{value:.6g}" if isinstance(value, float)
                                                           else str(value))))
        return out

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["drops"] = dict(self.drops)
        d["rejections"] = dict(self.rejections)
        d["scale_rejected"] = dict(self.scale_rejected)
        return d


def counter_dict(c: Counter[str]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(c.items())}
