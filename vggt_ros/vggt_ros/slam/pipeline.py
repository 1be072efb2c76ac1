"""Pipeline: the single streaming entry of the node and the replay, `push(frame) -> [Update]`.

Frames are checked at the door (FrameValidator: refused frames are counted and returned as
FrameRefused), buffered in a FrameWindow, and every N new frames a window is predicted:
the first window is `window_size` new frames and its frame 0 becomes the first keyframe and
fixes the gauge and the map scale (VGGT's window units; arbitrary, REP 103 exception);
later windows are `num_anchors` keyframes (newest first: window frame 0 is the newest
keyframe, VGGT's reference frame) + `window_size - num_anchors` new frames, aligned to the
map by a Stitcher. Every accepted frame leaves exactly once: emitted as a FramePose (accepted
window), or counted as dropped with a reason and returned as FrameRefused (rejected window,
skipped/dropped window; `reset()` returns FrameRefused("reset") for the frames it discards).

Frames: internally the pipeline works in "world" = the first keyframe's OPTICAL camera frame
(what VGGT's first window predicts in); every Update is converted to the map frame = the first
keyframe's BODY frame (REP 103/105): T_map_cam = T_BODY_OPTICAL @ T_world_cam.

Overload hooks for the runtime (what an overloaded node does):
- `skip_next_window(reason)`: the next window that fills is not predicted; its new frames are
  dropped (counted under `reason`, returned as FrameRefused) and a rejected WindowStats is
  emitted. Anchors come from the map, so the following window still stitches.
- `drop_pending(reason)`: drop the frames buffered right now, same accounting.
Per-window Update order: FramePose/DepthFrame per new frame, KeyframeAdded, WindowCloud,
MapChanged (when keyframes were added), WindowStats last. WindowStats.scale is the window ->
map scale; WindowStats.residual_rms is the stitch's Sim(3) inlier RMS relative to the scene's
median depth (unitless; 0 for the first window), so one threshold fits any map scale.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vggt_ros.geometry.depth import sample_bilinear, unproject_pixels
from vggt_ros.geometry.frames import T_BODY_OPTICAL
from vggt_ros.geometry.se3 import apply_T, invert_T
from vggt_ros.slam.config import PipelineConfig
from vggt_ros.slam.global_map import GlobalMap
from vggt_ros.slam.keyframes import Keyframe, KeyframeManager
from vggt_ros.slam.stitching import StitchInput, TrackQueries, TrackStitcher, make_stitcher
from vggt_ros.slam.updates import (
    DepthFrame,
    FramePose,
    FrameRefused,
    KeyframeAdded,
    MapChanged,
    Update,
    WindowCloud,
    WindowStats,
)
from vggt_ros.slam.validation import FrameValidator
from vggt_ros.slam.window import FrameWindow, PendingFrame
from vggt_ros.types import Frame, Predictor, WindowPrediction

log = logging.getLogger(__name__)


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
    predict_time_s: float = 0.0
    core_time_s: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in self.__dict__.items()}


def _reason_key(reason: str) -> str:
    """Counter key of a reason: the text before any ' (details)'."""
    return reason.split(" (", 1)[0]


class Pipeline:
    """Sliding-window reconstruction: see the module doc. predictor implements types.Predictor."""

    def __init__(self, predictor: Predictor, config: PipelineConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or PipelineConfig()
        self.stitcher = make_stitcher(self.config.stitcher, self.config.stitch)
        self.reset()

    # --- state ------------------------------------------------------------------------------------
    def reset(self) -> list[Update]:
        """Forget everything (map, keyframes, counters) and start a new stream.

        Returns FrameRefused("reset") for the frames that were still pending (counters restart at 0).
        """
        window: FrameWindow | None = getattr(self, "window", None)
        pending = window.clear() if window is not None else []
        out: list[Update] = [FrameRefused(int(p.frame.stamp_ns), "reset") for p in pending]
        cfg = self.config
        self.validator = FrameValidator()
        self.window = FrameWindow(cfg.window_size, cfg.num_anchors)
        self.keyframes = KeyframeManager(cfg.keyframes)
        self.global_map = GlobalMap(
            None, cfg.map.max_bytes, cfg.map.points_per_keyframe, voxel_size_rel=cfg.map.voxel_size_rel
        )
        self.counters = PipelineCounters()
        self._next_index = 0
        self._next_window = 0
        self._skip: list[str] = []
        self._maps_pending = 0
        self._stamps: list[int] = []
        self._poses: list[np.ndarray] = []
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
        """Emitted poses: (stamps_ns (N,) int64, T_map_cam (N,4,4)) in emission order."""
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
            log.warning("frame refused: %s", reason)
            return [FrameRefused(int(stamp) if isinstance(stamp, (int, np.integer)) else -1, reason)]
        self.counters.frames_accepted += 1
        self.window.add(self._next_index, frame)
        self._next_index += 1
        if self.window.ready(self.bootstrapped):
            return self._process(self.window.take(self.window.new_per_window(self.bootstrapped)))
        return []

    def flush(self) -> list[Update]:
        """Process the leftover frames as a last (shorter) window; nothing stays pending."""
        out: list[Update] = []
        while len(self.window):
            out += self._process(self.window.take(self.window.new_per_window(self.bootstrapped)))
        return out

    def skip_next_window(self, reason: str = "skipped") -> None:
        """Drop the next window that fills instead of predicting it (counted under `reason`)."""
        self._skip.append(reason)

    def drop_pending(self, reason: str = "dropped") -> list[Update]:
        """Drop every frame buffered now; returns one FrameRefused per frame (counted under `reason`)."""
        return self._drop(self.window.clear(), reason)

    # --- internals --------------------------------------------------------------------------------
    def _drop(self, pending: list[PendingFrame], reason: str) -> list[Update]:
        self.counters.frames_dropped[_reason_key(reason)] += len(pending)
        return [FrameRefused(int(p.frame.stamp_ns), reason) for p in pending]

    def _stats(
        self,
        window_id: int,
        pending: list[PendingFrame],
        anchors: list[Keyframe],
        accepted: bool,
        reason: str,
        timings: dict[str, float],
        **kw: float,
    ) -> WindowStats:
        return WindowStats(
            window_id=window_id,
            stamp_ns=int(pending[-1].frame.stamp_ns),
            num_frames=len(anchors) + len(pending),
            num_new=len(pending),
            anchor_keyframe_ids=tuple(k.keyframe_id for k in anchors),
            accepted=accepted,
            reason=reason,
            scale=float(kw.get("scale", float("nan"))),
            residual_rms=float(kw.get("residual_rms", float("nan"))),
            num_inliers=int(kw.get("num_inliers", 0)),
            num_correspondences=int(kw.get("num_correspondences", 0)),
            timings_s=dict(timings),
        )

    def _reject(
        self,
        window_id: int,
        pending: list[PendingFrame],
        anchors: list[Keyframe],
        reason: str,
        timings: dict[str, float],
        **kw: float,
    ) -> list[Update]:
        self.counters.windows_rejected[_reason_key(reason)] += 1
        log.warning("window %d rejected: %s", window_id, reason)
        out = self._drop(pending, f"window_rejected: {reason}")
        out.append(self._stats(window_id, pending, anchors, False, reason, timings, **kw))
        return out

    def _queries(self, anchors: list[Keyframe], size: tuple[int, int], window_id: int) -> TrackQueries:
        n = self.config.stitch.num_queries
        if not anchors:  # first window: a grid on frame 0, no map points yet
            H, W = size
            k = max(2, int(np.ceil(np.sqrt(n * W / H))))
            m = max(2, int(np.ceil(n / k)))
            u, v = np.meshgrid(
                np.linspace(0.05 * W, 0.95 * (W - 1), k), np.linspace(0.05 * H, 0.95 * (H - 1), m)
            )
            uv = np.stack([u.ravel(), v.ravel()], 1)
            return TrackQueries(uv, np.full((len(uv), 3), np.nan))
        uv, X, _ = anchors[0].points_world(max_points=n, seed=self.config.seed + window_id)
        return TrackQueries(uv, X)

    @staticmethod
    def _check_prediction(
        pred: WindowPrediction, S: int, size: tuple[int, int], depth_for: list[int]
    ) -> str | None:
        try:
            if np.shape(pred.T_cam_win) != (S, 4, 4) or not np.all(np.isfinite(pred.T_cam_win)):
                return "bad_prediction (poses)"
            if np.shape(pred.K) != (S, 3, 3) or not np.all(np.isfinite(pred.K)):
                return "bad_prediction (intrinsics)"
            for i in depth_for:
                if (
                    i not in pred.depth
                    or np.shape(pred.depth[i]) != size
                    or np.shape(pred.depth_conf[i]) != size
                ):
                    return "bad_prediction (depth)"
            if np.ndim(pred.tracks) != 3 or np.shape(pred.tracks)[0] != S or np.shape(pred.vis)[:1] != (S,):
                return "bad_prediction (tracks)"
        except Exception as exc:  # a malformed object from a foreign predictor
            return f"bad_prediction ({type(exc).__name__})"
        return None

    def _process(self, pending: list[PendingFrame]) -> list[Update]:
        window_id = self._next_window
        self._next_window += 1
        if not pending:
            return []
        if self._skip:
            reason = self._skip.pop(0)
            self.counters.windows_skipped[_reason_key(reason)] += 1
            out = self._drop(pending, reason)
            out.append(self._stats(window_id, pending, [], False, reason, {}))
            return out
        t_start = time.perf_counter()
        cfg = self.config
        anchors = self.keyframes.active(cfg.num_anchors) if self.bootstrapped else []
        frames = [k.as_frame() for k in anchors] + [p.frame for p in pending]
        S, A = len(frames), len(anchors)
        size = pending[0].frame.size
        queries = self._queries(anchors, size, window_id)
        depth_for = list(range(S))
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            pred = self.predictor.predict(frames, queries.uv.astype(np.float32), depth_for)
        except Exception as exc:
            timings["predict"] = time.perf_counter() - t0
            self.counters.predict_time_s += timings["predict"]
            log.exception("predictor failed on window %d", window_id)
            return self._reject(
                window_id, pending, anchors, f"predictor_error ({type(exc).__name__}: {exc})", timings
            )
        timings["predict"] = time.perf_counter() - t0
        self.counters.predict_time_s += timings["predict"]
        bad = self._check_prediction(pred, S, size, depth_for)
        if bad is not None:
            return self._reject(window_id, pending, anchors, bad, timings)
        K = np.stack(
            [
                f.K if (cfg.use_camera_intrinsics and f.K is not None) else pred.K[i]
                for i, f in enumerate(frames)
            ]
        ).astype(np.float64)
        new_idx = list(range(A, S))
        t1 = time.perf_counter()
        if not anchors:
            # first window: world = frame 0's camera, scale 1 (the map's scale from now on)
            T_win_cam = invert_T(pred.T_cam_win)
            T0_inv = pred.T_cam_win[0]
            poses = {j: T0_inv @ T_win_cam[j] for j in new_idx}
            scale, rel, n_in, n_corr = 1.0, 0.0, 0, 0
            depth_scale: dict[int, float] = {}
            d0 = pred.depth[0]
            if not np.any(np.isfinite(d0) & (d0 > 0) & (pred.depth_conf[0] >= cfg.depth_conf_threshold)):
                timings["stitch"] = time.perf_counter() - t1
                return self._reject(window_id, pending, anchors, "no_valid_depth (first window)", timings)
            if isinstance(self.stitcher, TrackStitcher) and S > 1:
                poses, depth_scale = self._refine_first_window(pred, K, poses, queries, size, window_id)
        else:
            inp = StitchInput(
                pred, anchors, new_idx, K, queries, size, cfg.depth_conf_threshold, cfg.seed + window_id
            )
            try:
                res = self.stitcher.stitch(inp)
            except Exception as exc:  # never let one window stop the stream
                log.exception("stitcher failed on window %d", window_id)
                timings["stitch"] = time.perf_counter() - t1
                return self._reject(
                    window_id, pending, anchors, f"stitch_error ({type(exc).__name__}: {exc})", timings
                )
            timings["stitch"] = time.perf_counter() - t1
            kw = dict(
                scale=res.sim3.scale if res.sim3 is not None else float("nan"),
                residual_rms=res.residual_rel,
                num_inliers=res.num_inliers,
                num_correspondences=res.num_correspondences,
            )
            if not res.accepted:
                self.counters.core_time_s += time.perf_counter() - t_start - timings["predict"]
                return self._reject(window_id, pending, anchors, res.reason, timings, **kw)
            assert res.sim3 is not None
            poses, scale, rel = res.T_world_cam, res.sim3.scale, res.residual_rel
            depth_scale = res.depth_scale
            n_in, n_corr = res.num_inliers, res.num_correspondences
        timings.setdefault("stitch", time.perf_counter() - t1)
        t2 = time.perf_counter()
        if anchors and cfg.fuse_anchor_depth:
            self._fuse_anchors(anchors, pred, scale)
        out = self._emit(window_id, pending, anchors, pred, K, poses, scale, depth_scale, queries)
        timings["emit"] = time.perf_counter() - t2
        self.counters.windows_accepted += 1
        out.append(
            self._stats(
                window_id,
                pending,
                anchors,
                True,
                "ok",
                timings,
                scale=scale,
                residual_rms=rel,
                num_inliers=n_in,
                num_correspondences=n_corr,
            )
        )
        self.counters.core_time_s += time.perf_counter() - t_start - timings["predict"]
        return out

    def _refine_first_window(
        self,
        pred: WindowPrediction,
        K: np.ndarray,
        poses: dict[int, np.ndarray],
        queries: TrackQueries,
        size: tuple[int, int],
        window_id: int,
    ) -> tuple[dict[int, np.ndarray], dict[int, float]]:
        """Ours only: tie the first window's frames to frame 0's depth by PnP on the tracks, as later windows.

        Frame 0's depth at the query pixels gives 3D points in the world (= frame 0's camera); the
        tracks give their pixels in the other frames. The baselines keep VGGT's predicted poses.
        """
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
            size,
            thr,
            self.config.seed + window_id,
        )
        assert isinstance(self.stitcher, TrackStitcher)
        new_poses, _, _, _, scales = self.stitcher.refine_poses(inp, poses, 1.0, depth)
        return new_poses, scales

    def _fuse_anchors(self, anchors: list[Keyframe], pred: WindowPrediction, scale: float) -> None:
        """Average each anchor's re-predicted depth (window scale -> map units) into keyframe and map."""
        thr = self.config.depth_conf_threshold
        for i, kf in enumerate(anchors):
            if i not in pred.depth:
                continue
            conf = pred.depth_conf[i]
            d = np.where(conf >= thr, pred.depth[i] * scale, np.nan)
            if kf.fuse_depth(d, conf) == 0 or kf.keyframe_id not in self.global_map.keyframes:
                continue
            uv, X, c = kf.points_world()
            self.global_map.replace_points(
                kf.keyframe_id, apply_T(invert_T(kf.T_world_cam), X), kf.colors_at(uv), c
            )

    def _emit(
        self,
        window_id: int,
        pending: list[PendingFrame],
        anchors: list[Keyframe],
        pred: WindowPrediction,
        K: np.ndarray,
        poses: dict[int, np.ndarray],
        scale: float,
        depth_scale: dict[int, float],
        queries: TrackQueries,
    ) -> list[Update]:
        cfg = self.config
        A = len(anchors)
        size = pending[0].frame.size
        gauge_id = anchors[0].keyframe_id if anchors else None
        track_valid = queries.valid if anchors else np.ones(len(queries.uv), bool)
        out: list[Update] = []
        kf_updates: list[Update] = []
        cloud_pts, cloud_col, cloud_conf = [], [], []
        cs = max(1, cfg.cloud_stride)
        for k, p in enumerate(pending):
            j = A + k
            T_wc = poses[j]
            T_map_cam = T_BODY_OPTICAL @ T_wc
            conf = pred.depth_conf[j].astype(np.float32)
            depth = pred.depth[j].astype(np.float32) * np.float32(depth_scale.get(j, scale))
            invalid = ~(np.isfinite(depth) & (depth > 0) & (conf >= cfg.depth_conf_threshold))
            depth = np.where(invalid, np.nan, depth).astype(np.float32)
            conf_out = np.where(invalid, np.nan, conf).astype(np.float32)
            # keyframe decision against the last keyframe
            last = self.keyframes.last
            if last is None:
                is_kf = True
            else:
                if last.keyframe_id == gauge_id or (
                    gauge_id is None and last.window_id == window_id and last.frame_index == pending[0].index
                ):
                    covis = self.keyframes.covisible_tracks(
                        pred.tracks[j].astype(np.float64),
                        pred.vis[j],
                        pred.conf[j],
                        track_valid,
                        size,
                        cfg.stitch.min_track_vis,
                        cfg.stitch.min_track_conf,
                    )
                else:
                    covis = self.keyframes.covisible_geometric(last, T_wc, K[j], size)
                is_kf = self.keyframes.is_keyframe(covis, self.keyframes.motion_rel(last, T_wc))
            out.append(
                FramePose(int(p.frame.stamp_ns), p.index, p.frame.frame_id, T_map_cam, window_id, is_kf)
            )
            self._stamps.append(int(p.frame.stamp_ns))
            self._poses.append(T_map_cam)
            self.counters.frames_emitted += 1
            if cfg.emit_depth:
                out.append(
                    DepthFrame(int(p.frame.stamp_ns), p.index, p.frame.frame_id, depth, conf_out, K[j].copy())
                )
            # window cloud (map frame)
            sub = depth[::cs, ::cs]
            v, u = np.nonzero(np.isfinite(sub))
            if len(u):
                uv = np.stack([u * cs, v * cs], 1).astype(np.float64)
                pts = unproject_pixels(uv, sub[v, u], K[j], T_map_cam)
                cloud_pts.append(pts.astype(np.float32))
                cloud_col.append(p.frame.rgb[v * cs, u * cs])
                cloud_conf.append(conf[::cs, ::cs][v, u])
            if is_kf:
                kf = self.keyframes.add(
                    frame_index=p.index,
                    frame=p.frame,
                    window_id=window_id,
                    T_world_cam=T_wc,
                    K=K[j],
                    K_known=(cfg.use_camera_intrinsics and p.frame.K is not None),
                    depth=depth,
                    conf=conf,
                    scale=scale,
                )
                self.counters.keyframes += 1
                uv_k, X_k, c_k = kf.points_world()
                pts_cam = apply_T(invert_T(kf.T_world_cam), X_k)
                col = p.frame.rgb[uv_k[:, 1].astype(np.intp), uv_k[:, 0].astype(np.intp)]
                self.global_map.add_keyframe(
                    kf.keyframe_id, kf.stamp_ns, kf.frame_index, T_map_cam, K[j], size, pts_cam, col, c_k
                )
                kf_updates.append(
                    KeyframeAdded(
                        kf.keyframe_id,
                        p.index,
                        int(p.frame.stamp_ns),
                        p.frame.frame_id,
                        T_map_cam,
                        K[j].copy(),
                        size[1],
                        size[0],
                        window_id,
                        float(scale),
                    )
                )
        out += kf_updates
        stamp = int(pending[-1].frame.stamp_ns)
        if cloud_pts:
            out.append(
                WindowCloud(
                    stamp,
                    window_id,
                    np.concatenate(cloud_pts),
                    np.concatenate(cloud_col),
                    np.concatenate(cloud_conf),
                )
            )
        if kf_updates:
            self._maps_pending += 1
            if self._maps_pending >= max(1, cfg.map_every):
                self._maps_pending = 0
                snap = self.global_map.snapshot()
                out.append(MapChanged(stamp, snap.points, snap.colors, snap.confidence, len(self.global_map)))
        return out
