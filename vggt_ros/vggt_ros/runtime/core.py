"""`NodeCore`: the node's behaviour without a transport.

A source (rclpy subscription, rosbag replay, test thread) calls `submit(frame)`; the core checks it,
queues it (live) or processes it at once (sync), runs `slam.Pipeline.push` on ONE worker thread, turns
the Updates into `Publication`s (publishing.py) and hands them to a `Sink`, in order.

Modes:
- "sync": deterministic replay. `submit` processes the frame in the caller's thread; nothing is dropped
  for load; periodic outputs (map, diagnostics) are timed by the data's stamps, so a replay gives the
  same output bag however fast the machine is. `finish()` flushes the pipeline's partial window.
- "live": a bounded `DropQueue` (drop_policy) feeds one worker thread; periods are wall time. `stop()`
  closes the queue, lets the worker finish the window in flight and joins it within shutdown_timeout.

Thread-safety: every Pipeline call (push, flush, reset, save) holds `_pipeline_lock`, so services
(reset, save_map) may be called from any thread; they wait for the window in flight.

What the rclpy node calls: `NodeCore(params, pipeline, sink, mode="live", clock_ns=..., tf_lookup=...)`,
`start()` on activate, `submit(frame)` per image, `count_drop(reason)` for undecodable input,
`reset()`, `save_map(name)`, `diagnostics()`, `stop()` on deactivate/shutdown.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vggt_ros.io.map_store import save_map as save_map_dir
from vggt_ros.slam.updates import (
    DepthFrame,
    FramePose,
    FrameRefused,
    KeyframeAdded,
    MapChanged,
    Update,
    WindowCloud,
    WindowStats,
    reason_key,
)
from vggt_ros.types import Frame

from .params import Params
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

log = logging.getLogger("vggt_ros.runtime")

MODES = ("sync", "live")


class PipelineLike(Protocol):
    """What NodeCore needs from slam.Pipeline."""

    def push(self, frame: Frame) -> list[Update]: ...

    def flush(self) -> list[Update]: ...

    def reset(self) -> list[Update]: ...


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
        self._stop = threading.Event()
        self._drops: Counter[str] = Counter()
        self._rejections: Counter[str] = Counter()
        self._warned: set[str] = set()
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
        self._path = PathState()
        self._pending_map: MapChanged | None = None
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
            self._forget_and_drop([frame], "stopped")
            return False
        if dropped is not None:
            self._forget_and_drop([dropped[0]], "queue_full")
            return dropped[0] is not frame
        return True

    def count_drop(self, reason: str, detail: str = "") -> None:
        """Count a frame the transport could not turn into a Frame (decode error: reason names why)."""
        with self._state_lock:
            self.frames_received += 1
            self._drop(reason, detail)

    def _drop(self, reason: str, detail: str = "") -> None:
        self._drops[reason] += 1
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning("dropping frame (%s)%s; further drops of this kind are counted in diagnostics",
                        reason, f": {detail}" if detail else "")
        else:
            log.debug("dropping frame (%s) %s", reason, detail)

    def _forget_and_drop(self, frames: Sequence[Frame], reason: str) -> None:
        with self._state_lock:
            for f in frames:
                self._received_at.pop(f.stamp_ns, None)
                self._drop(reason, f"stamp {f.stamp_ns}")

    # ------------------------------------------------------------------ processing
    def _process(self, frame: Frame) -> None:
        with self._pipeline_lock:  # reset/save_map wait for the window in flight and its publications
            try:
                updates = self.pipeline.push(frame)
            except Exception as exc:  # a broken window must not kill the node; counted and logged
                self.worker_errors += 1
                log.exception("pipeline failed on frame %d: %s", frame.stamp_ns, exc)
                self._forget_and_drop([frame], "pipeline_error")
                return
            self._data_t = max(self._data_t, frame.stamp_ns * 1e-9)
            self._last_stamp = max(self._last_stamp or 0, int(frame.stamp_ns))
            self._handle(updates)
            self._tick()

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
                elif isinstance(u, MapChanged):
                    self._pending_map = u
                    self.map_points = int(len(u.points))
                elif isinstance(u, WindowStats):
                    pubs.append(self._stats_publication(u, now))
                elif isinstance(u, FrameRefused):
                    self._received_at.pop(u.stamp_ns, None)
                    self._drop(reason_key(u.reason), f"stamp {u.stamp_ns}: {u.reason}")
            if frame_poses:
                pubs.append(Publication("path", frame_poses[-1].stamp_ns, self._path.snapshot(map_frame),
                                        map_frame))
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
            m = self._pending_map
            if m is not None and (force or self._last_map_t is None
                                  or t - self._last_map_t >= self.params["map_publish_period"]):
                pubs.append(Publication("map", m.stamp_ns, m, self.params["map_frame"]))
                self._pending_map = None
                self._last_map_t = t
        if force or self._last_diag_t is None or t - self._last_diag_t >= self.params["diagnostics_period"]:
            self._last_diag_t = t
            stamp = self._last_stamp or 0
            if self.mode == "live" and self.clock_ns is not None:
                stamp = self.clock_ns()
            pubs.append(Publication("/diagnostics", stamp, self.diagnostics()))
        self._emit(pubs)

    def _emit(self, pubs: Sequence[Publication]) -> None:
        """Hand each publication to the sink; in live mode one failing publisher does not stop the others."""
        for pub in pubs:
            self._publish_safely(lambda pub=pub: self.sink.publish(pub))  # type: ignore[misc]
        if pubs:
            self.last_publish = time.monotonic()

    # ------------------------------------------------------------------ live worker
    def start(self) -> None:
        """Start the worker thread (live mode)."""
        if self.mode != "live":
            raise RuntimeError("start() is for live mode; sync mode processes in submit()")
        if self._worker is not None and self._worker.is_alive():
            return
        self._stop.clear()
        self.queue.reopen()
        self._worker = threading.Thread(target=self._run, name="vggt_ros-worker", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.queue.get(timeout=0.05)
            if item is not None:
                frame, _ = item
                if self._stop.is_set():
                    self._forget_and_drop([frame], "stopped")
                    break
                self._process(frame)
            else:
                self._tick()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop accepting frames, let the worker finish its window, join it (bounded). True if joined.

        Frames still waiting are dropped with reason 'stopped'. The pipeline keeps its state: start()
        again resumes (lifecycle deactivate/activate).
        """
        self.queue.close()
        self._stop.set()
        joined = True
        if self._worker is not None:
            self._worker.join(self.params["shutdown_timeout"] if timeout is None else timeout)
            joined = not self._worker.is_alive()
            if joined:
                self._worker = None
            else:
                log.error("worker did not stop within the timeout; it exits after its current window")
        left = [f for f, _ in self.queue.drain()]
        if left:
            self._forget_and_drop(left, "stopped")
        return joined

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
            self._handle(self.pipeline.reset())
            with self._state_lock:
                self._path.clear()
                self._pending_map = None
                self._last_map_t = None
                self._received_at.clear()
                self.map_points = 0
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
            )
