"""Stitchers: align one window's prediction to the map (window frame -> world Sim(3) + new-frame poses).

World = the pipeline's internal frame (first keyframe's OPTICAL camera frame), map units.
The window frame is VGGT's: frame 0's camera, with a scale normalised per inference (VGGT
README; vggt#37), so every window needs its own Sim(3), not an SE(3).

Three stitchers share one interface (`stitch(StitchInput) -> StitchResult`) so they run on
identical predictions in the benchmark:
- `TrackStitcher` (ours): robust Sim(3) (RANSAC + Huber IRLS, geometry.alignment.robust_sim3)
  from (a) the anchors' depth in the window vs in the map at the same pixels,
  confidence-weighted, subsampled, and (b) VGGT point tracks queried on the latest keyframe
  (window frame 0) at map points and followed into the new frames: the new frames' predicted
  depth at the tracked pixel vs the map point. Then each new frame's pose is refined by
  PnP (Levenberg-Marquardt on the 2D-3D track/map correspondences, with the camera's or the
  window's intrinsics) starting from the Sim(3) pose; the map points are first cleared of depth
  outliers (refresh_queries) and, after a first PnP, averaged with the other window frames' depth of the
  same points (the older anchors' and the new frames': fuse_track_depths) before a second. The older
  anchors are measured again the same way, each by PnP on the gauge's points (anchor_links; pose-graph
  edges). Windows are rejected when the
  Sim(3) residual or inlier ratio, or the tracks' reprojection inlier ratio, is bad.
- `CameraCentreStitcher` (baseline, what vggt-slam-ros2 does): Umeyama Sim(3) between the
  overlap (anchor) frames' camera centres in the window and in the map.
- `PointMapStitcher` (baseline, what VGGT-Long does): confidence-weighted point-map Sim(3) by
  IRLS (Huber) over the overlap (anchor) frames' depth, no tracks, no per-frame refinement.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import cv2
import numpy as np

from vggt_ros.geometry.alignment import (
    AlignmentResult,
    DegenerateInputError,
    median_and_sigma,
    robust_sim3,
    umeyama_sim3,
)
from vggt_ros.geometry.depth import (
    in_image,
    project_points,
    sample_bilinear,
    sample_nearest,
    unproject_pixels,
)
from vggt_ros.geometry.pnp_uncertainty import pose_sigmas, rotation_sigma_deg
from vggt_ros.geometry.rgbd_pose import refine_pose_rgbd
from vggt_ros.geometry.se3 import Sim3, apply_T, invert_T, nearest_rotation, rotation_angle
from vggt_ros.slam.config import StitchConfig
from vggt_ros.slam.keyframes import Keyframe
from vggt_ros.types import WindowPrediction


@dataclass
class TrackQueries:
    """Track queries on window frame 0. uv (N,2) camera pixels; X_world (N,3) map points (NaN if none)."""

    uv: np.ndarray
    X_world: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return np.all(np.isfinite(self.X_world), axis=1)


@dataclass
class StitchInput:
    """Everything a stitcher may use for one window.

    prediction: the predictor's output for the window (window indices 0..S-1).
    anchors: the anchor keyframes at window indices 0..A-1 (anchors[0] is the gauge frame).
    new_indices: window indices of the new frames, in time order.
    K: (S,3,3) intrinsics used for each window frame (camera's if known, else predicted).
    queries: the track queries on frame 0. size: (H, W).
    metric_depth: window index -> a measured depth (H, W) at that frame's pixels, map units, NaN
        invalid (a registered depth camera once the map is metric); refine_poses adds it to PnP.
    """

    prediction: WindowPrediction
    anchors: list[Keyframe]
    new_indices: list[int]
    K: np.ndarray
    queries: TrackQueries
    size: tuple[int, int]
    depth_conf_threshold: float = 1.5
    seed: int = 0
    metric_depth: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class AnchorLink:
    """An anchor keyframe's pose measured again by a later window (stitching.anchor_links).

    T_world_cam (4,4) world units; rot_sigma_rad / trans_sigma: per-axis 1-sigma of the orientation
    (radians) and of the camera centre (world units) from the PnP's covariance; inliers: its matches.
    """

    T_world_cam: np.ndarray
    rot_sigma_rad: float
    trans_sigma: float
    inliers: int

    def rescaled(self, ratio: float) -> AnchorLink:
        """The same measurement after the world was rescaled by ratio about its origin."""
        T = self.T_world_cam.copy()
        T[:3, 3] *= ratio
        return replace(self, T_world_cam=T, trans_sigma=self.trans_sigma * ratio)


@dataclass
class StitchResult:
    """accepted / reason; sim3 maps the window frame into the world; T_world_cam per new window index.

    residual_rel: Sim(3) inlier RMS relative to each point's distance (relative_residual); num_inliers and
    num_correspondences of the Sim(3) fit; pinned: window indices of the new frames whose PnP pose was
    kept (pnp_refined: how many; None from a stitcher that does not refine poses by PnP);
    track_inlier_ratio: track observations within the reprojection bound / all used.
    """

    accepted: bool
    reason: str
    sim3: Sim3 | None = None
    T_world_cam: dict[int, np.ndarray] = field(default_factory=dict)
    residual_rel: float = float("nan")
    num_inliers: int = 0
    num_correspondences: int = 0
    track_inlier_ratio: float = float("nan")
    depth_scale: dict[int, float] = field(default_factory=dict)
    pinned: frozenset[int] | None = None
    anchor_links: dict[int, AnchorLink] = field(default_factory=dict)

    @property
    def pnp_refined(self) -> int:
        return len(self.pinned or ())


@dataclass
class PoseRefinement:
    """Result of TrackStitcher.refine_poses: poses per window index (T_world_cam), track observations
    used, inliers among them, per-frame depth scales, the window indices whose PnP pose was kept."""

    poses: dict[int, np.ndarray]
    observations: int
    inliers: int
    depth_scale: dict[int, float]
    pinned: frozenset[int] = frozenset()

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.observations if self.observations else float("nan")


class Stitcher(Protocol):
    name: str

    def stitch(self, inp: StitchInput) -> StitchResult: ...


# --- correspondences ------------------------------------------------------------------------------
def anchor_depth_correspondences(
    inp: StitchInput, max_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same pixels of each anchor: window points (N,3), world points (N,3), sqrt(conf_map*conf_win) (N,).

    At most max_points, drawn (seeded) from all anchors' usable pixels before anything is unprojected."""
    pred = inp.prediction
    picks: list[tuple[int, Keyframe, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for i, kf in enumerate(inp.anchors):
        if i not in pred.depth or kf.depth is None or kf.conf is None:
            continue
        st = kf.depth_stride
        d_map = kf.depth.reshape(-1).astype(np.float64)
        rows, cols = np.divmod(np.flatnonzero(np.isfinite(d_map) & (d_map > 0)), kf.depth.shape[1])
        vi, ui = rows * st, cols * st
        d = pred.depth[i][vi, ui].astype(np.float64)
        c = pred.depth_conf[i][vi, ui].astype(np.float64)
        ok = np.flatnonzero(np.isfinite(d) & (d > 0) & (c >= inp.depth_conf_threshold))
        if len(ok):
            picks.append((i, kf, rows[ok], cols[ok], d[ok], c[ok]))
    total = sum(len(p[2]) for p in picks)
    if not total:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    keep = (np.sort(np.random.default_rng(inp.seed).choice(total, max_points, replace=False))
            if total > max_points else np.arange(total))
    srcs, dsts, ws = [], [], []
    first = 0
    for i, kf, rows, cols, d, c in picks:
        sel = keep[(keep >= first) & (keep < first + len(rows))] - first
        first += len(rows)
        r, q = rows[sel], cols[sel]
        assert kf.depth is not None and kf.conf is not None  # checked in the first pass
        uv = np.stack([q, r], axis=1).astype(np.float64) * kf.depth_stride
        d_map = kf.depth[r, q].astype(np.float64)
        srcs.append(unproject_pixels(uv, d[sel], inp.K[i], invert_T(pred.T_cam_win[i])))
        dsts.append(unproject_pixels(uv, d_map, kf.K, kf.T_world_cam))
        ws.append(np.sqrt(kf.conf[r, q].astype(np.float64) * c[sel]))
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(ws)


def anchor_depth_scale(inp: StitchInput) -> float:
    """Window -> map scale from the anchors' depth ratios: weighted median of log(d_map / d_win).

    Same pixel, same camera: a keyframe's map depth and its depth re-predicted in the window
    differ only by the window scale, whatever the anchors' pose errors in the window. The median
    of the log ratio is robust to depth outliers and, unlike the scale of a least-squares Sim(3)
    (Umeyama), not biased low by the noise of the window points (errors in variables).
    Returns NaN when no anchor pixel is usable.
    """
    return depth_ratio_scale(inp.prediction, inp.anchors, inp.depth_conf_threshold)


def depth_ratio_scale(pred: WindowPrediction, anchors: list[Keyframe], min_conf: float) -> float:
    """anchor_depth_scale of a prediction whose first len(anchors) frames are these keyframes (NaN when
    no anchor pixel of confidence >= min_conf is usable)."""
    logs, ws = [], []
    for i, kf in enumerate(anchors):
        if i not in pred.depth or kf.depth is None or kf.conf is None:
            continue
        st = kf.depth_stride
        d_win = pred.depth[i][::st, ::st].astype(np.float64)
        c_win = pred.depth_conf[i][::st, ::st].astype(np.float64)
        d_map = kf.depth.astype(np.float64)
        ok = np.isfinite(d_map) & (d_map > 0) & np.isfinite(d_win) & (d_win > 0) & (c_win >= min_conf)
        if not np.any(ok):
            continue
        logs.append(np.log(d_map[ok] / d_win[ok]))
        ws.append(np.sqrt(kf.conf[ok].astype(np.float64) * c_win[ok]))
    return _weighted_median_exp(logs, ws)


def rescale_through(first: WindowPrediction, anchors: list[Keyframe], again: WindowPrediction,
                    min_conf: float) -> float:
    """Map units per unit of `again`, a re-prediction of `first`'s new frames alone (first = anchors +
    those frames, again = those frames; each its own arbitrary scale): first's anchor depth ratio
    (depth_ratio_scale) times the weighted median of log(d_first / d_again) over the new frames' pixels.

    Both factors compare one camera's depth at one pixel, so no pose enters: it holds when first's tracks
    did not fit the map (a window that recovers) and when the new frames see nothing the anchors saw (a
    new segment after a view break). NaN when first has no usable anchor pixel or the two share none.
    """
    A = len(anchors)
    s_first = depth_ratio_scale(first, anchors, min_conf)
    if not np.isfinite(s_first) or first.num_frames - A != again.num_frames:
        return float("nan")
    logs, ws = [], []
    for j in range(again.num_frames):
        if A + j not in first.depth or j not in again.depth:
            continue
        d1, d2 = first.depth[A + j].astype(np.float64), again.depth[j].astype(np.float64)
        c1, c2 = first.depth_conf[A + j].astype(np.float64), again.depth_conf[j].astype(np.float64)
        ok = (np.isfinite(d1) & (d1 > 0) & np.isfinite(d2) & (d2 > 0) & (c1 >= min_conf) & (c2 >= min_conf))
        if np.any(ok):
            logs.append(np.log(d1[ok] / d2[ok]))
            ws.append(np.sqrt(c1[ok] * c2[ok]))
    return s_first * _weighted_median_exp(logs, ws)


def _weighted_median_exp(logs: list[np.ndarray], ws: list[np.ndarray]) -> float:
    """exp of the weighted median of the pooled log ratios (NaN when there are none)."""
    if not logs:
        return float("nan")
    x, w = np.concatenate(logs), np.concatenate(ws)
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(np.exp(x[order][np.searchsorted(cw, 0.5 * cw[-1])]))


def with_depth_scale(fit: AlignmentResult, s_depth: float, src: np.ndarray, dst: np.ndarray, w: np.ndarray,
                     cfg: StitchConfig, seed: int) -> tuple[Sim3, np.ndarray]:
    """The window -> world Sim(3) at the anchors' depth-ratio scale s_depth (anchor_depth_scale), and its
    inliers (N,) over the correspondences src -> dst (N,3), weights w (N,).

    Within cfg.max_depth_scale_dev of the robust fit's scale: the fit's rotation and inliers are kept and
    the translation refit (the depth ratio is unbiased; the fit's scale is biased low by the window
    points' noise). Farther off, the fit has locked onto a wrong hypothesis (a turn in place facing a
    pillar 0.35 m away at twice the harsh noise: Sim(3) scale 49 % under the depth ratio, which was within
    0.3 % of the map's, and the map's scale halved from that window on; bench/slam_robustness.py, case
    'spin'): rotation and translation are fitted again, robustly, with the scale held at s_depth. A
    NaN s_depth (no anchor pixel usable) keeps the fit. Raises DegenerateInputError from the refit.
    """
    sim, inl = fit.sim3, fit.inliers
    if not np.isfinite(s_depth):
        return sim, inl
    if abs(s_depth / sim.scale - 1.0) <= cfg.max_depth_scale_dev:
        wi = w * inl
        t = ((dst - s_depth * src @ sim.R.T) * wi[:, None]).sum(0) / max(wi.sum(), 1e-12)
        return Sim3(s_depth, sim.R, t), inl
    rigid = robust_sim3(s_depth * src, dst, w, with_scale=False, seed=seed,
                        ransac_iterations=cfg.ransac_iterations)
    return Sim3(s_depth, rigid.sim3.R, rigid.sim3.t), rigid.inliers


def refresh_queries(inp: StitchInput, scale: float, max_rel_diff: float = 0.15) -> StitchInput:
    """Queries whose map points use the gauge keyframe's depth averaged with this window's re-prediction.

    The gauge (window frame 0, the newest keyframe) has the fewest depth samples in the map; its
    re-prediction in this window (times the window scale) is an independent sample, so averaging
    it in before PnP (as Keyframe.fuse_depth later does for the stored depth) halves the variance
    of the points the new frames are tied to. Where the two disagree by more than max_rel_diff one
    of them is a depth outlier and nothing says which: the query is dropped (its map point NaN), not
    left at the map depth. A wrong depth on a tracked point reprojects almost right over a short
    baseline, so PnP keeps it as an inlier and it tilts the pose (figure-eight, harsh noise, seed 0,
    loop closure off: per-frame rotation error vs the gauge 0.87 -> 0.56 deg RMS, ATE 0.94 -> 0.41 %).
    Pixels a depth camera measured (Keyframe.depth_measured) keep the measurement. Returns a new
    StitchInput (the input is not modified).
    """
    pred = inp.prediction
    if not inp.anchors or 0 not in pred.depth:
        return inp
    kf = inp.anchors[0]
    if kf.depth is None:
        return inp
    uv = inp.queries.uv
    st = kf.depth_stride
    ui, vi = uv[:, 0].astype(np.intp), uv[:, 1].astype(np.intp)
    d_map = kf.depth[vi // st, ui // st].astype(np.float64)
    n = kf.depth_count[vi // st, ui // st] if kf.depth_count is not None else np.ones(len(uv))
    d_win = pred.depth[0][vi, ui].astype(np.float64) * scale
    c_win = pred.depth_conf[0][vi, ui]
    with np.errstate(invalid="ignore", divide="ignore"):
        both = np.isfinite(d_map) & np.isfinite(d_win) & (c_win >= inp.depth_conf_threshold)
        agree = np.abs(d_win / d_map - 1.0) <= max_rel_diff
    if kf.depth_measured is not None:  # a depth camera's measurement beats the re-prediction
        both &= ~kf.depth_measured[vi // st, ui // st]
    ok = both & agree
    d = d_map.copy()
    d[ok] = (n[ok] * d_map[ok] + d_win[ok]) / (n[ok] + 1.0)
    X = inp.queries.X_world.copy()
    X[both & ~agree] = np.nan
    X[ok] = unproject_pixels(uv[ok], d[ok], kf.K, kf.T_world_cam)
    return replace(inp, queries=TrackQueries(uv, X))


def fuse_track_depths(
    inp: StitchInput,
    poses: dict[int, np.ndarray],
    scale: float,
    cfg: StitchConfig,
    max_rel_diff: float = 0.15,
) -> StitchInput:
    """Queries whose map points average the gauge's depth with every other window frame's depth of the
    same point (track_depth_samples: the older anchors' and the new frames').

    A frame j that tracks query i gives a depth at the tracked pixel; with j's pose that is a point in the
    world, and its depth in the gauge camera is one more sample of the query's depth (within max_rel_diff
    of the gauge's, else skipped). The gauge's depth counts twice (map and this window's re-prediction,
    refresh_queries). Why: PnP on noisy 3D points is biased (errors in the variables dilute the
    translation's parallax, and rotation absorbs the rest), by ~0.1 deg per frame at 3 % depth noise when
    the camera moves sideways at close range. An orbit repeats that bias at every keyframe: twin rooms,
    harsh noise, seed 0, loop closure off: 25 deg of yaw drift over 1,000 frames, mean per-frame yaw error
    vs the gauge -0.16 deg; with ~10 samples per point: -0.04 deg, ATE 1.13 -> 0.30 %. Queries a depth
    camera measured keep the measurement. Returns a new StitchInput.
    """
    if not inp.anchors:
        return inp
    gauge = inp.anchors[0]
    T_gw = invert_T(gauge.T_world_cam)
    X0 = inp.queries.X_world
    z0 = apply_T(T_gw, X0)[:, 2]
    own = np.isfinite(z0) & ~measured_queries(inp)
    total, count = np.where(own, 2.0 * z0, 0.0), np.where(own, 2.0, 0.0)
    for q, X in track_depth_samples(inp, poses, scale, cfg, own):
        z = apply_T(T_gw, X)[:, 2]
        agree = np.abs(z / z0[q] - 1.0) <= max_rel_diff
        np.add.at(total, q[agree], z[agree])
        np.add.at(count, q[agree], 1.0)
    X = X0.copy()
    uv0 = inp.queries.uv[own].astype(np.float64)
    X[own] = unproject_pixels(uv0, total[own] / count[own], gauge.K, gauge.T_world_cam)
    return replace(inp, queries=TrackQueries(inp.queries.uv, X))


def track_depth_samples(
    inp: StitchInput, poses: dict[int, np.ndarray], scale: float, cfg: StitchConfig, use: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(query indices (M,), world points (M,3)) per window frame that takes a second look at the gauge's
    tracked points, queries limited to `use` (N,) bool: its predicted depth at the tracked pixel x scale,
    placed by its pose: each older anchor (window index >= 1) at its map pose, each new frame in `poses`
    (its PnP pose).

    The anchors are independent samples the window predicts anyway, posed by the map rather than by a
    first PnP: on the robustness cases (harsh 1x, loop closure on, seeds 0-11, bench/slam_robustness.py)
    adding them lowered the ATE median figure-eight 0.26 -> 0.24 %, kidnapped 0.24 -> 0.21 %, open
    figure-eight 0.36 -> 0.32 % (lower in 8, 10, 10 of the 12 runs). Their stored map depth at the tracked
    pixel was tried too (a little better again, 0.22 / 0.19 / 0.33 %) and left out: interpolated between
    its depth_stride samples it is no longer exact, not even without noise.
    """
    pred = inp.prediction
    posed = {a: inp.anchors[a].T_world_cam for a in range(1, len(inp.anchors))}
    posed.update({j: poses[j] for j in inp.new_indices if j in poses})
    for j, T_world_cam in posed.items():
        if j not in pred.depth:
            continue
        q = track_observations(inp, j, cfg)
        q = q[use[q]]
        uv, d, _, ok = tracked_depth(inp, j, q)
        yield q[ok], unproject_pixels(uv[ok], d[ok] * scale, inp.K[j], T_world_cam)


def track_seen(pred: WindowPrediction, j: int, size: tuple[int, int], cfg: StitchConfig) -> np.ndarray:
    """(N,) bool: the window's queries tracked in frame j (vis and conf above cfg's bounds, inside the
    image of size (H, W))."""
    return (
        (pred.vis[j] > cfg.min_track_vis)
        & (pred.conf[j] > cfg.min_track_conf)
        & in_image(pred.tracks[j].astype(np.float64), size)
    )


def track_observations(inp: StitchInput, j: int, cfg: StitchConfig) -> np.ndarray:
    """Indices of queries observed in window frame j (track_seen, with a map point)."""
    return np.flatnonzero(track_seen(inp.prediction, j, inp.size, cfg) & inp.queries.valid)


def tracked_depth(
    inp: StitchInput, j: int, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Window frame j's (j in prediction.depth) predicted depth at the tracked pixels of queries q:
    pixels (M,2), depth (M,) window units, depth confidence (M,), and (M,) bool where the depth is
    positive and confident (>= depth_conf_threshold)."""
    pred = inp.prediction
    uv = pred.tracks[j][q].astype(np.float64)
    d = sample_bilinear(pred.depth[j], uv)
    c = sample_bilinear(pred.depth_conf[j], uv)
    ok = np.isfinite(d) & (d > 0) & np.isfinite(c) & (c >= inp.depth_conf_threshold)
    return uv, d, c, ok


def unconnected_frame(inp: StitchInput, cfg: StitchConfig) -> int | None:
    """First new window index where the tracks from frame 0 break off, else None.

    A break: frame j sees fewer than min_frame_track_frac of num_queries (at least 1) while the
    frame before it in time saw at least 4x that many. Such a frame shares no view with the frames before
    it (a kidnap, a cut): its pose in the window is VGGT's guess across a gap, so the window is not
    stitched as it is. In ordinary motion the count falls off over several frames instead (fast motion
    may end a window with few tracks, and that is no break). The frame before the first new frame is
    frame 0 (the newest keyframe, where the queries are), not the window index before it: that is the
    oldest anchor, which may see little of frame 0 (8 anchors: a kidnapped window was stitched as 'ok').
    """
    pred = inp.prediction
    valid = inp.queries.valid if inp.queries.valid.any() else np.ones(len(inp.queries.uv), bool)

    def seen(j: int) -> int:
        return int(np.count_nonzero(track_seen(pred, j, inp.size, cfg) & valid))

    bound = max(1.0, cfg.min_frame_track_frac * cfg.num_queries)
    before = 0
    for j in inp.new_indices:
        if j >= 1 and seen(j) < bound and seen(before) >= 4 * bound:
            return j
        before = j
    return None


def track_correspondences(inp: StitchInput, cfg: StitchConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracked map points vs the new frames' predicted depth at the tracked pixels (window frame)."""
    pred = inp.prediction
    srcs, dsts, ws = [], [], []
    for j in inp.new_indices:
        if j not in pred.depth:
            continue
        q = track_observations(inp, j, cfg)
        if len(q) == 0:
            continue
        uv, d, c, ok = tracked_depth(inp, j, q)
        if not np.any(ok):
            continue
        srcs.append(unproject_pixels(uv[ok], d[ok], inp.K[j], invert_T(pred.T_cam_win[j])))
        dsts.append(inp.queries.X_world[q[ok]])
        ws.append(np.sqrt(c[ok]) * pred.vis[j][q[ok]] * pred.conf[j][q[ok]])
    if not srcs:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(srcs), np.concatenate(dsts), np.concatenate(ws)


def _reproj_err(
    X: np.ndarray, uv: np.ndarray, K: np.ndarray, rvec: np.ndarray, tvec: np.ndarray
) -> np.ndarray:
    proj, _ = cv2.projectPoints(X, rvec, tvec, K, None)
    return np.linalg.norm(proj.reshape(-1, 2) - uv, axis=1)


def refine_pose_pnp(
    X_world: np.ndarray,
    uv: np.ndarray,
    K: np.ndarray,
    T_world_cam0: np.ndarray,
    min_px: float,
    max_px: float,
    min_points: int,
    rounds: int = 2,
) -> tuple[np.ndarray | None, int, float]:
    """Guided PnP from an initial pose: LM refinement on the 2D-3D matches with an adaptive inlier bound.

    Inliers start as reprojection error < 2 x max_px under the initial pose (the network's pose in the
    window's Sim(3) can be a few degrees off: at twice the harsh noise a first bound of max_px left
    too few inliers in 30 % of the frames, which then kept that pose); after one Levenberg-Marquardt
    refinement the bound becomes 3 x the robust sigma (1.4826 x median error of the inliers), clipped
    to [min_px, max_px], and the pose is refined once more on those (rounds=1: the first refinement only,
    enough to place depth samples, fuse_track_depths; each round is one solvePnPRefineLM, ~0.2 ms).
    Returns (T_world_cam or None when too few inliers, inliers under the returned pose, bound px).
    """
    if len(X_world) < min_points:
        return None, 0, max_px
    T_cw = invert_T(T_world_cam0)
    rvec, _ = cv2.Rodrigues(T_cw[:3, :3])
    tvec = T_cw[:3, 3].reshape(3, 1).copy()
    X = np.ascontiguousarray(X_world, dtype=np.float64)
    p = np.ascontiguousarray(uv, dtype=np.float64)
    Kd = np.asarray(K, dtype=np.float64)
    bound = max_px
    inl = _reproj_err(X, p, Kd, rvec, tvec) < 2.0 * bound
    for _ in range(rounds):
        if np.count_nonzero(inl) < min_points:
            return None, int(np.count_nonzero(inl)), bound
        rvec, tvec = cv2.solvePnPRefineLM(X[inl], p[inl], Kd, None, rvec, tvec)
        err = _reproj_err(X, p, Kd, rvec, tvec)
        bound = float(np.clip(3.0 * 1.4826 * np.median(err[inl]), min_px, max_px))
        inl = err < bound
    n = int(np.count_nonzero(inl))
    if n < min_points:
        return None, n, bound
    R, _ = cv2.Rodrigues(rvec)
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = tvec.reshape(3)
    return invert_T(T), n, bound


def measured_queries(inp: StitchInput) -> np.ndarray:
    """(N,) bool: the track queries whose map point comes from a depth camera's measurement of the gauge
    keyframe (anchors[0].depth_measured at the query pixel); all False without one."""
    n = len(inp.queries.uv)
    kf = inp.anchors[0] if inp.anchors else None
    if kf is None or kf.depth_measured is None:
        return np.zeros(n, bool)
    st, (h, w) = kf.depth_stride, kf.depth_measured.shape
    r = np.clip((inp.queries.uv[:, 1] // st).astype(np.intp), 0, h - 1)
    c = np.clip((inp.queries.uv[:, 0] // st).astype(np.intp), 0, w - 1)
    return kf.depth_measured[r, c] & inp.queries.valid


def refine_with_measured_depth(
    inp: StitchInput, j: int, q: np.ndarray, T_world_cam: np.ndarray, inlier_px: float, min_points: int
) -> np.ndarray:
    """Frame j's PnP pose refined again with its measured depth (inp.metric_depth[j]) at the tracked pixels.

    q: indices of the queries observed in frame j; T_world_cam its PnP pose; inlier_px the PnP
    reprojection bound (3 robust sigma). Depth residuals compare measurement with measurement: only map
    points a depth camera measured (measured_queries), at PnP inliers, whose depth in camera j agrees with
    frame j's measured depth within 3 sigma. Each point's depth sigma: the robust spread of the relative
    differences, and the depth gradient at the tracked pixel times the pixel noise (the pixel is a noisy
    track: on a slanted floor 1 px is ~2 % of depth, an error shared with the reprojection residual; without
    this term a pure rotation at the default noise lost accuracy). Returns T_world_cam unchanged when frame
    j has no measured depth or fewer than min_points such points.
    """
    D_img = inp.metric_depth.get(j)
    if D_img is None:
        return T_world_cam
    X, uv = inp.queries.X_world[q], inp.prediction.tracks[j][q].astype(np.float64)
    proj, z = project_points(inp.K[j], invert_T(T_world_cam), X)
    use = np.linalg.norm(proj - uv, axis=1) < inlier_px
    D = np.where(measured_queries(inp)[q], sample_nearest(D_img, uv), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = z / D - 1.0
    ok = use & np.isfinite(rel) & (z > 0)
    if np.count_nonzero(ok) < min_points:
        return T_world_cam
    med, sigma_rel = median_and_sigma(rel[ok])
    sigma_px = max(inlier_px / 3.0, 0.3)
    # the tracked pixel is uncertain by sigma_px: so is the depth sampled there, by |grad D| sigma_px
    sigma = np.hypot(sigma_rel * D, _depth_gradient(D_img, uv) * sigma_px)
    D = np.where(ok & (np.abs(z - (1.0 + med) * D) <= 3.0 * sigma), D, np.nan)
    return refine_pose_rgbd(X[use], uv[use], D[use], sigma[use], inp.K[j], T_world_cam, sigma_px)


def _depth_gradient(D_img: np.ndarray, uv: np.ndarray, step: float = 2.0) -> np.ndarray:
    """|grad D| (N,) of a depth image (H, W) at pixels uv (N,2), depth units per pixel: central differences
    `step` px apart (a registered depth camera at half the colour resolution repeats each sample over 2 px);
    NaN where a neighbour is a hole or outside (the depth there is not trusted)."""
    du = (sample_nearest(D_img, uv + [step, 0.0]) - sample_nearest(D_img, uv - [step, 0.0])) / (2 * step)
    dv = (sample_nearest(D_img, uv + [0.0, step]) - sample_nearest(D_img, uv - [0.0, step])) / (2 * step)
    return np.hypot(du, dv)


def _track_depth_scale(
    inp: StitchInput, j: int, q: np.ndarray, T_world_cam: np.ndarray, inlier_px: float
) -> float | None:
    """Scale that makes frame j's predicted depth agree with the tracked map points (median ratio).

    For the track inliers under the refined pose: depth of the map point in camera j over the
    predicted depth at the tracked pixel. Window scale alone carries each window's own depth
    bias into the map; tying every new frame's depth to the points it observes keeps the map's
    scale anchored to the keyframes it was built from.
    """
    pred = inp.prediction
    if j not in pred.depth:
        return None
    X = inp.queries.X_world[q]
    uv = pred.tracks[j][q].astype(np.float64)
    T_cw = invert_T(T_world_cam)
    Xc = X @ T_cw[:3, :3].T + T_cw[:3, 3]
    z = Xc[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        proj = Xc[:, :2] / z[:, None] * np.diag(inp.K[j])[:2] + inp.K[j][:2, 2]
    err = np.linalg.norm(proj - uv, axis=1)
    _, d, _, confident = tracked_depth(inp, j, q)
    ok = (err < inlier_px) & (z > 0) & confident
    if np.count_nonzero(ok) < 10:
        return None
    return float(np.median(z[ok] / d[ok]))


def _dense_depth_scale(
    inp: StitchInput, j: int, T_world_cam: np.ndarray, X: np.ndarray, min_points: int = 50
) -> float | None:
    """Like _track_depth_scale but with every stored depth pixel of the gauge keyframe (anchors[0]).

    The gauge's map points are projected into frame j with its refined pose; the median ratio of
    their depth in camera j to frame j's predicted depth there (nearest pixel, confident pixels,
    points not occluded by more than 10 %) is the scale. ~10x more samples than the tracks, so the
    per-keyframe scale error (which the map inherits as a random walk) shrinks by ~3x.
    X: (M, 3) the gauge's map points (anchors[0].points_world(), computed once per window by the caller).
    """
    pred = inp.prediction
    if j not in pred.depth or len(X) < min_points:
        return None
    uv, z = project_points(inp.K[j], invert_T(T_world_cam), X)
    inside = in_image(uv, inp.size) & (z > 0)
    d = sample_nearest(pred.depth[j], uv[inside])
    c = sample_nearest(pred.depth_conf[j], uv[inside])
    zi = z[inside]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = zi / d
    ok = np.isfinite(ratio) & (d > 0) & (c >= inp.depth_conf_threshold)
    if np.count_nonzero(ok) < min_points:
        return None
    r = ratio[ok]
    med = float(np.median(r))
    keep = np.abs(r / med - 1.0) <= 0.1  # drop occlusions / disocclusions, then re-estimate
    return float(np.median(r[keep])) if np.count_nonzero(keep) >= min_points else med


def relative_residual(
    sim: Sim3, src: np.ndarray, dst: np.ndarray, inliers: np.ndarray, centre: np.ndarray
) -> float:
    """RMS over inliers of |sim(src) - dst| / |dst - centre|: each point's residual relative to its
    own distance from the gauge camera, so a window mixing near (0.2 m) and far (6 m) points is
    judged by the same bound; a residual divided by the scene median would be dominated by the far
    points when the median is small (close range) and reject good windows."""
    r = np.linalg.norm(sim.apply(src) - dst, axis=1)
    dist = np.maximum(np.linalg.norm(dst - centre, axis=1), 1e-9)
    q = (r / dist)[inliers]
    return float(np.sqrt(np.mean(q**2))) if q.size else float("inf")


def _poses_from_sim3(inp: StitchInput, sim: Sim3) -> dict[int, np.ndarray]:
    return {j: sim.transform_pose(invert_T(inp.prediction.T_cam_win[j])) for j in inp.new_indices}


def pnp_pixel_bounds(cfg: StitchConfig, size: tuple[int, int]) -> tuple[float, float]:
    """PnP's adaptive inlier bound limits (min_px, max_px) in pixels for images of size (H, W)."""
    min_px = max(1.0, cfg.pnp_min_px * size[1])
    return min_px, max(2.0 * min_px, cfg.pnp_max_px * size[1])


def near_pose(cfg: StitchConfig, T: np.ndarray, T_ref: np.ndarray, depth: float) -> bool:
    """A PnP pose T (4,4) within the deviation gates of the pose it started from: camera centres within
    max_pnp_deviation_rel x depth (world units), orientations within max_pnp_deviation_deg."""
    dc = np.linalg.norm(T[:3, 3] - T_ref[:3, 3]) / depth
    dr = np.degrees(rotation_angle(T[:3, :3].T @ T_ref[:3, :3]))
    return bool(dc <= cfg.max_pnp_deviation_rel and dr <= cfg.max_pnp_deviation_deg)


def orientation_pinned(
    cfg: StitchConfig, X: np.ndarray, uv: np.ndarray, K: np.ndarray, T: np.ndarray, px: float
) -> bool:
    """PnP's pose T (4,4) from matches X (N,3 world) / uv (N,2 pixels) determines its orientation to within
    cfg.max_pnp_sigma_deg (1 sigma over the inliers within px; always True with the check off at 0)."""
    limit = cfg.max_pnp_sigma_deg
    return limit <= 0 or rotation_sigma_deg(X, uv, K, T, px) <= limit


def repin_gauge(inp: StitchInput, cfg: StitchConfig) -> np.ndarray | None:
    """The gauge keyframe's pose T_world_cam (4,4) by PnP on the other anchors' map points, or None.

    The gauge's track queries followed into anchor a (window index a >= 1) land on a's stored depth: a
    world point through a's pose, seen in the gauge at the query pixel. For a gauge whose pose the network
    set (Keyframe.pinned False) this ties it to its anchors' PnP-pinned poses. None with fewer than
    min_pnp_points matches, a failed PnP, a pose outside refine_poses' gates (max_pnp_deviation_rel x the
    gauge's median depth, max_pnp_deviation_deg) or an orientation PnP leaves more uncertain than
    max_pnp_sigma_deg.
    """
    pred, gauge = inp.prediction, inp.anchors[0]
    Xs, uvs = [], []
    for a in range(1, len(inp.anchors)):
        kf = inp.anchors[a]
        if kf.depth is None or a >= len(pred.tracks):
            continue
        seen = np.flatnonzero(track_seen(pred, a, inp.size, cfg))
        uv_a = pred.tracks[a][seen].astype(np.float64)
        d = sample_bilinear(kf.depth, uv_a / kf.depth_stride).astype(np.float64)
        ok = np.isfinite(d) & (d > 0)
        Xs.append(unproject_pixels(uv_a[ok], d[ok], kf.K, kf.T_world_cam))
        uvs.append(inp.queries.uv[seen[ok]].astype(np.float64))
    if not Xs or sum(len(x) for x in Xs) < cfg.min_pnp_points:
        return None
    X, uv = np.concatenate(Xs), np.concatenate(uvs)
    min_px, max_px = pnp_pixel_bounds(cfg, inp.size)
    T, _, px = refine_pose_pnp(X, uv, inp.K[0], gauge.T_world_cam, min_px, max_px, cfg.min_pnp_points, 2)
    if T is None or not near_pose(cfg, T, gauge.T_world_cam, _scene_depth(inp)):
        return None
    return T if orientation_pinned(cfg, X, uv, inp.K[0], T, px) else None


def anchor_links(inp: StitchInput, cfg: StitchConfig) -> dict[int, AnchorLink]:
    """Window index a >= 1 -> anchor a's pose by PnP on the gauge's map points (inp.queries, after
    refresh_queries and fuse_track_depths) through the gauge's tracks followed into a.

    The reverse of a new frame's PnP: the same kind of measurement, with this window's tracks and depth,
    so each anchor's pose relative to the gauge is measured once more, independently of the window that
    placed it (StitchConfig.anchor_links). Only anchors with >= min_pnp_points tracks whose PnP pose
    stays inside refine_poses' deviation gates (from the anchor's stored pose) and has a finite
    covariance are returned.
    """
    out: dict[int, AnchorLink] = {}
    min_px, max_px = pnp_pixel_bounds(cfg, inp.size)
    depth = _scene_depth(inp)
    for a in range(1, len(inp.anchors)):
        q = track_observations(inp, a, cfg)
        if len(q) < cfg.min_pnp_points:
            continue
        X, uv = inp.queries.X_world[q], inp.prediction.tracks[a][q].astype(np.float64)
        T0 = inp.anchors[a].T_world_cam
        T, n, px = refine_pose_pnp(X, uv, inp.K[a], T0, min_px, max_px, cfg.min_pnp_points, 2)
        if T is None or not near_pose(cfg, T, T0, depth):
            continue
        rot, trans = pose_sigmas(X, uv, inp.K[a], T, px)
        if np.isfinite(rot) and np.isfinite(trans):
            out[a] = AnchorLink(T, rot, trans, n)
    return out


def _scene_depth(inp: StitchInput) -> float:
    return max(float(inp.anchors[0].median_depth), 1e-9) if inp.anchors else 1.0


# --- ours ---------------------------------------------------------------------------------------
class TrackStitcher:
    """Ours: anchor depth + track correspondences -> robust Sim(3); PnP refinement; rejection."""

    name = "tracks"

    def __init__(self, config: StitchConfig | None = None) -> None:
        self.config = config or StitchConfig()

    def stitch(self, inp: StitchInput) -> StitchResult:
        cfg = self.config
        src_a, dst_a, w_a = anchor_depth_correspondences(inp, cfg.max_anchor_points)
        src_t, dst_t, w_t = track_correspondences(inp, cfg)
        if len(src_t) > cfg.max_track_points:
            keep = np.sort(
                np.random.default_rng(inp.seed + 1).choice(len(src_t), cfg.max_track_points, replace=False)
            )
            src_t, dst_t, w_t = src_t[keep], dst_t[keep], w_t[keep]
        # tracks tie new frames to the map; weight them as a group equal to at most the anchors' total
        if len(w_t) and len(w_a):
            w_t = w_t * min(1.0, w_a.sum() / max(w_t.sum(), 1e-12))
        src, dst, w = (
            np.concatenate([src_a, src_t]),
            np.concatenate([dst_a, dst_t]),
            np.concatenate([w_a, w_t]),
        )
        n = int(len(src))
        if n < cfg.min_correspondences:
            return StitchResult(False, f"too_few_correspondences ({n})", num_correspondences=n)
        try:
            fit = robust_sim3(src, dst, w, seed=inp.seed, ransac_iterations=cfg.ransac_iterations)
        except DegenerateInputError as exc:
            return StitchResult(False, f"degenerate_alignment ({exc})", num_correspondences=n)
        depth = _scene_depth(inp)
        try:
            sim, inl = with_depth_scale(fit, anchor_depth_scale(inp), src, dst, w, cfg, inp.seed)
        except DegenerateInputError as exc:
            return StitchResult(False, f"degenerate_alignment ({exc})", num_correspondences=n)
        rel = relative_residual(sim, src, dst, inl, inp.anchors[0].T_world_cam[:3, 3])
        num_inliers = int(np.count_nonzero(inl))
        ratio = num_inliers / n
        base = StitchResult(
            False, "", sim3=sim, residual_rel=rel, num_inliers=num_inliers, num_correspondences=n
        )
        if not rel <= cfg.max_rel_rms:
            return replace(base, reason=f"residual_too_high ({rel:.3g} > {cfg.max_rel_rms})")
        if ratio < cfg.min_inlier_ratio:
            return replace(base, reason=f"too_few_inliers ({ratio:.2f} < {cfg.min_inlier_ratio})")
        gap = unconnected_frame(inp, cfg)
        if gap is not None:
            return replace(base, reason=f"no_track_overlap (frame {gap})")
        poses = _poses_from_sim3(inp, sim)
        if cfg.refresh_queries:
            inp = refresh_queries(inp, sim.scale)
        # with fusion the first pass only places the new frames' depth samples: one PnP round
        ref = self.refine_poses(inp, poses, sim.scale, depth, rounds=1 if cfg.fuse_track_depth else 2)
        if cfg.fuse_track_depth:  # the new frames' depth of the tracked points, then PnP once more
            fused_inp = fuse_track_depths(inp, ref.poses, sim.scale, cfg)
            fused = self.refine_poses(fused_inp, poses, sim.scale, depth)
            # per-frame depth scales stay measured against the gauge's own depth: the fused points carry
            # each frame's own depth already
            ref = replace(fused, depth_scale=ref.depth_scale)
            inp = fused_inp
        if ref.observations < cfg.min_pnp_points:
            # no new frame sees enough of the map's tracks to check its pose: their poses would be the
            # network's guess across whatever separates them from the map (2 s of dropped frames, 2x noise:
            # 9, 7, 2, 1, 0 ... tracks, stitched as 'ok' with every pose off). A view break, as above.
            return replace(base, reason=f"no_track_overlap (no new frame sees {cfg.min_pnp_points} tracks)")
        track_ratio = ref.inlier_ratio
        if track_ratio < cfg.min_track_inlier_ratio:
            reason = f"tracks_disagree ({track_ratio:.2f} < {cfg.min_track_inlier_ratio})"
            return replace(base, reason=reason, track_inlier_ratio=track_ratio)
        return replace(
            base,
            accepted=True,
            reason="ok",
            T_world_cam=ref.poses,
            track_inlier_ratio=track_ratio,
            depth_scale=ref.depth_scale,
            pinned=ref.pinned,
            anchor_links=anchor_links(inp, cfg) if cfg.anchor_links else {},
        )

    def refine_poses(
        self, inp: StitchInput, poses: dict[int, np.ndarray], scale: float, depth: float, rounds: int = 2
    ) -> PoseRefinement:
        """PnP-refine each new frame's pose on its track/map-point matches (from the given poses).

        A refined pose is kept when it stays within max_pnp_deviation_rel x depth and
        max_pnp_deviation_deg of the starting pose and its matches determine its orientation to within
        max_pnp_sigma_deg (1 sigma). Per-frame depth scales (the frame's own ratio to the
        gauge's map points) only when config.frame_depth_scale is "dense" or "tracks"; with "window" (the
        default) depth_scale stays empty and every new frame takes the window scale.
        """
        cfg = self.config
        poses = dict(poses)
        min_px, max_px = pnp_pixel_bounds(cfg, inp.size)
        used, inliers = 0, 0
        pinned: set[int] = set()
        depth_scales: dict[int, float] = {}
        pred = inp.prediction
        gauge_X: np.ndarray | None = None  # the gauge's map points, once per window
        for j in inp.new_indices:
            q = track_observations(inp, j, cfg)
            if len(q) < cfg.min_pnp_points:
                continue
            X, uv = inp.queries.X_world[q], pred.tracks[j][q].astype(np.float64)
            used += len(q)
            T_pnp, n_in, px = refine_pose_pnp(
                X, uv, inp.K[j], poses[j], min_px, max_px, cfg.min_pnp_points, rounds
            )
            if T_pnp is not None:
                T_pnp = refine_with_measured_depth(inp, j, q, T_pnp, px, cfg.min_pnp_points)
                if near_pose(cfg, T_pnp, poses[j], depth) and self._well_determined(inp, j, X, uv, T_pnp, px):
                    poses[j] = T_pnp
                    pinned.add(j)
                    if cfg.frame_depth_scale != "window":  # "window": the window scale holds for all
                        if cfg.frame_depth_scale == "dense" and inp.anchors and gauge_X is None:
                            gauge_X = inp.anchors[0].points_world()[1]
                        sj = self._frame_scale(inp, j, q, T_pnp, px, gauge_X)
                        if sj is not None and abs(sj / scale - 1.0) <= cfg.max_depth_scale_dev:
                            depth_scales[j] = sj
            else:
                T_cw = invert_T(poses[j])
                rvec, _ = cv2.Rodrigues(T_cw[:3, :3])
                n_in = int(
                    np.count_nonzero(_reproj_err(X, uv, inp.K[j], rvec, T_cw[:3, 3].reshape(3, 1)) < px)
                )
            inliers += n_in
        return PoseRefinement(poses, used, inliers, depth_scales, frozenset(pinned))

    def _well_determined(
        self, inp: StitchInput, j: int, X: np.ndarray, uv: np.ndarray, T_pnp: np.ndarray, px: float
    ) -> bool:
        """Frame j's PnP pose determines its orientation to within config.max_pnp_sigma_deg (1 sigma;
        always True with the check off or a measured depth for the frame)."""
        return j in inp.metric_depth or orientation_pinned(self.config, X, uv, inp.K[j], T_pnp, px)

    def _frame_scale(
        self,
        inp: StitchInput,
        j: int,
        q: np.ndarray,
        T_pnp: np.ndarray,
        px: float,
        gauge_X: np.ndarray | None,
    ) -> float | None:
        """Frame j's own depth scale against the gauge keyframe ("dense": all its map points, else or as
        fallback the tracked ones); None when too few samples."""
        sj = None
        if self.config.frame_depth_scale == "dense" and gauge_X is not None:
            sj = _dense_depth_scale(inp, j, T_pnp, gauge_X)
        return sj if sj is not None else _track_depth_scale(inp, j, q, T_pnp, px)


# --- baselines ------------------------------------------------------------------------------------
class CameraCentreStitcher:
    """Baseline (vggt-slam-ros2): Umeyama Sim(3) of the anchor camera centres, window -> map.

    With fewer than 3 anchors or collinear centres Umeyama is undefined; so the baseline does
    not stall it then takes the rotation from the anchors' orientations (chordal mean), the
    scale from the centres' spread (2 anchors) or anchor 0's median depth ratio (1 anchor),
    and the translation from the centroids.
    """

    name = "camera_centres"

    def __init__(self, config: StitchConfig | None = None) -> None:
        self.config = config or StitchConfig()

    def stitch(self, inp: StitchInput) -> StitchResult:
        pred = inp.prediction
        A = len(inp.anchors)
        T_win_cam = invert_T(pred.T_cam_win[:A])
        c_win = T_win_cam[:, :3, 3]
        c_map = np.stack([k.T_world_cam[:3, 3] for k in inp.anchors])
        sim = None
        if A >= 3:
            try:
                sim = umeyama_sim3(c_win, c_map)
            except DegenerateInputError:
                sim = None
        if sim is None:
            R = nearest_rotation(np.sum(
                [k.T_world_cam[:3, :3] @ pred.T_cam_win[i][:3, :3] for i, k in enumerate(inp.anchors)], axis=0
            ))
            s = float("nan")
            if A >= 2:
                sw = np.linalg.norm(c_win - c_win.mean(0), axis=1).sum()
                sm = np.linalg.norm(c_map - c_map.mean(0), axis=1).sum()
                if sw > 1e-9 and sm > 1e-9:
                    s = sm / sw
            if not np.isfinite(s):
                src, dst, _ = anchor_depth_correspondences(inp, self.config.max_anchor_points)
                if len(src) < 3:
                    return StitchResult(False, "degenerate_alignment (no anchor depth)")
                cam = inp.anchors[0].T_world_cam
                s = float(
                    np.median(np.linalg.norm(dst - cam[:3, 3], axis=1))
                    / np.median(np.linalg.norm(src - T_win_cam[0, :3, 3], axis=1))
                )
            t = (c_map - s * c_win @ R.T).mean(0)
            sim = Sim3(s, R, t)
        res = np.linalg.norm(sim.apply(c_win) - c_map, axis=1)
        rel = float(np.sqrt(np.mean(res**2))) / _scene_depth(inp)
        return StitchResult(
            True,
            "ok",
            sim3=sim,
            T_world_cam=_poses_from_sim3(inp, sim),
            residual_rel=rel,
            num_inliers=A,
            num_correspondences=A,
        )


class PointMapStitcher:
    """Baseline (VGGT-Long): confidence-weighted point-map Sim(3) by Huber IRLS over the anchors' depth."""

    name = "point_map"

    def __init__(self, config: StitchConfig | None = None, iterations: int = 10) -> None:
        self.config = config or StitchConfig()
        self.iterations = iterations

    def stitch(self, inp: StitchInput) -> StitchResult:
        src, dst, w = anchor_depth_correspondences(inp, self.config.max_anchor_points)
        n = int(len(src))
        if n < 3:
            return StitchResult(False, f"too_few_correspondences ({n})", num_correspondences=n)
        try:
            sim = umeyama_sim3(src, dst, w)
            for _ in range(self.iterations):
                r = np.linalg.norm(sim.apply(src) - dst, axis=1)
                delta = max(1.345 * 1.4826 * float(np.median(r)), 1e-12)
                sim = umeyama_sim3(src, dst, w * np.minimum(1.0, delta / np.maximum(r, 1e-12)))
        except DegenerateInputError as exc:
            return StitchResult(False, f"degenerate_alignment ({exc})", num_correspondences=n)
        r = np.linalg.norm(sim.apply(src) - dst, axis=1)
        inl = r <= 3.0 * 1.4826 * float(np.median(r))
        rel = float(np.sqrt(np.mean(r[inl] ** 2))) / _scene_depth(inp)
        return StitchResult(
            True,
            "ok",
            sim3=sim,
            T_world_cam=_poses_from_sim3(inp, sim),
            residual_rel=rel,
            num_inliers=int(inl.sum()),
            num_correspondences=n,
        )


def make_stitcher(name: str, config: StitchConfig | None = None) -> Stitcher:
    """'tracks' (ours), 'camera_centres' or 'point_map'."""
    table: dict[str, type] = {
        "tracks": TrackStitcher,
        "camera_centres": CameraCentreStitcher,
        "point_map": PointMapStitcher,
    }
    if name not in table:
        raise ValueError(f"unknown stitcher {name!r}; choose from {sorted(table)}")
    return table[name](config)
