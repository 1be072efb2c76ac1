"""Pipeline: the single streaming entry of the node and the replay, `push(frame) -> [Update]`.

Frames are checked at the door (FrameValidator: refused frames are counted and returned as
FrameRefused), buffered in a FrameWindow, and every N new frames a window is predicted:
the first window is `window_size` new frames and its frame 0 becomes the first keyframe and
fixes the gauge and the map scale (VGGT's window units; arbitrary, REP 103 exception);
later windows are `num_anchors` keyframes of the current map segment (newest first: window
frame 0 is the newest keyframe, VGGT's reference frame) + `window_size - num_anchors` new frames,
aligned to the map by a Stitcher.

Recovery (slam.tracking, docs/architecture.md#tracking-states-and-segments): a window whose
stitch is rejected is re-predicted without anchors; if that prediction is self-consistent it
starts a new map segment placed where the camera was last seen (continuity guess, own gauge in
the pose graph), so tracking never stays stuck on anchors the camera has left. A window that
neither stitches nor starts a segment is dropped with its reason ("lost"). Loop closure and
relocalisation (slam.loop_closure) connect segments and correct the map by a Sim(3) pose graph.

Every accepted frame leaves exactly once: emitted as a FramePose (accepted window), or counted
as dropped with a reason and returned as FrameRefused (rejected window, skipped/dropped window;
`reset()` returns FrameRefused("reset") for the frames it discards).

Frames: internally the pipeline works in "world" = the first keyframe's OPTICAL camera frame;
every Update is converted to the map frame = the first keyframe's BODY frame (REP 103/105):
T_map_cam = T_BODY_OPTICAL @ T_world_cam.

Predicting ahead (config.predict_ahead, docs/architecture.md#predicting-ahead): while tracking, the
window that fills is predicted at once with anchors chosen before the previous window changed the map,
on the executor the runtime gives (`set_executor`; the live node's GPU thread) or inline; `collect()`
finishes (stitches, emits) the windows whose predictions are done, in order. Anchors that stopped being
usable meanwhile (archived, another segment) are re-chosen and the window re-predicted; a view break
that requeues frames also requeues the windows predicted after it. With config.predict_after_keyframes the
window that fills is launched once the window before it has its keyframes (anchors as a serial run
chooses them), and that window's cloud, loop closure and map run beside the prediction.

Overload hooks for the runtime: `skip_next_window(reason)` (the next window that fills is not
predicted; its frames are dropped under `reason`) and `drop_pending(reason)`.
Per-window Update order: FramePose/DepthFrame per new frame, KeyframeAdded, WindowCloud,
TrajectoryCorrected (when the window's anchor links moved the newest keyframes, StitchConfig.anchor_links),
LoopClosure/TrajectoryCorrected (when a loop was closed), MapChanged, WindowStats last.
WindowStats.residual_rms is the stitch's Sim(3) inlier RMS relative to each point's depth
(unitless; 0 for a window that starts a segment), so one threshold fits any map scale.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from vggt_ros.geometry.depth import sample_bilinear, unproject_pixels
from vggt_ros.geometry.frames import T_BODY_OPTICAL, T_OPTICAL_BODY
from vggt_ros.geometry.se3 import Sim3, invert_T
from vggt_ros.slam.config import PipelineConfig
from vggt_ros.slam.global_map import GlobalMap
from vggt_ros.slam.keyframes import Keyframe, KeyframeManager, image_stride_for, track_parallax_deg
from vggt_ros.slam.loop_closure import LoopCloser
from vggt_ros.slam.metric_scale import MetricScale, WindowFrame
from vggt_ros.slam.place_recognition import image_descriptor
from vggt_ros.slam.standstill import HeldPose, StandstillDetector
from vggt_ros.slam.stitching import (
    StitchInput,
    TrackQueries,
    TrackStitcher,
    make_stitcher,
    repin_gauge,
    rescale_through,
    track_seen,
    unconnected_frame,
)
from vggt_ros.slam.tracking import TrackingState, TrackingStatus
from vggt_ros.slam.updates import (
    DepthFrame,
    FramePose,
    FrameRefused,
    KeyframeAdded,
    MapChanged,
    TrajectoryCorrected,
    Update,
    WindowStats,
    reason_key,
)
from vggt_ros.slam.validation import FrameValidator
from vggt_ros.slam.window import FrameWindow, PendingFrame
from vggt_ros.slam.window_output import (
    FrameDepth,
    WindowCloudBuilder,
    WindowSolution,
    check_prediction,
    frame_depth,
    query_grid,
)
from vggt_ros.types import Frame, Predictor, WindowPrediction

log = logging.getLogger(__name__)


@dataclass
class _LastPosed:
    """The newest posed camera with valid depth: T_world_cam (4,4), its NaN-masked depth (H,W) in world
    units at the time it was posed, and the world scale applied since. The median depth (a continuity
    guess for a new segment) is only needed after a break, so it is computed then, not per frame."""

    T_world_cam: np.ndarray
    depth: np.ndarray
    scale: float = 1.0

    def median_depth(self) -> float:
        return float(np.median(self.depth[np.isfinite(self.depth)])) * self.scale


@dataclass
class PipelineCounters:
    """Bookkeeping. frames_in = accepted + sum(refused); accepted = emitted + sum(dropped) + pending."""

    frames_in: int = 0
    frames_accepted: int = 0
    frames_emitted: int = 0
    frames_refused: Counter = field(default_factory=Counter)
    frames_dropped: Counter = field(default_factory=Counter)
    windows_accepted: int = 0
    windows_rejected: Counter = field(default_factory=Counter)
    windows_skipped: Counter = field(default_factory=Counter)
    keyframes: int = 0
    frames_held: int = 0  # emitted at the pose of the frame whose view they show unchanged (standstill)
    predict_time_s: float = 0.0
    core_time_s: float = 0.0
    windows_predicted_ahead: int = 0  # predicted with anchors chosen ahead and used as predicted
    ahead_repredicted: int = 0  # their anchors became unusable before the stitch: predicted again
    ahead_requeued: int = 0  # an earlier window's view break put their frames back in the buffer
    gauges_repinned: int = 0  # network-posed gauge keyframes moved onto their anchors' map points
    anchor_links: int = 0  # pose-graph edges from older anchors measured again (StitchConfig.anchor_links)
    anchor_links_refused: int = 0  # ... removed again: their local solve failed or moved a keyframe too far

    def as_dict(self) -> dict[str, object]:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


PredictResult = tuple["WindowPrediction | None", "Exception | None", float]  # prediction, error, seconds
Submit = Callable[[Callable[[], PredictResult]], "Future[PredictResult]"]  # e.g. ThreadPoolExecutor.submit


def _run_predictor(
    predictor: Predictor, frames: list[Frame], uv: np.ndarray, depth_for: list[int]
) -> PredictResult:
    """One predictor call, never raising (its error is reported by the window that uses the result)."""
    t0 = time.perf_counter()
    try:
        return predictor.predict(frames, uv, depth_for), None, time.perf_counter() - t0
    except Exception as exc:
        return None, exc, time.perf_counter() - t0


def _done(result: PredictResult) -> Future[PredictResult]:
    f: Future[PredictResult] = Future()
    f.set_result(result)
    return f


@dataclass
class _AnchorChoice:
    """Anchors chosen for window `window_id` before the previous window changed the map: the keyframes,
    their images as Frames (as the network saw them), the gauge's query pixels (M,2) and their segment."""

    window_id: int
    anchors: list[Keyframe]
    frames: list[Frame]
    uv: np.ndarray
    segment_id: int

    def usable(self, segment_id: int) -> bool:
        """Still anchors of the current segment (not archived, not merged away)."""
        return all(k.active and k.segment_id == segment_id for k in self.anchors)


