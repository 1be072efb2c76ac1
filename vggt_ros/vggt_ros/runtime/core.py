"""`NodeCore`: the node's behaviour without a transport.

A source (rclpy subscription, rosbag replay, test thread) calls `submit(frame)`; the core checks it,
queues it (live) or processes it at once (sync), runs `slam.Pipeline.push` on ONE worker thread, turns
the Updates into `Publication`s (publishing.py) and hands them to a `Sink`, in order.

Modes:
- "sync": deterministic replay. `submit` processes the frame in the caller's thread; nothing is dropped
  for load; periodic outputs (map, diagnostics) are timed by the data's stamps, so a replay gives the
  same output bag however fast the machine is. `finish()` flushes the pipeline's partial window.
- "live": a bounded `DropQueue` (drop_policy) feeds one worker thread; periods are wall time. When no
  frame has arrived for `idle_flush` seconds, the frames waiting for a full window are processed (a bag
  that ended, a camera that stopped: their poses and the loop they may close are not held back). With
  the `pipelined` parameter (default) a `PublisherThread` builds and publishes window k's messages
  while the worker runs window k+1's prediction; publications keep their order, frames their accounting.
  With `predict_ahead` (slam.config.PipelineConfig.predict_ahead) the pipeline's predictions run on a
  predictor thread: window k+1 is predicted while the worker stitches and emits window k, and the
  worker collects each finished prediction in order (`Pipeline.collect`); with `predict_after_keyframes`
  from the moment window k's keyframes and anchor links are in the map.

Stopping (live): `stop()` = `request_stop()` (non-blocking: refuse input, drop every queued frame as
'shutdown' without starting it) + ONE bounded wait for the window in flight: it may finish and publish
until shutdown_timeout minus a grace period, then `cancel` is set (a `runtime.cancel.CancellablePredictor`
aborts the network at its next layer; its frames are 'shutdown' drops), and a worker still inside a
window at shutdown_timeout is abandoned: nothing it computes is ever published. Calling stop() again
never waits again past the first deadline. `close_output()` (rclpy context shut down by Ctrl-C)
suppresses every later publication (counted in `publications_suppressed`).

Restarts of the source: a frame stamped more than clock_jump_back_threshold seconds before the newest
one (a looped bag, a replayed clock) restarts the map like the reset service, logged once per jump and
counted as `clock_jump_back`; a smaller step back is still refused as non_monotonic_stamp.

Thread-safety: every Pipeline call (push, flush, reset, save) holds `_pipeline_lock`, so services
(reset, save_map) may be called from any thread; they wait for the window in flight.

What the rclpy node calls: `NodeCore(params, pipeline, sink, mode="live", clock_ns=..., tf_lookup=...)`,
`start()` on activate, `submit(frame)` per image, `count_drop(reason)` for undecodable input,
`reset()`, `save_map(name)`, `diagnostics()`, `stop()` on deactivate/shutdown (`request_stop` +
`close_output` from the context's shutdown).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vggt_ros.io.map_store import save_map as save_map_dir
from vggt_ros.slam.updates import (
    DepthFrame,
    FramePose,
    FrameRefused,
    KeyframeAdded,
    LoopClosure,
    MapChanged,
    TrajectoryCorrected,
    Update,
    WindowCloud,
    WindowStats,
    reason_key,
)
from vggt_ros.types import Frame

from .cancel import CANCELLED_MARK
from .executor import DaemonExecutor
from .params import Params
from .publisher import PublisherThread
from .publishing import (
    KeyframeOut,
    OdometryOut,
    PathState,
    Publication,
    Sink,
    TfLookup,
    TransformOut,
    WindowStatsOut,
    map_to_odom,
    thin_cloud,
)
from .queue import DropQueue, QueueClosed
from .stats import Diagnostics, RateMeter, Samples, counter_dict
from .throttle import THROTTLE_S, Throttle

log = logging.getLogger("vggt_ros.runtime")

MODES = ("sync", "live")
SHUTDOWN = "shutdown"  # drop reason: queued at stop(), or inside a window that stop() cancelled/abandoned
METRIC_PENDING_MAX = 256  # metric samples waiting for the worker (oldest dropped beyond; a stalled worker)
CLOCK_JUMP_BACK = "clock_jump_back"  # drop reason of frames pending in the pipeline at a source restart


class PipelineLike(Protocol):
    """What NodeCore needs from slam.Pipeline."""

    def push(self, frame: Frame) -> list[Update]: ...

    def flush(self) -> list[Update]: ...

    def collect(self, block: bool = False) -> list[Update]: ...

    def reset(self) -> list[Update]: ...

    def map_update(self, stamp_ns: int) -> MapChanged | None: ...


MapSaver = Callable[[Path], "SaveMapResult"]


@dataclass(frozen=True)
class SaveMapResult:
    """Outcome of save_map (fields mirror vggt_ros_msgs/srv/SaveMap response)."""

    success: bool
    message: str
    path: str = ""
    num_points: int = 0
    num_keyframes: int = 0


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def resolve_save_path(save_dir: str | Path, name: str) -> Path:
    """The directory `save_dir/name`, or ValueError when `name` could leave save_dir.

    A name is one plain path component: letters, digits, '_', '-', '.', starting with a letter or digit
    (so no '/', '\\', '..', absolute paths, '~', empty or hidden names), and the resolved result
    (symlinks followed) must still lie inside save_dir.
    """
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or ".." in name:
        raise ValueError(f"map name {name!r} refused: use one plain directory name "
                         "(letters, digits, '_', '-', '.'; no path separators, no '..')")
    root = Path(os.path.expanduser(str(save_dir))).resolve()
    target = (root / name).resolve()
    if target.parent != root:
        raise ValueError(f"map name {name!r} refused: resolves outside {root}")
    return target


class NodeCore:
    """See the module docstring. `pipeline` is a slam.Pipeline (or anything with push/flush/reset)."""

    def __init__(
        self,
        params: Params,
        pipeline: PipelineLike,
        sink: Sink,
        mode: str = "sync",
        predictor_name: str = "",
        predictor_note: str = "",
        clock_ns: Callable[[], int] | None = None,
        tf_lookup: TfLookup | None = None,
        map_saver: MapSaver | None = None,
        cancel: threading.Event | None = None,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.params = params
        self.pipeline = pipeline
        self.sink = sink
        self.mode = mode
        self.predictor_name = predictor_name
        self.predictor_note = predictor_note
        self.clock_ns = clock_ns
        self.tf_lookup = tf_lookup
        self.map_saver = map_saver if map_saver is not None else self._pipeline_saver
        self.queue: DropQueue[tuple[Frame, float]] = DropQueue(params["queue_size"], params["drop_policy"])
        self._pipeline_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._publisher: PublisherThread[Publication] | None = None  # live + pipelined: message building
        self._predict_pool: DaemonExecutor | None = None  # live, predicting ahead: the predictor thread
        self._stop = threading.Event()  # the current worker's; each start() makes a new one
        self.cancel = cancel if cancel is not None else threading.Event()  # set: abort the window in flight
        self._wall = wall_clock
        self._stopping = False
        self._stop_deadline = 0.0
        self._output_closed = False
        self._abandoned: set[int] = set()  # idents of workers stop() left inside a window
        self._drops: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()
        self._warned: set[str] = set()
        self._drop_log = Throttle(THROTTLE_S, wall_clock)  # one line per drop reason per THROTTLE_S
        self._newest_stamp: int | None = None  # newest stamp pushed: the source's clock
        self.clock_jump_back = 0
        self.publications_suppressed = 0
        self.frames_received = 0
        self.frames_processed = 0
        self.windows_accepted = 0
        self.keyframes = 0
        self.map_points = 0
        self.resets = 0
        self.worker_errors = 0
        self.tf_failures = 0
        self.latency = Samples()
        self.stamp_latency = Samples()
        self.predict_time = Samples()
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self._received_at: dict[int, float] = {}  # stamp_ns -> monotonic receipt time
        self._last_stamp: int | None = None  # newest stamp processed (the sync mode's diagnostics stamp)
        self._last_frame_wall = time.monotonic()  # live: when the newest frame reached the worker
        self._idle_flushed = True  # nothing pending yet
        self.idle_flushes = 0  # live: quiet periods that processed pending frames (diagnostics)
        self._path = PathState()
        self.tracking_state = "initializing"  # slam.tracking.TrackingState of the newest window
        self.segment_id = 0
        self.segments = 0
        self.loop_closures = 0
        self.relocalisations = 0
        self.loop_verifications = 0
        self.loop_checks_skipped = 0
        self.scale_state = "none" if params["scale_source"] == "none" else "not_metric_yet"
        self.metric_scale: float | None = None
        self.metric_scale_sigma: float | None = None
        self.camera_frame_seen = ""  # the image's optical frame (metric input composes odom -> it)
        self._metric_lock = threading.Lock()
        self._metric_pending: list[tuple[str, int, Any]] = []  # (kind, stamp, payload) for the worker
        self._last_map_t: float | None = None
        self._last_diag_t: float | None = None
        self._data_t = 0.0  # latest stamp seen (s): the sync mode's clock
        self.first_receipt: float | None = None
        self.last_publish: float | None = None

    # ------------------------------------------------------------------ input
    def submit(self, frame: Frame) -> bool:
        """Offer one frame; True when accepted (queued or processed), False when dropped (counted).

        Content checks (size change, bad K, non-monotonic stamp, ...) are the pipeline's door
        (slam.validation); its refusals come back as FrameRefused and are counted by reason.
        """
        now = time.monotonic()
        with self._state_lock:
            self.frames_received += 1
            self.input_rate.tick(now)
            if self.first_receipt is None:
                self.first_receipt = now
            self._received_at.setdefault(int(frame.stamp_ns), now)
        if self.mode == "sync":
            self._process(frame)
            return True
        try:
            dropped = self.queue.put((frame, now))
        except QueueClosed:
            self._forget_and_drop([frame], SHUTDOWN)
            return False
        if dropped is not None:
            self._forget_and_drop([dropped[0]], "queue_full")
            if dropped[0] is frame:
                return False
        self._prepare(frame)
        return True

    def _prepare(self, frame: Frame) -> None:
        """Live: preprocess a queued frame here, in the caller's thread (the frame callback), while the
        worker runs the current window: the window then finds its frames resized (issue 14)."""
        prepare = getattr(self.pipeline, "prepare", None)
        if callable(prepare) and self.params["prepare_frames"]:
            try:
                prepare(frame)
            except Exception as exc:  # the window preprocesses it again and reports any error
                log.debug("prepare failed on frame %d: %s", frame.stamp_ns, exc)

    def submit_metric_depth(self, stamp_ns: int, depth_m: np.ndarray, K: np.ndarray) -> None:
        """A metric depth image (metres, NaN = hole) with its K; handed to the pipeline by the worker
        before the next frame (Pipeline.push_metric_depth). Never blocks on the pipeline."""
        with self._metric_lock:
            self._metric_pending.append(("depth", int(stamp_ns), (depth_m, K)))
            del self._metric_pending[: max(0, len(self._metric_pending) - METRIC_PENDING_MAX)]

    def submit_odometry(self, stamp_ns: int, T_odom_cam: np.ndarray) -> None:
        """An odometry pose of the camera (metres); handed over like submit_metric_depth."""
        with self._metric_lock:
            self._metric_pending.append(("odometry", int(stamp_ns), T_odom_cam))
            del self._metric_pending[: max(0, len(self._metric_pending) - METRIC_PENDING_MAX)]

    def _drain_metric(self) -> None:
        """Pipeline lock held: give the buffered metric samples to the pipeline (it pairs them by stamp)."""
        with self._metric_lock:
            pending, self._metric_pending = self._metric_pending, []
        push_depth = getattr(self.pipeline, "push_metric_depth", None)
        push_odom = getattr(self.pipeline, "push_odometry", None)
        for kind, stamp, payload in pending:
            if kind == "depth" and callable(push_depth):
                push_depth(stamp, *payload)
            elif kind == "odometry" and callable(push_odom):
                push_odom(stamp, payload)

    def count_drop(self, reason: str, detail: str = "") -> None:
        """Count a frame the transport could not turn into a Frame (decode error: reason names why)."""
        with self._state_lock:
            self.frames_received += 1
            self._drop(reason, detail)

    def _drop(self, reason: str, detail: str = "") -> None:
        """Count one dropped frame; warn at most once per reason per THROTTLE_S, with the counts."""
        self._drops[reason] += 1
        held = self._drop_log.admit(reason)
        if held is None:
            log.debug("dropping frame (%s) %s", reason, detail)
            return
        log.warning("dropping frame (%s)%s; %d dropped for this reason so far%s", reason,
                    f": {detail}" if detail else "", self._drops[reason],
                    f" ({held} since the last line)" if held else "")

    def _forget_and_drop(self, frames: Sequence[Frame], reason: str) -> None:
        with self._state_lock:
            for f in frames:
                self._received_at.pop(f.stamp_ns, None)
                self._drop(reason, f"stamp {f.stamp_ns}")

    # ------------------------------------------------------------------ processing
    def _process(self, frame: Frame) -> None:
        self._last_frame_wall, self._idle_flushed = time.monotonic(), False
        with self._pipeline_lock:  # reset/save_map wait for the window in flight and its publications
            self._check_restart(frame)
            self.camera_frame_seen = self.camera_frame_seen or str(getattr(frame, "frame_id", "") or "")
            try:
                self._drain_metric()
                updates = self.pipeline.push(frame)
            except Exception as exc:  # a broken window must not kill the node; counted and logged
                self.worker_errors += 1
                log.exception("pipeline failed on frame %d: %s", frame.stamp_ns, exc)
                self._forget_and_drop([frame], "pipeline_error")
                return
            self._deliver(updates, int(frame.stamp_ns))

    def _deliver(self, updates: Sequence[Update], stamp_ns: int | None) -> None:
        """Pipeline lock held: publish a push's or collect's updates (nothing once discarding; cancelled
        windows' frames as 'shutdown'); stamp_ns: the newest frame pushed (the sync mode's clock)."""
        if self._discarding():  # abandoned by stop(), or the transport is gone: publish nothing
            self._handle(self._as_shutdown(updates, discard=True))
            return
        cancelled = self.cancel.is_set()
        if cancelled:
            updates = self._as_shutdown(updates, discard=False)
        if stamp_ns is not None:
            self._data_t = max(self._data_t, stamp_ns * 1e-9)
            self._last_stamp = max(self._last_stamp or 0, stamp_ns)
        self._handle(updates)
        if not cancelled:  # stopping: no periodic outputs after a cancelled window
            self._tick()

    def _collect(self, block: bool = False) -> None:
        """Live, predicting ahead: finish the windows whose predictions are done (all: block)."""
        collect = getattr(self.pipeline, "collect", None)
        if not callable(collect) or not getattr(self.pipeline, "in_flight", 0):
            return
        with self._pipeline_lock:
            try:
                updates = collect(block)
            except Exception as exc:  # as in _process: a broken window must not kill the node
                self.worker_errors += 1
                log.exception("pipeline failed finishing a window predicted ahead: %s", exc)
                return
            if updates:
                self._deliver(updates, None)

    def _check_restart(self, frame: Frame) -> None:
        """A stamp far behind the newest one is a restarted source: restart the map (pipeline lock held)."""
        stamp = getattr(frame, "stamp_ns", None)
        if isinstance(stamp, bool) or not isinstance(stamp, (int, np.integer)):
            return  # the pipeline's door refuses it as bad_stamp
        stamp = int(stamp)
        newest = self._newest_stamp
        threshold_ns = float(self.params["clock_jump_back_threshold"]) * 1e9
        if newest is not None and threshold_ns > 0 and stamp < newest - threshold_ns:
            log.warning("stamps jumped back %.3f s (%d -> %d): the source restarted (a looped bag?); "
                        "starting a new map (counted as %s)", (newest - stamp) * 1e-9, newest, stamp,
                        CLOCK_JUMP_BACK)
            self._restart(CLOCK_JUMP_BACK)
            with self._state_lock:
                self.clock_jump_back += 1
            newest = None
        self._newest_stamp = stamp if newest is None else max(newest, stamp)

    def _restart(self, reason: str) -> None:
        """Forget map, trajectory and periodic timers; pending frames are drops under `reason`.
        The caller holds _pipeline_lock."""
        refused = [replace(u, reason=reason) if isinstance(u, FrameRefused) and u.reason == "reset" else u
                   for u in self.pipeline.reset()]
        self._handle(refused)
        with self._state_lock:
            self._path.clear()
            self._last_map_t = None
            self._last_diag_t = None
            self._data_t = 0.0
            self._last_stamp = None
            self._newest_stamp = None
            self.map_points = 0

    def _discarding(self) -> bool:
        """True when nothing may be published from this thread (closed output or an abandoned worker)."""
        return self._output_closed or threading.get_ident() in self._abandoned

    @staticmethod
    def _as_shutdown(updates: Sequence[Update], discard: bool) -> list[Update]:
        """Updates of a window cancelled (or, discard=True, abandoned) by stop(): its frames become
        'shutdown' drops, the cancelled window is no rejection, and (discard) nothing else remains."""
        out: list[Update] = []
        for u in updates:
            if isinstance(u, FrameRefused) and (discard or CANCELLED_MARK in u.reason):
                out.append(replace(u, reason=SHUTDOWN))
            elif isinstance(u, FramePose) and discard:
                out.append(FrameRefused(u.stamp_ns, SHUTDOWN))
            elif isinstance(u, WindowStats) and not u.accepted and CANCELLED_MARK in u.reason:
                continue
            elif not discard:
                out.append(u)
        return out

    def _publish_safely(self, fn: Callable[[], None]) -> None:
        """Run a publication step; live mode logs and counts a failing sink, sync mode (replay) raises."""
        if self.mode == "sync":
            fn()
            return
        try:
            fn()
        except Exception:
            self.worker_errors += 1
            log.exception("publishing failed")

    def _flush_if_idle(self) -> None:
        """Live: once per quiet period of `idle_flush` s (wall) without a frame, process the pending ones."""
        idle = float(self.params["idle_flush"])
        if idle <= 0 or self._idle_flushed or time.monotonic() - self._last_frame_wall < idle:
            return
        with self._pipeline_lock:
            self._idle_flushed = True
            if self._discarding() or self.cancel.is_set():
                return
            try:
                updates = self.pipeline.flush()
            except Exception as exc:  # as in _process: a broken window must not kill the node
                self.worker_errors += 1
                log.exception("pipeline failed flushing the pending frames: %s", exc)
                return
            if updates:
                self.idle_flushes += 1
                log.info("no image for %.1f s: processed the frames waiting for a full window", idle)
            self._handle(updates)

    def finish(self) -> None:
        """End of stream (sync mode or after stop): flush the partial window, publish map and diagnostics."""
        with self._pipeline_lock:
            updates = self.pipeline.flush()
            self._handle(updates)
            self._tick(force=True)

    def _handle(self, updates: Sequence[Update]) -> None:
        p = self.params
        map_frame = p["map_frame"]
        now = time.monotonic()
        frame_poses = [u for u in updates if isinstance(u, FramePose)]
        stats_by_window = {u.window_id: u for u in updates if isinstance(u, WindowStats)}
        pubs: list[Publication] = []
        corrected = False
        with self._state_lock:
            for u in updates:
                if isinstance(u, FramePose):
                    pubs.extend(self._pose_publications(u, now))
                elif isinstance(u, DepthFrame):
                    if p["publish_depth"]:
                        fid = p["camera_frame"] or u.frame_id
                        pubs.append(Publication("depth", u.stamp_ns, u, fid))
                        pubs.append(Publication("depth/camera_info", u.stamp_ns, u, fid))
                elif isinstance(u, WindowCloud):
                    if p["publish_points"]:
                        pubs.append(Publication("points", u.stamp_ns,
                                                thin_cloud(u, p["points_max_per_window"]), map_frame))
                elif isinstance(u, KeyframeAdded):
                    self.keyframes += 1
                    ws = stats_by_window.get(u.window_id)
                    pubs.append(Publication("keyframes", u.stamp_ns, KeyframeOut(
                        map_frame, u, float(ws.residual_rms) if ws else float("nan"),
                        int(ws.num_inliers) if ws else 0), map_frame))
                elif isinstance(u, WindowStats):
                    pubs.append(self._stats_publication(u, now))
                elif isinstance(u, FrameRefused):
                    self._received_at.pop(u.stamp_ns, None)
                    self._drop(reason_key(u.reason), f"stamp {u.stamp_ns}: {u.reason}")
                elif isinstance(u, LoopClosure):
                    self.loop_closures += 1
                    self.relocalisations += int(u.merged_segment >= 0)
                    pubs.append(Publication("loop_closures", u.stamp_ns, u, map_frame))
                elif isinstance(u, TrajectoryCorrected):
                    self._path.correct(u.stamps_ns, u.T_map_cam)
                    corrected = True
            if frame_poses or corrected:
                stamp = frame_poses[-1].stamp_ns if frame_poses else int(updates[-1].stamp_ns)
                pubs.append(Publication("path", stamp, self._path.snapshot(map_frame), map_frame))
        self._emit(pubs)

    def _pose_publications(self, u: FramePose, now: float) -> list[Publication]:
        p = self.params
        map_frame = p["map_frame"]
        cam = p["camera_frame"] or u.frame_id
        self.frames_processed += 1
        self.output_rate.tick(now)
        t0 = self._received_at.pop(u.stamp_ns, None)
        if t0 is not None:
            self.latency.add(now - t0)
        if self.clock_ns is not None:
            self.stamp_latency.add((self.clock_ns() - u.stamp_ns) * 1e-9)
        self._path.add(u)
        pubs = [Publication("odometry", u.stamp_ns, OdometryOut(map_frame, cam, u.T_map_cam, u.stamp_ns),
                            map_frame)]
        mode = p["publish_tf"]
        if mode == "camera":
            pubs.append(Publication("/tf", u.stamp_ns, TransformOut(map_frame, cam, u.T_map_cam, u.stamp_ns),
                                    map_frame))
        elif mode == "odom":
            T_odom_cam = self.tf_lookup(p["odom_frame"], cam, u.stamp_ns) if self.tf_lookup else None
            if T_odom_cam is None:
                self.tf_failures += 1
                if "tf_lookup_failed" not in self._warned:
                    self._warned.add("tf_lookup_failed")
                    log.warning("publish_tf 'odom': no %s -> %s transform; map -> odom not published",
                                p["odom_frame"], cam)
            else:
                pubs.append(Publication("/tf", u.stamp_ns, TransformOut(
                    map_frame, p["odom_frame"], map_to_odom(u.T_map_cam, T_odom_cam), u.stamp_ns), map_frame))
        return pubs

    def _stats_publication(self, u: WindowStats, now: float) -> Publication:
        self.tracking_state, self.segment_id = u.tracking_state, int(u.segment_id)
        self.scale_state = u.scale_state
        if math.isfinite(u.metric_scale):
            self.metric_scale, self.metric_scale_sigma = float(u.metric_scale), float(u.metric_scale_sigma)
        self.segments = max(self.segments, self.segment_id + 1)
        self.loop_verifications += u.loop_verifications
        self.loop_checks_skipped += u.loop_checks_skipped
        if u.accepted:
            self.windows_accepted += 1
        else:
            self._rejections[u.reason] += 1
        if "predict" in u.timings_s:
            self.predict_time.add(u.timings_s["predict"])
        t0 = self._received_at.get(u.stamp_ns)
        total = (now - t0) if t0 is not None else float(sum(u.timings_s.values()))
        return Publication("window_stats", u.stamp_ns, WindowStatsOut(
            self.params["map_frame"], u, total, sum(self._drops.values()), sum(self._rejections.values())),
            self.params["map_frame"])

    def _clock_s(self) -> float:
        return self._data_t if self.mode == "sync" else time.monotonic()

    def _tick(self, force: bool = False) -> None:
        """Publish the pending map and diagnostics when their period elapsed (or force)."""
        t = self._clock_s()
        pubs: list[Publication] = []
        with self._state_lock:
            last = self._last_map_t
            due = force or last is None or t - last >= self.params["map_publish_period"]
        if due:
            with self._pipeline_lock:  # the fused map is pulled when due: fusing it is the costly part
                m = self.pipeline.map_update(int(self._last_stamp or 0))
            if m is not None:
                with self._state_lock:
                    self.map_points = int(len(m.points))
                    self._last_map_t = t
                pubs.append(Publication("map", m.stamp_ns, m, self.params["map_frame"]))
        if force or self._last_diag_t is None or t - self._last_diag_t >= self.params["diagnostics_period"]:
            self._last_diag_t = t
            stamp = self._last_stamp or 0
            if self.mode == "live" and self.clock_ns is not None:
                stamp = self.clock_ns()
            pubs.append(Publication("/diagnostics", stamp, self.diagnostics()))
        self._emit(pubs)

    def _emit(self, pubs: Sequence[Publication]) -> None:
        """Hand each publication to the sink (or, pipelined, to the publisher thread, in order); in live
        mode one failing publisher does not stop the others."""
        if pubs and self._discarding():
            with self._state_lock:
                self.publications_suppressed += len(pubs)
            return
        publisher = self._publisher
        if pubs and publisher is not None and publisher.alive:
            try:
                publisher.submit(pubs)
                return
            except RuntimeError:  # closed by stop() meanwhile: publish here
                pass
        for pub in pubs:
            self._publish_safely(lambda pub=pub: self.sink.publish(pub))  # type: ignore[misc]
        if pubs:
            self.last_publish = time.monotonic()

    def wait_published(self, timeout: float | None = None) -> bool:
        """Wait until the publisher thread (pipelined live mode) has published everything handed to it;
        True at once when there is none."""
        publisher = self._publisher
        return publisher.flush(timeout) if publisher is not None else True

    def _publish_piped(self, pub: Publication) -> None:
        """The publisher thread's step: nothing once the output is closed (counted), else the sink."""
        if self._output_closed:
            with self._state_lock:
                self.publications_suppressed += 1
            return
        self.sink.publish(pub)
        self.last_publish = time.monotonic()

    def _publisher_error(self, exc: BaseException) -> None:
        with self._state_lock:
            self.worker_errors += 1
        log.error("publishing failed: %s: %s", type(exc).__name__, exc, exc_info=exc)

    def _close_publisher(self, deadline: float) -> None:
        """Publish what the worker handed over until `deadline` (wall clock), then end the thread;
        batches still waiting then are counted as suppressed publications."""
        publisher, self._publisher = self._publisher, None
        if publisher is None:
            return
        if not publisher.close(max(0.0, deadline - self._wall())):
            left = publisher.discard()
            with self._state_lock:
                self.publications_suppressed += left

    # ------------------------------------------------------------------ live worker
    def start(self) -> None:
        """Start a worker thread (live mode); after stop() the pipeline resumes where it was."""
        if self.mode != "live":
            raise RuntimeError("start() is for live mode; sync mode processes in submit()")
        with self._state_lock:
            old = self._worker
            if old is not None and old.is_alive():
                if not self._stopping:
                    return
                if old.ident is not None:
                    self._abandoned.add(old.ident)  # a stopped worker still in its window: never publishes
            self._stopping = False
            self._output_closed = False
            self.cancel.clear()
            self._stop = stop = threading.Event()
            self.queue.reopen()
            if self.params["pipelined"] and (self._publisher is None or not self._publisher.alive):
                self._publisher = PublisherThread(self._publish_piped, self._publisher_error)
            set_executor = getattr(self.pipeline, "set_executor", None)
            ahead = self.params["predict_ahead"] or self.params["predict_after_keyframes"]
            if ahead and callable(set_executor):
                if self._predict_pool is None or not self._predict_pool.alive:
                    self._predict_pool = DaemonExecutor("vggt_ros-predict")
                set_executor(self._submit_prediction)
            self._worker = threading.Thread(target=self._run, args=(stop,), name="vggt_ros-worker",
                                            daemon=True)
            self._worker.start()

    def _submit_prediction(self, fn: Callable[[], Any]) -> Future[Any]:
        """The pipeline's executor for windows predicted ahead: the predictor thread, and a finished
        prediction wakes the worker (it collects the window at once, no polling)."""
        assert self._predict_pool is not None
        future = self._predict_pool.submit(fn)
        future.add_done_callback(lambda _: self.queue.wake())
        return future

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            item = self.queue.get(timeout=0.05)
            if item is None:
                if not stop.is_set():
                    self._collect()
                    self._flush_if_idle()
                    self._tick()
                continue
            frame, _ = item
            if stop.is_set():  # taken while stop() drained the queue: never started
                self._forget_and_drop([frame], SHUTDOWN)
                break
            self._process(frame)
        self._collect(block=True)  # the windows predicted ahead end like the window in flight

    def request_stop(self, cancel_window: bool = False, timeout: float | None = None) -> None:
        """Non-blocking first half of stop(): refuse input, drop the queued frames as 'shutdown' (never
        started), and (cancel_window) cancel the window in flight now. The first call fixes the deadline
        (now + `timeout` or shutdown_timeout) that every later stop() keeps."""
        with self._state_lock:
            if not self._stopping:
                self._stopping = True
                budget = float(self.params["shutdown_timeout"] if timeout is None else timeout)
                self._stop_deadline = self._wall() + budget
            self.queue.close()
            self._stop.set()
            if cancel_window:
                self.cancel.set()
        left = [f for f, _ in self.queue.drain()]
        if left:
            self._forget_and_drop(left, SHUTDOWN)

    def close_output(self) -> None:
        """Publish nothing from now on (the transport is gone); until the next start()."""
        self._output_closed = True

    def stop(self, timeout: float | None = None) -> bool:
        """Stop within shutdown_timeout (or `timeout`); True when the worker has ended.

        The window in flight may finish (and publish) until the deadline minus a grace period of
        min(1 s, a quarter of the budget); then it is cancelled; a worker still inside it at the
        deadline is abandoned (its results are never published) and False is returned. The pipeline
        keeps its state: start() again resumes (lifecycle deactivate/activate).
        """
        self.request_stop(timeout=timeout)
        worker = self._worker
        if worker is None or not worker.is_alive():
            self._worker = None
            self._close_publisher(self._stop_deadline)
            return True
        budget = float(self.params["shutdown_timeout"] if timeout is None else timeout)
        grace = min(1.0, budget / 4)
        worker.join(max(0.0, self._stop_deadline - grace - self._wall()))
        if worker.is_alive():
            self.cancel.set()
            worker.join(max(0.0, self._stop_deadline - self._wall()))
        if not worker.is_alive():
            if self._worker is worker:
                self._worker = None
            self._close_publisher(self._stop_deadline)
            return True
        self._close_publisher(self._stop_deadline)
        with self._state_lock:
            first = worker.ident not in self._abandoned
            if worker.ident is not None:
                self._abandoned.add(worker.ident)
        if first:
            log.error("the window in flight did not end within shutdown_timeout (%.1f s); it is abandoned "
                      "and nothing it computes will be published", budget)
        return False

    @property
    def frames_dropped(self) -> int:
        return int(sum(self._drops.values()))

    @property
    def worker_alive(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    # ------------------------------------------------------------------ services
    def reset(self) -> None:
        """Forget the map and trajectory (service `reset`); counters stay cumulative."""
        left = [f for f, _ in self.queue.drain()]
        if left:
            self._forget_and_drop(left, "reset")
        with self._pipeline_lock:
            # frames still buffered in the pipeline come back as FrameRefused('reset'): counted drops
            self._restart("reset")
            with self._state_lock:
                self._received_at.clear()
                self.resets += 1
        log.info("map and trajectory reset")

    def save_map(self, name: str) -> SaveMapResult:
        """Save the global map into map_save_dir/name (service `save_map`); refuses escaping names."""
        try:
            target = resolve_save_path(self.params["map_save_dir"], name)
        except ValueError as exc:
            return SaveMapResult(False, str(exc))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._pipeline_lock:
                return self.map_saver(target)
        except Exception as exc:  # disk full, permissions: report, do not crash the service
            log.exception("save_map failed")
            return SaveMapResult(False, f"save_map failed: {exc}", str(target))

    def _pipeline_saver(self, target: Path) -> SaveMapResult:
        """The pipeline's global map and trajectory through io.map_store (atomic), and the map's size."""
        gmap = getattr(self.pipeline, "global_map", None)
        trajectory = getattr(self.pipeline, "trajectory", None)
        if gmap is None or trajectory is None:
            return SaveMapResult(False, "this pipeline cannot save a map")
        path = save_map_dir(gmap, target, trajectory=trajectory())
        n_points = len(gmap.snapshot())
        n_kf = len(gmap.keyframes)
        return SaveMapResult(True, f"saved {n_kf} keyframes, {n_points} points", str(path), n_points, n_kf)

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> Diagnostics:
        with self._state_lock:
            return Diagnostics(
                predictor=self.predictor_name,
                predictor_note=self.predictor_note,
                mode=self.mode,
                frames_received=self.frames_received,
                frames_processed=self.frames_processed,
                frames_dropped=int(sum(self._drops.values())),
                drops=counter_dict(self._drops),
                windows_accepted=self.windows_accepted,
                windows_rejected=int(sum(self._rejections.values())),
                rejections=counter_dict(self._rejections),
                keyframes=self.keyframes,
                map_points=self.map_points,
                queue_depth=len(self.queue),
                queue_size=self.queue.maxsize,
                queue_high_water=self.queue.high_water,
                input_rate_hz=self.input_rate.rate(),
                output_rate_hz=self.output_rate.rate(),
                latency_p50_s=self.latency.percentile(50),
                latency_p95_s=self.latency.percentile(95),
                stamp_latency_p50_s=self.stamp_latency.percentile(50),
                stamp_latency_p95_s=self.stamp_latency.percentile(95),
                predict_time_p50_s=self.predict_time.percentile(50),
                resets=self.resets,
                worker_alive=self.worker_alive,
                worker_errors=self.worker_errors,
                tf_failures=self.tf_failures,
                clock_jump_back=self.clock_jump_back,
                idle_flushes=self.idle_flushes,
                publications_suppressed=self.publications_suppressed,
                tracking_state=self.tracking_state,
                segment_id=self.segment_id,
                segments=self.segments,
                loop_closures=self.loop_closures,
                relocalisations=self.relocalisations,
                loop_verifications=self.loop_verifications,
                loop_checks_skipped=self.loop_checks_skipped,
                scale_source=str(self.params["scale_source"]),
                scale_state=self.scale_state,
                metric_scale=self.metric_scale,
                metric_scale_sigma=self.metric_scale_sigma,
                scale_rejected=self._scale_rejected(),
                **self._pipeline_stats(),
                **self._predictor_stats(),
            )

    def _pipeline_stats(self) -> dict[str, int]:
        """The pipeline's predict-ahead, standstill, gauge re-pinning and anchor-link counters
        (slam.pipeline.PipelineCounters) and its retracted loops (slam.tracking.TrackingStatus), when it has
        them."""
        c: Any = getattr(self.pipeline, "counters", None)
        if not hasattr(c, "windows_predicted_ahead"):
            return {}
        return {"windows_predicted_ahead": int(c.windows_predicted_ahead),
                "ahead_repredicted": int(c.ahead_repredicted + c.ahead_requeued),
                "frames_held": int(c.frames_held),
                "gauges_repinned": int(c.gauges_repinned),
                "anchor_links": int(c.anchor_links),
                "anchor_links_refused": int(c.anchor_links_refused),
                "loops_retracted": int(getattr(getattr(self.pipeline, "tracking", None),
                                               "loops_retracted", 0))}

    def _predictor_stats(self) -> dict[str, int]:
        """oom_retries / forward_frames of an OomGuardPredictor (runtime/memory.py), else nothing."""
        stats = getattr(getattr(self.pipeline, "predictor", None), "stats", None)
        return {k: int(v) for k, v in stats().items()} if callable(stats) else {}

    def _scale_rejected(self) -> dict[str, int]:
        metric = getattr(self.pipeline, "metric", None)
        rejected = getattr(metric, "rejected", None)
        try:  # read without the pipeline lock: the worker may be counting right now
            return counter_dict(Counter(dict(rejected))) if isinstance(rejected, Counter) else {}
        except RuntimeError:
            return {}