@dataclass
class _Window:
    """One window in flight: id, its new frames, anchors, timings, and (once predicted) the prediction."""

    window_id: int
    pending: list[PendingFrame]
    anchors: list[Keyframe]
    timings: dict[str, float] = field(default_factory=dict)
    ahead: _AnchorChoice | None = None  # predicted ahead: the choice, and its predictor call
    job: Future[PredictResult] | None = None
    waited_s: float = 0.0  # predictor time spent in the pipeline's own thread (calls, waits)
    pred: WindowPrediction | None = None
    K: np.ndarray | None = None
    queries: TrackQueries | None = None
    measured: dict[int, np.ndarray] = field(default_factory=dict)  # window index -> metric depth (H, W)
    final: bool = False  # the stream's last window (flush): its last frame may still close a loop
    loop_verifications: int = 0  # verification predictions run for this window's keyframes
    loop_checks_skipped: int = 0  # new keyframes whose loop candidates the window's budget left unverified

    @property
    def size(self) -> tuple[int, int]:
        return self.pending[0].frame.size

    @property
    def stamp_ns(self) -> int:
        return int(self.pending[-1].frame.stamp_ns)


class _Rejected(Exception):
    """A window that cannot be used; `stitch_level` marks rejections recovery may retry."""

    def __init__(
        self, reason: str, stitch_level: bool = False, stats: dict[str, float] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stitch_level = stitch_level
        self.stats = stats or {}


class Pipeline:
    """Sliding-window reconstruction: see the module doc. predictor implements types.Predictor."""

    def __init__(self, predictor: Predictor, config: PipelineConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or PipelineConfig()
        self.stitcher = make_stitcher(self.config.stitcher, self.config.stitch)
        self._submit: Submit | None = None
        self.reset()

    def set_executor(self, submit: Submit | None) -> None:
        """Where windows predicted ahead run (e.g. a one-thread ThreadPoolExecutor's submit; the
        predictor must allow calls from that thread); None: inline, at once."""
        self._submit = submit

    @property
    def in_flight(self) -> int:
        """Windows predicted ahead and not yet finished (collect() finishes them)."""
        return len(self._inflight)

    # --- state ------------------------------------------------------------------------------------
    def reset(self) -> list[Update]:
        """Forget everything (map, keyframes, counters) and start a new stream.

        Returns FrameRefused("reset") for the frames that were still pending (counters restart at 0).
        """
        window: FrameWindow | None = getattr(self, "window", None)
        inflight: deque[_Window] = getattr(self, "_inflight", deque())
        pending = [p for w in inflight for p in w.pending] + (window.clear() if window is not None else [])
        out: list[Update] = [FrameRefused(int(p.frame.stamp_ns), "reset") for p in pending]
        cfg = self.config
        self.validator = FrameValidator(cfg.refuse_repeated_images)
        self.window = FrameWindow(cfg.window_size, cfg.num_anchors)
        self.keyframes = KeyframeManager(cfg.keyframes)
        self.global_map = GlobalMap(
            None, cfg.map.max_bytes, cfg.map.points_per_keyframe, voxel_size_rel=cfg.map.voxel_size_rel
        )
        self.counters = PipelineCounters()
        self.tracking = TrackingStatus()
        self.loops = LoopCloser(cfg.loop, cfg.seed)
        self.metric = MetricScale(cfg.scale)
        self._rescaled = False
        self._next_index = 0
        self._next_window = 0
        self._skip: list[str] = []
        self._maps_pending = 0
        self._map_dirty = False
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
        self._frame_ref: list[int] = []  # keyframe each emitted pose is attached to (pose-graph moves)
        self._last_posed: _LastPosed | None = None
        self.standstill = StandstillDetector(cfg.standstill_max_change)
        self._held: HeldPose | None = None  # the current standstill's reference and mean offset
        self._inflight: deque[_Window] = deque()  # predicted ahead, in window order
        self._ahead: _AnchorChoice | None = None  # the next window's anchors, chosen ahead
        self._launch_next: list[PendingFrame] | None = None  # predict_after_keyframes: waits for keyframes
        return out

    @property
    def bootstrapped(self) -> bool:
        """True once the first window is in the map (a keyframe exists)."""
        return len(self.keyframes) > 0

    @property
    def next_window_id(self) -> int:
        """Id the next window (processed, rejected or skipped) will get."""
        return self._next_window

    @property
    def frames_to_next_window(self) -> int:
        """Accepted frames still needed before the next window is formed (1: the next push forms it)."""
        return self.window.new_per_window(self.bootstrapped) - len(self.window)

    def trajectory(self) -> tuple[np.ndarray, np.ndarray]:
        """Emitted poses (after any pose-graph correction): (stamps_ns (N,) int64, T_map_cam (N,4,4))."""
        if not self._stamps:
            return np.zeros(0, np.int64), np.zeros((0, 4, 4))
        return np.asarray(self._stamps, np.int64), np.stack(self._poses)

    # --- entry points -----------------------------------------------------------------------------
    def push(self, frame: Frame) -> list[Update]:
        """Take one frame; returns the updates it caused (a FrameRefused, or a window's results, or [])."""
        self.counters.frames_in += 1
        reason = self.validator.check(frame)
        if reason is not None:
            self.counters.frames_refused[reason] += 1
            stamp = getattr(frame, "stamp_ns", -1)
            log.debug("frame refused: %s", reason)  # counted; the runtime logs a throttled summary
            return [FrameRefused(int(stamp) if isinstance(stamp, (int, np.integer)) else -1, reason)]
        self.counters.frames_accepted += 1
        self.window.add(self._next_index, frame, self.standstill.observe(self._next_index, frame.rgb))
        self._next_index += 1
        if self.window.ready(self.bootstrapped):
            return self._process(self.window.take(self.window.new_per_window(self.bootstrapped)))
        return []

    def flush(self) -> list[Update]:
        """Finish the windows predicted ahead, then process the leftover frames as a last (shorter)
        window; nothing stays pending."""
        out = self.collect(block=True)
        while len(self.window):
            pending = self.window.take(self.window.new_per_window(self.bootstrapped))
            out += self._process(pending, final=not len(self.window))
        return out + self.collect(block=True)

    def collect(self, block: bool = False) -> list[Update]:
        """Finish (stitch, emit) the windows predicted ahead whose predictions are done, in window
        order; block: all of them, waiting for their predictions."""
        out: list[Update] = []
        while self._inflight and (block or self._inflight[0].job is None or self._inflight[0].job.done()):
            out += self._finish(self._inflight.popleft())
        return out

    def prepare(self, frame: Frame) -> None:
        """Let the predictor preprocess a frame ahead of its window (e.g. from another thread while a
        window is predicted); the outputs do not change. Predictors without `prepare` ignore it."""
        prepare = getattr(self.predictor, "prepare", None)
        if callable(prepare):
            prepare(frame)

    def push_metric_depth(self, stamp_ns: int, depth_m: np.ndarray, K: np.ndarray) -> str | None:
        """A metric depth image registered to the colour camera: (h, w) float metres, NaN/0 = hole, any
        resolution, K (3,3) its intrinsics. Paired with the colour frame nearest in stamp (within
        config.scale.max_dt_s) when that frame's window is accepted. Returns why it was rejected (counted
        in metric.rejected) or None. Ignored unless config.scale.source is 'depth'."""
        return self.metric.push_depth(int(stamp_ns), depth_m, K)

    def push_odometry(self, stamp_ns: int, T_odom_cam: np.ndarray) -> str | None:
        """The robot's odometry pose of the camera's optical frame (4,4), metres, at stamp_ns. Ignored
        unless config.scale.source is 'odometry'. Returns a rejection reason or None."""
        return self.metric.push_odometry(int(stamp_ns), T_odom_cam)

    def skip_next_window(self, reason: str = "skipped") -> None:
        """Drop the next window that fills instead of predicting it (counted under `reason`)."""
        self._skip.append(reason)

    def drop_pending(self, reason: str = "dropped") -> list[Update]:
        """Drop every frame buffered now; returns one FrameRefused per frame (counted under `reason`)."""
        return self._drop(self.window.clear(), reason)

    # --- bookkeeping ------------------------------------------------------------------------------
    def _drop(self, pending: list[PendingFrame], reason: str) -> list[Update]:
        self.counters.frames_dropped[reason_key(reason)] += len(pending)
        return [FrameRefused(int(p.frame.stamp_ns), reason) for p in pending]

    def _stats(self, w: _Window, accepted: bool, reason: str, **kw: float) -> WindowStats:
        return WindowStats(
            window_id=w.window_id,
            stamp_ns=w.stamp_ns,
            num_frames=len(w.anchors) + len(w.pending),
            num_new=len(w.pending),
            anchor_keyframe_ids=tuple(k.keyframe_id for k in w.anchors),
            accepted=accepted,
            reason=reason,
            scale=float(kw.get("scale", float("nan"))),
            residual_rms=float(kw.get("residual_rms", float("nan"))),
            num_inliers=int(kw.get("num_inliers", 0)),
            num_correspondences=int(kw.get("num_correspondences", 0)),
            timings_s=dict(w.timings),
            tracking_state=self.tracking.state.value,
            segment_id=self.tracking.segment_id,
            scale_state=self.metric.state.value,
            metric_scale=self.metric.filter.scale if self.metric.filter.metric else float("nan"),
            metric_scale_sigma=self.metric.filter.sigma,
            loop_verifications=w.loop_verifications,
            loop_checks_skipped=w.loop_checks_skipped,
        )

    def _reject(self, w: _Window, rej: _Rejected) -> list[Update]:
        self.counters.windows_rejected[reason_key(rej.reason)] += 1
        if self.bootstrapped:
            self.tracking.state = TrackingState.LOST
            self.tracking.lost_windows += 1
        log.warning("window %d rejected: %s", w.window_id, rej.reason)
        out = self._drop(w.pending, f"window_rejected: {rej.reason}")
        out.append(self._stats(w, False, rej.reason, **rej.stats))
        return out

    # --- one window -------------------------------------------------------------------------------
    def _process(self, pending: list[PendingFrame], final: bool = False) -> list[Update]:
        """Predict, stitch and emit one window of new frames (or, predicting ahead, start its prediction
        and return what finished meanwhile); final: the stream's last window (flush)."""
        out: list[Update] = []
        if self._ahead_possible(pending, final):
            if self.config.predict_after_keyframes:
                self._launch_next = pending  # finishing the window in flight launches it after its keyframes
                out += self._collect_before(self._next_window)  # not the window it launches
                self._launch_after_keyframes()  # nothing was in flight, or it was rejected: now
                if self._launch_next is None:  # launched, or requeued behind frames a view break gave back
                    return out + self.collect()
                self._launch_next = None  # nothing anchors it: as a serial run
            else:
                out += self._collect_before(self._next_window - 1)  # anchors may lag one window, not more
                choice = self._ahead_choice(self._next_window)
                if choice is not None and not self._behind_requeued(pending):
                    self._launch(pending, choice)
                    return out + self.collect()
        out += self.collect(block=True)
        if self._behind_requeued(pending):
            self.window.merge(pending)  # a view break requeued older frames: they form the next window
            return out
        window_id = self._next_window
        self._next_window += 1
        if not pending:
            return out
        t_start = time.perf_counter()
        self._note_ahead(window_id + 1)
        w = _Window(window_id, pending, self._current_anchors(), final=final)
        if self._skip:
            reason = self._skip.pop(0)
            self.counters.windows_skipped[reason_key(reason)] += 1
            out += self._drop(pending, reason)
            out.append(self._stats(w, False, reason))
            return out
        return out + self._run(w, t_start)

    def _current_anchors(self) -> list[Keyframe]:
        """The next window's anchors (KeyframeManager.anchors). With predict_ahead (anchors one window
        behind) by covisibility alone: the older anchor's slot (KeyframeConfig.long_anchor_rel) tends to
        the oldest active keyframe, the next one the window in flight archives (the choice goes stale)."""
        cfg = self.config
        last_pose = self._last_posed.T_world_cam if self._last_posed is not None else None
        long_slot = cfg.predict_after_keyframes or not cfg.predict_ahead
        return self.keyframes.anchors(cfg.num_anchors, self.tracking.segment_id, last_pose, long_slot)

    def _still_chosen(self, c: _AnchorChoice) -> bool:
        """predict_after_keyframes: the anchors and query pixels launched with window c are the ones a
        serial run chooses now that the previous window has finished (its anchor links and loop closure
        moved keyframes after the launch); predict_ahead's lag a window by design."""
        if not self.config.predict_after_keyframes:
            return True
        now = self._current_anchors()
        same = [k.keyframe_id for k in now] == [k.keyframe_id for k in c.anchors]
        return same and np.array_equal(self._queries(now, c.window_id, now[0].size).uv, c.uv)

    # --- predicting ahead -------------------------------------------------------------------------
    def _behind_requeued(self, pending: list[PendingFrame]) -> bool:
        return bool(pending) and len(self.window) > 0 and self.window.pending[0].index < pending[0].index

    def _ahead_possible(self, pending: list[PendingFrame], final: bool) -> bool:
        cfg = self.config
        return ((cfg.predict_ahead or cfg.predict_after_keyframes) and bool(pending) and not final
                and not self._skip and self.bootstrapped and self.tracking.state is not TrackingState.LOST)

    def _launch_after_keyframes(self) -> None:
        """predict_after_keyframes: the window waiting in _launch_next starts now (the finishing window's
        keyframes are in the map), with the anchors a serial run would choose; it goes back to the buffer
        instead when a view break requeued older frames, and waits for _process when nothing anchors it."""
        pending = self._launch_next
        if pending is None:
            return
        if self._behind_requeued(pending):
            self._launch_next = None
            self.window.merge(pending)
            return
        lost = self.tracking.state is TrackingState.LOST
        choice = None if lost else self._choose_anchors(self._next_window)
        if choice is not None:
            self._launch_next = None
            self._launch(pending, choice)

    def _collect_before(self, window_id: int) -> list[Update]:
        out: list[Update] = []
        while self._inflight and self._inflight[0].window_id < window_id:
            out += self._finish(self._inflight.popleft())
        return out

    def _choose_anchors(self, window_id: int) -> _AnchorChoice | None:
        anchors = self._current_anchors()
        if not anchors:
            return None
        uv = self._queries(anchors, window_id, anchors[0].size).uv
        frames = [k.as_frame() for k in anchors]
        return _AnchorChoice(window_id, anchors, frames, uv, self.tracking.segment_id)

    def _note_ahead(self, window_id: int) -> None:
        """predict_ahead: the map as it is now is what window `window_id` will be predicted against."""
        if not self.config.predict_ahead or self.config.predict_after_keyframes:
            return
        if self._ahead is None or self._ahead.window_id != window_id:
            self._ahead = self._choose_anchors(window_id)

    def _ahead_choice(self, window_id: int) -> _AnchorChoice | None:
        if self._inflight and self._inflight[-1].window_id == window_id - 1:
            self._note_ahead(window_id)  # the previous window has not started: the map is as it will find it
        c = self._ahead
        return c if c is not None and c.window_id == window_id else None

    def _launch(self, pending: list[PendingFrame], choice: _AnchorChoice) -> None:
        w = _Window(self._next_window, pending, choice.anchors, ahead=choice)
        self._next_window += 1
        frames = choice.frames + [p.frame for p in pending]
        job = functools.partial(_run_predictor, self.predictor, frames, choice.uv.astype(np.float32),
                                list(range(len(frames))))
        w.job = self._submit(job) if self._submit is not None else _done(job())
        self._inflight.append(w)

    def _finish(self, w: _Window) -> list[Update]:
        t_start = time.perf_counter()
        self._note_ahead(w.window_id + 1)
        assert w.ahead is not None
        if w.ahead.usable(self.tracking.segment_id) and self._still_chosen(w.ahead):
            self.counters.windows_predicted_ahead += 1
        else:
            log.info("window %d: anchors chosen ahead are no longer usable (or, after keyframes, no longer "
                     "a serial run's choice); predicting it again", w.window_id)
            self.counters.ahead_repredicted += 1
            w.ahead, w.job, w.anchors = None, None, self._current_anchors()
        return self._run(w, t_start)

    def _run(self, w: _Window, t_start: float) -> list[Update]:
        try:
            if w.anchors:
                sol = self._track_or_recover(w)
            else:
                sol = self._bootstrap(w)
        except _Rejected as rej:
            out = self._reject(w, rej)
        else:
            out = self._accept(w, sol)
        self.counters.core_time_s += time.perf_counter() - t_start - w.waited_s
        return out

    def _predict(self, w: _Window) -> None:
        """Run the predictor on anchors + new frames (or take the prediction started ahead); fills
        w.pred, w.K, w.queries or raises _Rejected."""
        cfg = self.config
        t0 = time.perf_counter()
        if w.job is not None and w.ahead is not None:  # predicted ahead: the map points move with the map
            frames = w.ahead.frames + [p.frame for p in w.pending]
            w.queries = TrackQueries(w.ahead.uv, w.anchors[0].points_world_at(w.ahead.uv))
            pred, exc, dt = w.job.result()
        else:
            frames = [k.as_frame() for k in w.anchors] + [p.frame for p in w.pending]
            w.queries = self._queries(w.anchors, w.window_id, w.size)
            pred, exc, dt = _run_predictor(self.predictor, frames, w.queries.uv.astype(np.float32),
                                           list(range(len(frames))))
        w.job = None
        w.waited_s += time.perf_counter() - t0
        w.timings["predict"] = w.timings.get("predict", 0.0) + dt
        self.counters.predict_time_s += dt
        if exc is not None or pred is None:
            log.error("predictor failed on window %d", w.window_id, exc_info=exc)
            raise _Rejected(f"predictor_error ({type(exc).__name__}: {exc})") from None
        depth_for = list(range(len(frames)))
        bad = check_prediction(pred, len(frames), w.size, depth_for)
        if bad is not None:
            raise _Rejected(bad)
        w.pred = pred
        w.K = np.stack(
            [
                f.K if (cfg.use_camera_intrinsics and f.K is not None) else pred.K[i]
                for i, f in enumerate(frames)
            ]
        ).astype(np.float64)
        w.measured = self._measured_depths(w)

    def _queries(self, anchors: list[Keyframe], window_id: int, size: tuple[int, int]) -> TrackQueries:
        """Window `window_id`'s track queries: up to num_queries of the gauge's map points (seeded by the
        window), or without anchors a grid on frame 0 of `size` (H, W) with no map points."""
        n = self.config.stitch.num_queries
        if not anchors:  # no map points yet: a grid on frame 0
            uv = query_grid(n, size)
            return TrackQueries(uv, np.full((len(uv), 3), np.nan))
        uv, X, _ = anchors[0].points_world(max_points=n, seed=self.config.seed + window_id)
        return TrackQueries(uv, X)

    def _track_or_recover(self, w: _Window) -> WindowSolution:
        """Stitch to the segment's anchors; on a stitch rejection, try to start a new segment instead."""
        t1 = time.perf_counter()
        try:
            self._predict(w)
            return self._stitch(w)
        except _Rejected as rej:
            w.timings["stitch"] = time.perf_counter() - t1
            if not (rej.stitch_level and self.config.recover_new_segment):
                raise
            first = rej
        # the new frames see another place (kidnap, cut): a new segment with its own gauge; otherwise
        # (a bad stitch) they continue the segment from the last posed camera, weakly linked
        view_break = first.reason.startswith("no_track_overlap")
        log.info(
            "window %d: %s; re-predicting it alone (%s)",
            w.window_id,
            first.reason,
            "new segment" if view_break else "recovery in the segment",
        )
        stitch_anchors, failed = w.anchors, (w.pred, w.anchors) if w.pred is not None else None
        w.anchors, w.pred = [], None
        try:
            sol = self._bootstrap(w, new_segment=view_break, carry=failed)
        except _Rejected as rej:
            w.anchors = stitch_anchors
            raise _Rejected(f"{first.reason}; no recovery: {rej.reason}", stats=first.stats) from None
        sol.note = f"{'new_segment' if view_break else 'recovered'} ({first.reason})"
        sol.weak_link = not view_break
        return sol

    def _stitch(self, w: _Window) -> WindowSolution:
        assert w.pred is not None and w.K is not None and w.queries is not None
        cfg = self.config
        A = len(w.anchors)
        t1 = time.perf_counter()
        inp = StitchInput(
            w.pred,
            w.anchors,
            list(range(A, A + len(w.pending))),
            w.K,
            w.queries,
            w.size,
            cfg.depth_conf_threshold,
            cfg.seed + w.window_id,
        )
        if self.metric.filter.metric:  # map units are metres: the measured depth refines the poses
            inp.metric_depth = w.measured
        # pinned is False only where a PnP-refining stitcher reported the keyframe's pose unpinned
        if cfg.stitch.repin_gauge and A >= 2 and w.anchors[0].pinned is False and (
            self.keyframes.last_in_segment(w.anchors[0].segment_id) is w.anchors[0]
        ):
            T_new = repin_gauge(inp, cfg.stitch)
            if T_new is not None:
                inp = self._repin(w, inp, T_new)
        gap = unconnected_frame(inp, cfg.stitch) if isinstance(self.stitcher, TrackStitcher) else None
        if gap is not None:
            if gap == A:  # not even the first new frame sees the map: recovery
                raise _Rejected(f"no_track_overlap (frame {gap})", stitch_level=True)
            self._split(w, gap - A)
            inp = dataclasses.replace(inp, new_indices=list(range(A, gap)))
        try:
            res = self.stitcher.stitch(inp)
        except Exception as exc:  # never let one window stop the stream
            log.exception("stitcher failed on window %d", w.window_id)
            raise _Rejected(f"stitch_error ({type(exc).__name__}: {exc})", stitch_level=True) from None
        finally:
            w.timings["stitch"] = time.perf_counter() - t1
        stats = dict(
            scale=res.sim3.scale if res.sim3 is not None else float("nan"),
            residual_rms=res.residual_rel,
            num_inliers=res.num_inliers,
            num_correspondences=res.num_correspondences,
        )
        if not res.accepted:
            raise _Rejected(res.reason, stitch_level=True, stats=stats)
        assert res.sim3 is not None
        self.tracking.state = TrackingState.TRACKING
        return WindowSolution(
            res.T_world_cam,
            res.sim3.scale,
            res.depth_scale,
            res.residual_rel,
            res.num_inliers,
            res.num_correspondences,
            pinned=res.pinned,
            anchor_links=res.anchor_links,
        )

    def _repin(self, w: _Window, inp: StitchInput, T_new: np.ndarray) -> StitchInput:
        """Move the window's gauge keyframe (its map points, pose-graph node and link) to T_new; the window's
        queries move with it. Poses already emitted stay as they were: a standstill held at the keyframe's
        frame keeps standing. Returns the StitchInput with the moved queries."""
        kf = w.anchors[0]
        C = Sim3.from_T(T_new @ invert_T(kf.T_world_cam))
        kf.apply_correction(C)
        kf.pinned = True
        if kf.keyframe_id in self.global_map.keyframes:
            self.global_map.update_pose(kf.keyframe_id, T_BODY_OPTICAL @ kf.T_world_cam)
        self.loops.move_node(kf.keyframe_id, C)
        assert w.queries is not None
        w.queries = TrackQueries(w.queries.uv, C.apply(w.queries.X_world))
        self.counters.gauges_repinned += 1
        return dataclasses.replace(inp, queries=w.queries)

    def _measured_depths(self, w: _Window) -> dict[int, np.ndarray]:
        """Window index -> the new frame's paired metric depth at its pixels ((H, W) metres, NaN invalid),
        for the pose refinement and new keyframes' depth; empty unless scale_source is depth and
        scale.depth_in_geometry (docs/architecture.md#scale)."""
        assert w.K is not None
        if not self.config.scale.depth_in_geometry:
            return {}
        A, out = len(w.anchors), {}
        for k, p in enumerate(w.pending):
            D = self.metric.depth_image(int(p.frame.stamp_ns), w.K[A + k], w.size)
            if D is not None:
                out[A + k] = D
        return out

    def _bootstrap(self, w: _Window, new_segment: bool = True,
                   carry: tuple[WindowPrediction, list[Keyframe]] | None = None) -> WindowSolution:
        """A window without anchors: the first of the run (world = its frame 0, scale 1), or frames
        placed at the last posed camera: the first of a new segment (`new_segment`), or a recovery that
        continues the current segment. Their scale is carried from the prediction that failed to stitch,
        `carry` = (prediction, its anchors), through the same frames' depth (stitching.rescale_through);
        without it, or when it has no usable pixel, the last posed camera's median depth over frame 0's."""
        cfg = self.config
        t1 = time.perf_counter()
        if w.pred is None:
            self._predict(w)
        assert w.pred is not None and w.K is not None and w.queries is not None
        pred = w.pred
        d0, c0 = pred.depth[0], pred.depth_conf[0]
        valid = np.isfinite(d0) & (d0 > 0) & (c0 >= cfg.depth_conf_threshold)
        if not np.any(valid):
            raise _Rejected("no_valid_depth (first window)" if not self.bootstrapped else "no_valid_depth")
        T_win_cam = invert_T(pred.T_cam_win)
        poses = {j: pred.T_cam_win[0] @ T_win_cam[j] for j in range(pred.num_frames)}
        depth_scale: dict[int, float] = {}
        if isinstance(self.stitcher, TrackStitcher) and pred.num_frames > 1:
            poses, depth_scale = self._refine_first_window(w, poses)
        origin = Sim3.identity()
        if self._last_posed is not None:  # a new segment continues from the last posed camera
            last = self._last_posed
            to_map = rescale_through(*carry, pred, cfg.depth_conf_threshold) if carry else float("nan")
            if not np.isfinite(to_map):  # another view's median depth: off by the two views' depth ratio
                to_map = last.median_depth() / float(np.median(d0[valid]))
            origin = Sim3.from_T(last.T_world_cam, to_map)
        poses = {j: origin.transform_pose(T) for j, T in poses.items()}
        depth_scale = {j: s * origin.scale for j, s in depth_scale.items()}
        w.timings["stitch"] = w.timings.get("stitch", 0.0) + time.perf_counter() - t1
        if new_segment or not self.bootstrapped:
            self.tracking.start_segment(first=not self.bootstrapped)
        else:
            self.tracking.state = TrackingState.RECOVERED
        return WindowSolution(poses, origin.scale, depth_scale)

    def _refine_first_window(
        self, w: _Window, poses: dict[int, np.ndarray]
    ) -> tuple[dict[int, np.ndarray], dict[int, float]]:
        """Ours only: tie a bootstrap window's frames to frame 0's depth by PnP on the tracks.

        Frame 0's depth at the query pixels gives 3D points in frame 0's camera; the tracks give their
        pixels in the other frames. A window whose tracks disagree with its own depth and poses
        (fewer PnP inliers than min_track_inlier_ratio) is not self-consistent: rejected.
        """
        assert w.pred is not None and w.K is not None and w.queries is not None
        pred, K, queries = w.pred, w.K, w.queries
        thr = self.config.depth_conf_threshold
        d = sample_bilinear(pred.depth[0], queries.uv)
        c = sample_bilinear(pred.depth_conf[0], queries.uv)
        ok = np.isfinite(d) & (d > 0) & np.isfinite(c) & (c >= thr)
        X = np.full((len(d), 3), np.nan)
        X[ok] = unproject_pixels(queries.uv[ok], d[ok], K[0], poses[0])
        valid_d = pred.depth[0][np.isfinite(pred.depth[0]) & (pred.depth_conf[0] >= thr)]
        depth = float(np.median(valid_d)) if valid_d.size else 1.0
        inp = StitchInput(
            pred,
            [],
            list(range(1, pred.num_frames)),
            K,
            TrackQueries(queries.uv, X),
            w.size,
            thr,
            self.config.seed + w.window_id,
        )
        assert isinstance(self.stitcher, TrackStitcher)
        cfg = self.config.stitch
        gap = unconnected_frame(inp, cfg)
        if gap is not None:  # frames from `gap` on show another place: they wait for the next window
            self._split(w, gap)
            inp = dataclasses.replace(inp, new_indices=list(range(1, gap)))
        ref = self.stitcher.refine_poses(inp, poses, 1.0, depth)
        if ref.observations >= cfg.min_pnp_points and ref.inlier_ratio < cfg.min_track_inlier_ratio:
            raise _Rejected(f"inconsistent_window ({ref.inlier_ratio:.2f} < {cfg.min_track_inlier_ratio})")
        return ref.poses, ref.depth_scale

    def _split(self, w: _Window, keep: int) -> None:
        """Use only the first `keep` new frames of w; the rest go back to the buffer for the next window
        (they share no view with these: a kidnap or a cut), so no frame is lost to the break."""
        log.info(
            "window %d: view breaks after %d of %d new frames; the rest start the next window",
            w.window_id,
            keep,
            len(w.pending),
        )
        later = [p for v in self._inflight for p in v.pending]  # predicted ahead: they follow the break
        if later:
            self.counters.ahead_requeued += len(self._inflight)
            self._inflight.clear()
        self.window.requeue(w.pending[keep:] + later)
        w.pending = w.pending[:keep]

    # --- accepted window --------------------------------------------------------------------------
    def _accept(self, w: _Window, sol: WindowSolution) -> list[Update]:
        assert w.pred is not None
        cfg = self.config
        t2 = time.perf_counter()
        self._metric_window(w, sol)
        if w.anchors and cfg.fuse_anchor_depth:
            self._fuse_anchors(w.anchors, w.pred, sol.scale)
        depths = self._frame_depths(w, sol)
        out, new_kfs = self._emit_frames(w, sol, depths)
        linked = self._link_anchors(w, sol)  # moves keyframes and the last pose: before the next choice
        self._launch_after_keyframes()  # predict_after_keyframes: the rest of this window runs beside it
        cloud = self._cloud(w, sol, depths)
        out += ([cloud] if cloud is not None else []) + linked
        w.timings["emit"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        out += self._close_loops(w, new_kfs)
        w.timings["loop"] = time.perf_counter() - t3
        if self._rescaled:
            out.append(self._trajectory_update(w.stamp_ns))
        if new_kfs or self.loops.changed or self._rescaled:
            self._map_dirty = True
            out += self._map_update(w.stamp_ns)
        self._rescaled = False
        self.counters.windows_accepted += 1
        out.append(
            self._stats(
                w,
                True,
                sol.note,
                scale=sol.scale,
                residual_rms=sol.residual_rel,
                num_inliers=sol.num_inliers,
                num_correspondences=sol.num_correspondences,
            )
        )
        return out

    def _link_anchors(self, w: _Window, sol: WindowSolution) -> list[Update]:
        """The window's older anchors measured again (sol.anchor_links) become pose-graph edges from its
        gauge; the newest anchor_link_window keyframes of the segment are solved and keyframes, map points
        and emitted poses follow (TrajectoryCorrected: the path is republished). A solve that fails or
        moves a keyframe too far leaves everything as it was (its edges removed; counted)."""
        if not sol.anchor_links or not w.anchors:
            return []
        gauge = w.anchors[0]
        edges = [e for a, link in sol.anchor_links.items()
                 if (e := self.loops.add_anchor_link(gauge, w.anchors[a], link)) is not None]
        if not edges:
            return []
        corrections = self.loops.adjust_recent(self.keyframes, gauge.segment_id,
                                               self.config.stitch.anchor_link_window, edges)
        if corrections is None:
            self.counters.anchor_links_refused += len(edges)
            return []
        self.counters.anchor_links += len(edges)
        self._apply_corrections(corrections)
        self.metric.follow_correction(lambda stamp: corrections.get(self._keyframe_of(stamp), None))
        return [self._trajectory_update(w.stamp_ns)]

    def _keyframe_of(self, stamp_ns: int) -> int:
        """Keyframe id the emitted pose of stamp_ns is attached to (-1: no such emitted pose)."""
        i = bisect.bisect_left(self._stamps, stamp_ns)
        return self._frame_ref[i] if i < len(self._stamps) and self._stamps[i] == stamp_ns else -1

    # --- metric scale ---------------------------------------------------------------------------
    def _metric_window(self, w: _Window, sol: WindowSolution) -> None:
        """Feed the window's new frames to the metric scale estimator and apply its correction, in one place.

        The first estimate, and every odometry one (an odometry observation spans the last ~20 increments,
        several windows), rescales the whole world (keyframes, map, emitted poses, pose graph). A depth
        observation measures this window alone: it corrects this window about its gauge keyframe, where
        the map's scale drifted (what was mapped before was metric when it was mapped), and each frame's
        depth follows its own observation (the network's per-frame depth bias; bench/metric_scale.py:
        keyframe scale error max 1.95 % -> 0.22 % at 2x noise, loop ATE 0.74 -> 0.41 %)."""
        if not self.metric.enabled:
            return
        assert w.pred is not None and w.K is not None
        if not w.anchors or sol.note.startswith("new_segment"):
            self.metric.forget_motion()  # map increments across a segment break mean nothing
        thr, A = self.config.depth_conf_threshold, len(w.anchors)
        use_depth = self.config.scale.source == "depth"
        was_metric = self.metric.filter.metric
        frames = []
        for k, p in enumerate(w.pending):
            j = A + k
            depth = frame_depth(w.pred, j, sol.depth_scale_of(j), thr)[0] if use_depth else np.zeros((0, 0))
            frames.append(WindowFrame(int(p.frame.stamp_ns), depth, w.K[j], sol.poses[j]))
        before = {j: sol.depth_scale_of(j) for j in sol.poses}
        ratio = self.metric.window(frames)
        if ratio != 1.0:
            local = use_depth and was_metric and bool(w.anchors)
            if not local:  # the anchors move too: so do their poses measured again (about the origin)
                self._rescale_world(ratio)
                sol.anchor_links = {a: link.rescaled(ratio) for a, link in sol.anchor_links.items()}
            centre = w.anchors[0].T_world_cam[:3, 3] if local else np.zeros(3)
            for j, T in sol.poses.items():
                T = T.copy()
                T[:3, 3] = centre + ratio * (T[:3, 3] - centre)
                sol.poses[j] = T
            sol.scale *= ratio
            sol.depth_scale = {j: s * ratio for j, s in sol.depth_scale.items()}
        if use_depth:
            for k, p in enumerate(w.pending):
                log_r = self.metric.frame_log_ratio.get(int(p.frame.stamp_ns))
                if log_r is not None:
                    sol.depth_scale[A + k] = before[A + k] * float(np.exp(log_r))

    def _rescale_world(self, ratio: float) -> None:
        """Multiply every length of the world by ratio (about its origin): a Sim(3) correction of every
        keyframe, so map points, emitted poses and the pose graph follow (relative edges unchanged)."""
        C = Sim3(ratio)
        self._apply_corrections({kf.keyframe_id: C for kf in self.keyframes.keyframes})
        graph = self.loops.graph
        for kf in self.keyframes.keyframes:
            if graph.has_node(kf.keyframe_id):
                graph.set_node(kf.keyframe_id, kf.T_world_cam, graph.node(kf.keyframe_id).scale * ratio)
        if self.global_map.voxel_size:
            self.global_map.voxel_size *= ratio
        self._rescaled = True

    def _fuse_anchors(self, anchors: list[Keyframe], pred: WindowPrediction, scale: float) -> None:
        """Average each anchor's re-predicted depth (window scale -> map units) into keyframe and map."""
        thr = self.config.depth_conf_threshold
        for i, kf in enumerate(anchors):
            if i not in pred.depth:
                continue
            fused = kf.fuse_depth(pred.depth[i] * np.float32(scale), pred.depth_conf[i], min_conf=thr)
            if fused == 0 or kf.keyframe_id not in self.global_map.keyframes:
                continue
            uv, X_cam, c = kf.points_cam()
            self.global_map.replace_points(kf.keyframe_id, X_cam, kf.colors_at(uv), c)

    def _is_keyframe(self, w: _Window, j: int, T_wc: np.ndarray, frame_index: int) -> bool:
        """Keyframe decision for window frame j against the last keyframe of the segment."""
        assert w.pred is not None and w.K is not None and w.queries is not None
        cfg = self.config
        last = self.keyframes.last_in_segment(self.tracking.segment_id)
        if last is None:
            return True
        # the tracks start on window frame 0: they measure covisibility when the last keyframe is that
        # frame (the gauge anchor, or a bootstrap window's first frame, whose queries have no map point)
        gauge = w.anchors and last.keyframe_id == w.anchors[0].keyframe_id
        first = not w.anchors and last.window_id == w.window_id and last.frame_index == w.pending[0].index
        if gauge or first:
            valid = w.queries.valid if gauge else np.ones(len(w.queries.uv), bool)
            covis = self.keyframes.covisible_tracks(
                w.pred.tracks[j].astype(np.float64),
                w.pred.vis[j],
                w.pred.conf[j],
                valid,
                w.size,
                cfg.stitch.min_track_vis,
                cfg.stitch.min_track_conf,
            )
        else:
            covis = self.keyframes.covisible_geometric(last, T_wc, w.K[j], w.size)
        return self.keyframes.is_keyframe(
            covis, self.keyframes.motion_rel(last, T_wc), frame_index - last.frame_index,
            self._parallax_deg(w, j, last),
        )

    def _parallax_deg(self, w: _Window, j: int, last: Keyframe) -> float:
        """Image shift of window frame j since keyframe `last` (keyframes.track_parallax_deg) on the
        window's tracks, when `last` is a frame of this window (the gauge, or a keyframe made from an
        earlier new frame); NaN otherwise."""
        assert w.pred is not None and w.K is not None
        A = len(w.anchors)
        if w.anchors and last.keyframe_id == w.anchors[0].keyframe_id:
            k: int | None = 0
        else:
            here = last.window_id == w.window_id
            k = next((A + i for i, p in enumerate(w.pending) if here and p.index == last.frame_index), None)
        if k is None or k == j:
            return float("nan")
        st, pred = self.config.stitch, w.pred
        seen = track_seen(pred, j, w.size, st) & track_seen(pred, k, w.size, st)
        return track_parallax_deg(pred.tracks[j], pred.tracks[k], seen, float(w.K[j][0, 0]))

    def _revisits_place(self, w: _Window, j: int, p: PendingFrame) -> bool:
        """The window's last new frame becomes a keyframe when it looks like an earlier place
        (LoopCloser.revisits_place), so the loop is tried where the path comes back, not only where a
        keyframe happens to fall: min_frame_gap after the last keyframe, or in the stream's last window
        (flush: the last chance; the 90-frame sample loop's last keyframe fell 2 frames before the frame
        that matches the start), at most one per window and none in the loop closer's cooldown. Its
        descriptor is the predictor's, else the classical image descriptor of the image at the keyframe
        stride (what a keyframe would store): one per window."""
        assert w.pred is not None
        last = self.keyframes.last_in_segment(self.tracking.segment_id)
        if last is None or not self.config.loop.enabled:
            return False
        if p.index - last.frame_index < self.config.keyframes.min_frame_gap and not w.final:
            return False
        desc = w.pred.descriptors.get(j) if w.pred.descriptors else None
        if desc is None:
            si = image_stride_for(p.frame.size, self.config.keyframes.max_image_pixels)
            desc = image_descriptor(np.ascontiguousarray(p.frame.rgb[::si, ::si]))
        return self.loops.revisits_place(desc, self.tracking.segment_id, self.keyframes)

    def _frame_depths(self, w: _Window, sol: WindowSolution) -> list[FrameDepth]:
        """frame_depth of each new frame (k = 0.. of w.pending), once for the emit and the cloud."""
        assert w.pred is not None
        A, thr = len(w.anchors), self.config.depth_conf_threshold
        return [frame_depth(w.pred, A + k, sol.depth_scale_of(A + k), thr) for k in range(len(w.pending))]

    def _emit_frames(
        self, w: _Window, sol: WindowSolution, depths: list[FrameDepth]
    ) -> tuple[list[Update], list[Keyframe]]:
        """FramePose (+ DepthFrame) per new frame, keyframes added to the store and the map."""
        assert w.pred is not None and w.K is not None
        cfg = self.config
        A = len(w.anchors)
        out: list[Update] = []
        kf_updates: list[Update] = []
        new_kfs: list[Keyframe] = []
        ref_id = w.anchors[0].keyframe_id if w.anchors else len(self.keyframes)
        due = False  # a keyframe waits for a pinned frame (KeyframeConfig.pinned_keyframe_wait)
        for k, p in enumerate(w.pending):
            j = A + k
            held = self._held_row(p)
            if held is None:
                T_wc, frame_ref = sol.poses[j], ref_id
                is_kf = due or self._is_keyframe(w, j, T_wc, p.index)
                if is_kf and self._waits_for_pinned(w, sol, k):
                    is_kf, due = False, True
                elif is_kf:
                    due = False
                if not is_kf and k == len(w.pending) - 1:
                    is_kf = self._revisits_place(w, j, p)
                ref = p.index if p.still_of is None else p.still_of
                self._held = HeldPose(ref, len(self._poses), self.tracking.segment_id)
            else:  # standing still: at the reference (moved with it by any correction since), refined
                assert self._held is not None
                T_wc = self._held.add(T_OPTICAL_BODY @ self._poses[held], sol.poses[j])
                frame_ref, is_kf = self._frame_ref[held], False
                self.counters.frames_held += 1
            T_map_cam = T_BODY_OPTICAL @ T_wc
            depth, conf = depths[k]
            out.append(
                FramePose(int(p.frame.stamp_ns), p.index, p.frame.frame_id, T_map_cam, w.window_id, is_kf)
            )
            self._stamps.append(int(p.frame.stamp_ns))
            self._poses.append(T_map_cam)
            self._frame_ref.append(frame_ref)
            self.counters.frames_emitted += 1
            if cfg.emit_depth:
                out.append(
                    DepthFrame(
                        int(p.frame.stamp_ns), p.index, p.frame.frame_id, depth, conf, w.K[j].copy()
                    )
                )
            if np.isfinite(depth).any():
                self._last_posed = _LastPosed(T_wc, depth)
            if is_kf:
                kf = self._add_keyframe(w, sol, p, j, depth, conf)
                new_kfs.append(kf)
                kf_updates.append(self._keyframe_update(kf, w, sol))
        return out + kf_updates, new_kfs

    def _waits_for_pinned(self, w: _Window, sol: WindowSolution, k: int) -> bool:
        """A keyframe due on new frame k waits: its pose is not pinned by PnP and one of the next
        KeyframeConfig.pinned_keyframe_wait new frames of the window, moving (not held), is."""
        wait = self.config.keyframes.pinned_keyframe_wait
        A = len(w.anchors)
        if wait <= 0 or sol.pinned is None or A + k in sol.pinned:
            return False
        later = range(k + 1, min(len(w.pending), k + 1 + wait))
        return any(A + i in sol.pinned and w.pending[i].still_of is None for i in later)

    def _held_row(self, p: PendingFrame) -> int | None:
        """Row in _poses of the pose a standing frame keeps: its reference frame's, or, when that one was
        never posed (dropped with a rejected window), the first posed frame of the same standstill. None
        (posed as any frame) when it moved, or when the segment changed since (a new segment's first frame
        is its keyframe and gauge) or has no keyframe yet."""
        h, segment = self._held, self.tracking.segment_id
        if p.still_of is None or h is None or (h.ref_index, h.segment_id) != (p.still_of, segment):
            return None
        return h.row if self.keyframes.last_in_segment(h.segment_id) is not None else None

    def _add_keyframe(
        self, w: _Window, sol: WindowSolution, p: PendingFrame, j: int, depth: np.ndarray, conf: np.ndarray
    ) -> Keyframe:
        assert w.K is not None and w.pred is not None
        cfg = self.config
        link = w.anchors[0] if w.anchors else self.keyframes.last_in_segment(self.tracking.segment_id)
        kf = self.keyframes.add(
            frame_index=p.index,
            frame=p.frame,
            window_id=w.window_id,
            T_world_cam=sol.poses[j],
            K=w.K[j],
            K_known=(cfg.use_camera_intrinsics and p.frame.K is not None),
            depth=depth,
            conf=conf,
            scale=sol.scale,
            segment_id=self.tracking.segment_id,
            descriptor=w.pred.descriptors.get(j) if w.pred.descriptors else None,
        )
        self.counters.keyframes += 1
        kf.pinned = None if sol.pinned is None or not w.anchors else j in sol.pinned
        measured = w.measured.get(j)
        if measured is not None and self.metric.filter.metric:
            kf.set_measured_depth(measured)
        uv_k, X_k, c_k = kf.points_cam()
        col = p.frame.rgb[uv_k[:, 1].astype(np.intp), uv_k[:, 0].astype(np.intp)]
        self.global_map.add_keyframe(
            kf.keyframe_id,
            kf.stamp_ns,
            kf.frame_index,
            T_BODY_OPTICAL @ kf.T_world_cam,
            w.K[j],
            w.size,
            X_k,
            col,
            c_k,
            segment_id=kf.segment_id,
        )
        weak = sol.weak_link and link is not None and link.window_id != w.window_id
        self.loops.add_keyframe(kf, link, sol.num_inliers, sol.residual_rel, weak=weak)
        return kf

    @staticmethod
    def _keyframe_update(kf: Keyframe, w: _Window, sol: WindowSolution) -> KeyframeAdded:
        return KeyframeAdded(
            keyframe_id=kf.keyframe_id,
            frame_index=kf.frame_index,
            stamp_ns=kf.stamp_ns,
            frame_id=kf.frame_id,
            T_map_cam=T_BODY_OPTICAL @ kf.T_world_cam,
            K=kf.K.copy(),
            size=kf.size,
            window_id=w.window_id,
            scale=float(sol.scale),
            residual_rel=float(sol.residual_rel),
            num_inliers=int(sol.num_inliers),
            segment_id=kf.segment_id,
        )

    def _cloud(self, w: _Window, sol: WindowSolution, depths: list[FrameDepth]) -> Update | None:
        assert w.pred is not None and w.K is not None
        builder = WindowCloudBuilder(self.config.cloud_stride)
        A = len(w.anchors)
        for k, p in enumerate(w.pending):
            j = A + k
            depth, conf = depths[k]
            builder.add(p.frame, depth, conf, w.K[j], T_BODY_OPTICAL @ sol.poses[j])
        return builder.build(w.stamp_ns, w.window_id)

    def _map_update(self, stamp: int) -> list[Update]:
        """The automatic MapChanged of `config.map_every` (0: none, the caller pulls `map_update`)."""
        if self.config.map_every <= 0:
            return []
        self._maps_pending += 1
        if self._maps_pending < self.config.map_every and not (self.loops.changed or self._rescaled):
            return []
        self._maps_pending = 0
        m = self.map_update(stamp)
        return [m] if m is not None else []

    def map_update(self, stamp_ns: int) -> MapChanged | None:
        """The fused map (MapChanged) when keyframes, a loop correction or a rescale changed it since the
        last one, else None. The fusion is the most expensive output: a runtime that publishes the map
        every few seconds pulls it then (config.map_every = 0) instead of fusing after every window."""
        if not self._map_dirty:
            return None
        self._map_dirty = False
        self.loops.changed = False
        snap = self.global_map.snapshot()
        return MapChanged(stamp_ns, snap.points, snap.colors, snap.confidence, len(self.global_map))

    # --- loops ------------------------------------------------------------------------------------
    def _close_loops(self, w: _Window, new_kfs: list[Keyframe]) -> list[Update]:
        """Look for loops / relocalisations of the new keyframes; apply accepted pose-graph corrections."""
        out: list[Update] = []
        lc = self.loops
        start, loop_start, skips_start = lc.verifications, lc.loop_verifications, lc.budget_skips
        for kf in new_kfs:
            budget = self.config.loop.max_loop_verifications_per_window - (lc.loop_verifications - loop_start)
            event = lc.detect(kf, self.keyframes, self.predictor, self.stitcher, self.config, self.tracking,
                              budget)
            if event is None:
                continue
            corrections, closure = event
            self._apply_corrections(corrections)
            self.metric.forget_motion()
            out.append(closure)
            out.append(self._trajectory_update(w.stamp_ns))
        w.loop_verifications = lc.verifications - start
        w.loop_checks_skipped = lc.budget_skips - skips_start
        return out

    def _apply_corrections(self, corrections: dict[int, Sim3]) -> None:
        """Move keyframes, their map points and every emitted pose attached to them (world frame Sim(3))."""
        for kf_id, C in corrections.items():
            kf = self.keyframes.keyframes[kf_id]
            kf.apply_correction(C)
            if kf_id in self.global_map.keyframes:
                self.global_map.update_pose(kf_id, T_BODY_OPTICAL @ kf.T_world_cam, C.scale)
        for n, ref in enumerate(self._frame_ref):
            C_ref = corrections.get(ref)
            if C_ref is not None:
                self._poses[n] = T_BODY_OPTICAL @ C_ref.transform_pose(T_OPTICAL_BODY @ self._poses[n])
        last_kf = self.keyframes.last_in_segment(self.tracking.segment_id)
        C_last = corrections.get(last_kf.keyframe_id) if last_kf is not None else None
        if self._last_posed is not None and C_last is not None:
            last = self._last_posed
            self._last_posed = _LastPosed(
                C_last.transform_pose(last.T_world_cam), last.depth, last.scale * C_last.scale
            )

    def _trajectory_update(self, stamp: int) -> Update:
        stamps, T = self.trajectory()
        ids, _, kT = self.global_map.keyframe_arrays()
        return TrajectoryCorrected(stamp, stamps, T, ids, kT)
