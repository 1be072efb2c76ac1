"""SimulatedPredictor: the test double for VGGT, built from ground truth plus documented noise.

For a window of S frames it returns what VGGT returns (types.WindowPrediction):

Gauge and scale (VGGT training normalisation, docs/architecture.md#reference-conventions / vggt#37):
  * the window frame is frame 0's optical camera: T_cam_win[0] = identity exactly;
  * window units = metres * scale, with scale chosen so that the mean distance of the valid
    ground-truth depth points of ALL the window's frames from the first camera is 1.

Noise model (SimNoise; every number a dataclass field, defaults no kinder than VGGT's errors):
  * pose, frames s >= 1 (frame 0 has none): the camera's orientation in the window frame is
    perturbed by a rotation vector ~ N(0, (rot_deg/sqrt 3)^2 I) (so the RMS angle is rot_deg),
    its centre by ~ N(0, (trans_frac * D / sqrt 3)^2 I) with D the mean ground-truth depth of
    frame 0 in window units (RMS displacement = trans_frac * D);
  * intrinsics: fx and fy of every frame scaled by one factor 1 + N(0, focal_frac^2);
    principal point at (W/2, H/2), as VGGT predicts it;
  * depth (only frames in depth_for), window units: gt * (1 + N(0, depth_frac^2)) per pixel
    * (1 + b(u, v)) with b a smooth field (bicubic upsampling of a 3x4 grid ~ U(-1, 1)) scaled
    to max |b| = depth_bias_frac, drawn per frame; with depth_bias_shared = w > 0, b = (1 - w) b_frame
    + w b_window, b_window one such field for every frame of the window (a network's errors within one
    forward are correlated; w = 0, the default, makes them independent); then a fraction
    depth_outlier_frac of pixels is multiplied by a factor log-uniform in [1/3, 3] with
    |log| >= log 1.25 (gross outliers);
  * depth_conf (float32 >= 1, VGGT's 1 + exp): 1 + conf_max * exp(-d / (conf_far * D)) *
    (edge_conf_factor at depth discontinuities (|grad d| / d > 0.05, dilated 1 px)) *
    (0.5 on half of the outlier pixels, drawn at random) * (1 + 0.1 N(0,1)) clipped >= 0;
  * tracks: frame 0 returns the queries exactly (VGGT forces it); frame s >= 1 is the exact
    reprojection (GT depth of frame 0 at the query, GT poses, GT K) + N(0, track_px^2) per
    axis; a fraction track_outlier_frac is replaced by a point displaced 15..80 px in a random
    direction;
  * vis: the reprojection is visible when it lands inside the image, in front of the camera,
    and not more than occlusion_tol (relative) behind frame s's GT depth there; visible ->
    U(0.7, 1), not visible -> U(0, 0.3);
  * conf (track): inliers U(0.5, 1) * (1 if visible else 0.3), outliers U(0.05, 0.7).

Window scale: additionally multiplied by exp(N(0, scale_jitter^2)) per window (default 0: none),
an arbitrary per-window scale on top of the normalisation.

Covered camera (blank images): a frame whose image is near-constant (grey-level std over the
image < blank_std, e.g. a black frame of a covered lens) carries no information, so nothing of
its ground truth is used, as VGGT could not either: its pose in the window is a random rigid
motion (rotation ~ 30 deg RMS, centre ~ 0.5 mean depth RMS), its depth a smooth random field
around 1 window unit with depth_conf in [1, 1.3) (below any useful threshold), and its tracks
uniform random pixels with vis < 0.15 and conf < 0.2. When frame 0 (the gauge) is blank, every
other frame's pose is expressed in a random gauge and every track is such garbage. Blank frames
are left out of the scale normalisation. (A frozen image that repeats an earlier view is not
blank: give the predictor SyntheticSequence.image_truth, the truth of the view it shows.)

Randomness: one numpy SeedSequence from (seed, every stamp of the window), so a prediction is
reproducible, yet the same frame in another window (a different set of stamps) gets
independent noise, like a re-run of the network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vggt_ros.geometry.depth import in_image, project_points, sample_nearest, unproject_pixels
from vggt_ros.geometry.image import is_blank
from vggt_ros.geometry.se3 import invert_T, so3_exp
from vggt_ros.sim.sequence import GroundTruth
from vggt_ros.types import Frame, WindowPrediction


@dataclass(frozen=True)
class SimNoise:
    """Noise of the simulated network (see the module docstring for the exact model)."""

    rot_deg: float = 0.5            #: RMS per-frame rotation error (deg), frames s >= 1
    trans_frac: float = 0.01        #: RMS per-frame centre error / mean depth of frame 0
    focal_frac: float = 0.02        #: std of the per-frame focal scale error
    depth_frac: float = 0.02        #: std of the per-pixel multiplicative depth noise
    depth_bias_frac: float = 0.03   #: max |smooth per-frame multiplicative depth bias|
    depth_outlier_frac: float = 0.02  #: fraction of depth pixels that are gross outliers
    track_px: float = 1.0           #: std of track noise per axis (px)
    track_outlier_frac: float = 0.05  #: fraction of tracks (frames s >= 1) that are outliers
    occlusion_tol: float = 0.03     #: relative depth margin for the visibility test
    conf_max: float = 20.0          #: depth_conf - 1 at zero depth on smooth surfaces
    conf_far: float = 2.0           #: depth_conf decay length, in units of frame 0's mean depth
    edge_conf_factor: float = 0.05  #: depth_conf factor at depth discontinuities
    scale_jitter: float = 0.0       #: std of log of a random per-window scale factor
    blank_std: float = 4.0          #: grey-level std below which an image is blank (garbage output)
    depth_bias_shared: float = 0.0  #: weight in [0, 1] of a depth bias field shared by the window's frames

    @staticmethod
    def zero() -> SimNoise:
        """No noise at all: outputs are the ground truth in window units."""
        return SimNoise(rot_deg=0.0, trans_frac=0.0, focal_frac=0.0, depth_frac=0.0, depth_bias_frac=0.0,
                        depth_outlier_frac=0.0, track_px=0.0, track_outlier_frac=0.0)

    @staticmethod
    def harsh() -> SimNoise:
        """VGGT-like errors seen on real sequences, harsher than the defaults (issue 9's world):
        rotation 1.2 deg RMS, centre 2.6 % of depth RMS, stronger smooth depth bias and outliers,
        1 px tracks with 8 % outliers, an arbitrary per-window scale (20 % log std)."""
        return SimNoise(rot_deg=1.2, trans_frac=0.026, focal_frac=0.03, depth_frac=0.03, depth_bias_frac=0.06,
                        depth_outlier_frac=0.03, track_px=1.0, track_outlier_frac=0.08, scale_jitter=0.2)


def _blank_garbage(rng: np.random.Generator, blank: list[bool], T_win_cam: np.ndarray,
                   depth: dict[int, np.ndarray], depth_conf: dict[int, np.ndarray],
                   tracks: np.ndarray, vis: np.ndarray, conf: np.ndarray, hw: tuple[int, int]) -> None:
    """Overwrite, in place, what the window says about blank frames with garbage (module doc)."""
    S, N = tracks.shape[:2]

    def random_T() -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = so3_exp(rng.normal(0.0, np.deg2rad(30.0) / np.sqrt(3.0), 3))
        T[:3, 3] = rng.normal(0.0, 0.5 / np.sqrt(3.0), 3)
        return T

    if blank[0]:
        G = random_T()  # the gauge camera is unknown: every pose in a random frame
        T_win_cam[1:] = G @ T_win_cam[1:]
    for s in range(S):
        if blank[s] and s > 0:
            T_win_cam[s] = random_T()
        if blank[s] and s in depth:
            depth[s] = (1.0 + smooth_field(rng, hw, 0.5)).astype(np.float32)
            depth_conf[s] = (1.0 + rng.uniform(0.0, 0.3, hw)).astype(np.float32)
        if s > 0 and (blank[s] or blank[0]) and N:
            tracks[s] = rng.uniform(0.0, 1.0, (N, 2)) * [hw[1] - 1, hw[0] - 1]
            vis[s] = rng.uniform(0.0, 0.15, N)
            conf[s] = rng.uniform(0.0, 0.2, N)


def window_scale(gts: Sequence[GroundTruth]) -> float:
    """1 / (mean distance of all the frames' valid GT depth points from the first camera), 1/metres.

    Uses every pixel: with p = d * ray (ray z = 1) in camera s and (R, t) = T_c0_cs,
    |R p + t|^2 = d^2 |ray|^2 + 2 d ray . (R^T t) + |t|^2, so no point cloud is built.
    """
    T_c0_w = invert_T(gts[0].T_world_cam)
    total, count = 0.0, 0
    for gt in gts:
        d = gt.depth.astype(np.float64)
        ok = np.isfinite(d) & (d > 0)
        H, W = d.shape
        K = np.asarray(gt.K, dtype=np.float64)
        rx = ((np.arange(W) - K[0, 2]) / K[0, 0])[None, :]
        ry = ((np.arange(H) - K[1, 2]) / K[1, 1])[:, None]
        T = T_c0_w @ gt.T_world_cam
        b = T[:3, :3].T @ T[:3, 3]
        sq = d * d * (rx * rx + ry * ry + 1.0) + 2.0 * d * (b[0] * rx + b[1] * ry + b[2]) + float(b @ b)
        total += float(np.sqrt(np.maximum(sq[ok], 0.0)).sum())
        count += int(ok.sum())
    if count == 0 or total <= 0:
        raise ValueError("window has no valid ground-truth depth")
    return count / total


def smooth_field(rng: np.random.Generator, hw: tuple[int, int], amp: float) -> np.ndarray:
    """Smooth field over the image with max |value| = amp (low-frequency bias)."""
    g = rng.uniform(-1.0, 1.0, (3, 4)).astype(np.float32)
    f = cv2.resize(g, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    m = float(np.abs(f).max())
    return f * (amp / m) if m > 0 else f


def depth_edges(depth: np.ndarray, rel: float = 0.05) -> np.ndarray:
    """Bool (H,W): depth discontinuities, |grad d| / d > rel, dilated by one pixel."""
    d = depth.astype(np.float32)
    gx = np.abs(np.diff(d, axis=1, append=d[:, -1:]))
    gy = np.abs(np.diff(d, axis=0, append=d[-1:, :]))
    with np.errstate(invalid="ignore", divide="ignore"):
        e = (np.maximum(gx, gy) / d) > rel
    return cv2.dilate(e.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def _simulated_depth(gts: Sequence[GroundTruth], depth_for: Sequence[int],
                     rngs: Sequence[np.random.Generator], nz: SimNoise, scale: float, mean_depth0: float,
                     shared_bias: np.ndarray | None = None
                     ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Depth (window units) and its confidence for the frames in depth_for (module doc's model);
    rngs[s] draws frame s's noise; shared_bias (H,W): the window's bias field (depth_bias_shared > 0).
    Returns ({s: (H,W) float32}, {s: (H,W) float32 >= 1})."""
    depth: dict[int, np.ndarray] = {}
    depth_conf: dict[int, np.ndarray] = {}
    for s in depth_for:
        rng = rngs[s]
        g = gts[s].depth.astype(np.float64) * scale
        hw = g.shape
        bias = smooth_field(rng, hw, nz.depth_bias_frac)
        if shared_bias is not None:
            bias = (1.0 - nz.depth_bias_shared) * bias + nz.depth_bias_shared * shared_bias
        d = g * (1.0 + rng.normal(0.0, nz.depth_frac, hw)) * (1.0 + bias)
        out = rng.random(hw) < nz.depth_outlier_frac
        lf = rng.uniform(np.log(1.25), np.log(3.0), hw) * rng.choice([-1.0, 1.0], hw)
        d = np.where(out, g * np.exp(lf), d)
        c = nz.conf_max * np.exp(-g / (nz.conf_far * max(mean_depth0, 1e-9)))
        c = np.where(depth_edges(g), c * nz.edge_conf_factor, c)
        c = np.where(out & (rng.random(hw) < 0.5), 0.5 * c, c)
        c = np.maximum(c * (1.0 + 0.1 * rng.normal(0.0, 1.0, hw)), 0.0)
        depth[s] = np.maximum(d, 1e-6).astype(np.float32)
        depth_conf[s] = (1.0 + c).astype(np.float32)
    return depth, depth_conf


def _simulated_tracks(gts: Sequence[GroundTruth], q: np.ndarray, rng: np.random.Generator, nz: SimNoise
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracks of the queries q (N,2) on frame 0 through every frame (module doc's model).
    Returns tracks (S,N,2), vis (S,N), conf (S,N), float64; frame 0 exactly the queries."""
    S, N = len(gts), len(q)
    hw = gts[0].depth.shape
    H, W = hw
    tracks = np.zeros((S, N, 2))
    vis = np.zeros((S, N))
    conf = np.zeros((S, N))
    if N:
        vis[0] = 1.0
        conf[0] = 1.0
        qd = sample_nearest(gts[0].depth, q)
        good_q = np.isfinite(qd) & (qd > 0)
        pts_w = unproject_pixels(q, np.where(good_q, qd, 1.0), gts[0].K, gts[0].T_world_cam)
        for s in range(1, S):
            uv, z = project_points(gts[s].K, invert_T(gts[s].T_world_cam), pts_w)
            front = good_q & (z > 1e-6)
            uv = np.where(front[:, None], uv, rng.uniform(0, 1, (N, 2)) * [W - 1, H - 1])
            ds = sample_nearest(gts[s].depth, uv)
            with np.errstate(invalid="ignore"):
                visible = front & in_image(uv, hw) & (z <= ds * (1.0 + nz.occlusion_tol))
            uv = uv + rng.normal(0.0, nz.track_px, (N, 2))
            outl = rng.random(N) < nz.track_outlier_frac
            ang = rng.uniform(0, 2 * np.pi, N)
            rad = rng.uniform(15.0, 80.0, N)
            uv = np.where(outl[:, None], uv + rad[:, None] * np.stack([np.cos(ang), np.sin(ang)], -1), uv)
            tracks[s] = uv
            vis[s] = np.where(visible, rng.uniform(0.7, 1.0, N), rng.uniform(0.0, 0.3, N))
            conf[s] = np.where(outl, rng.uniform(0.05, 0.7, N),
                               rng.uniform(0.5, 1.0, N) * np.where(visible, 1.0, 0.3))
    tracks[0] = q  # exactly the queries
    return tracks, vis, conf


class SimulatedPredictor:
    """Predictor from ground truth (Predictor protocol): see the module docstring for the model.

    ground_truth: stamp_ns -> GroundTruth (e.g. SyntheticSequence.ground_truth); frames must have
    the ground truth's resolution. seed: base seed of the noise.
    """

    name = "simulated"

    def __init__(self, ground_truth: Callable[[int], GroundTruth], noise: SimNoise | None = None,
                 seed: int = 0) -> None:
        self.ground_truth = ground_truth
        self.noise = noise if noise is not None else SimNoise()
        self.seed = int(seed)

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray,
                depth_for: Sequence[int]) -> WindowPrediction:
        t_start = time.perf_counter()
        S = len(frames)
        if S == 0:
            raise ValueError("empty window")
        gts = [self.ground_truth(int(f.stamp_ns)) for f in frames]
        hw = gts[0].depth.shape
        for f, gt in zip(frames, gts):
            if f.size != gt.depth.shape:
                raise ValueError(f"frame {f.stamp_ns} is {f.size}, ground truth is {gt.depth.shape}")
        q = np.asarray(query_points, dtype=np.float64).reshape(-1, 2)
        depth_for = sorted({int(i) for i in depth_for})
        if any(not 0 <= i < S for i in depth_for):
            raise IndexError(f"depth_for {depth_for} outside window of {S}")
        nz = self.noise
        ss = np.random.SeedSequence([self.seed, *[int(f.stamp_ns) % (1 << 63) for f in frames]])
        r_pose, r_focal, r_track, *r_depth, r_extra = [np.random.default_rng(c) for c in ss.spawn(4 + S)]
        blank = [is_blank(f.rgb, nz.blank_std) for f in frames]

        scale = window_scale([g for g, b in zip(gts, blank) if not b] or gts)
        if nz.scale_jitter > 0:
            scale *= float(np.exp(r_extra.normal(0.0, nz.scale_jitter)))
        d0 = gts[0].depth.astype(np.float64)
        mean_depth0 = 1.0 if blank[0] else float(np.nanmean(np.where(d0 > 0, d0, np.nan))) * scale

        # --- poses: GT relative to frame 0, in window units, then noise for s >= 1 ---
        T_c0_w = invert_T(gts[0].T_world_cam)
        T_win_cam = np.stack([T_c0_w @ gt.T_world_cam for gt in gts])
        T_win_cam[:, :3, 3] *= scale
        T_win_cam[0] = np.eye(4)
        rot_sigma = np.deg2rad(nz.rot_deg) / np.sqrt(3.0)
        trans_sigma = nz.trans_frac * mean_depth0 / np.sqrt(3.0)
        dR = so3_exp(r_pose.normal(0.0, 1.0, (S, 3)) * rot_sigma)
        dt = r_pose.normal(0.0, 1.0, (S, 3)) * trans_sigma
        T_win_cam[1:, :3, :3] = T_win_cam[1:, :3, :3] @ dR[1:]
        T_win_cam[1:, :3, 3] += dt[1:]
        T_cam_win = invert_T(T_win_cam)
        T_cam_win[0] = np.eye(4)

        # --- intrinsics ---
        H, W = hw
        K = np.zeros((S, 3, 3))
        fs = 1.0 + r_focal.normal(0.0, nz.focal_frac, S)
        for s, gt in enumerate(gts):
            K[s] = [[gt.K[0, 0] * fs[s], 0.0, W / 2.0], [0.0, gt.K[1, 1] * fs[s], H / 2.0], [0.0, 0.0, 1.0]]

        shared = (smooth_field(np.random.default_rng(ss.spawn(1)[0]), hw, nz.depth_bias_frac)
                  if nz.depth_bias_shared > 0 else None)
        depth, depth_conf = _simulated_depth(gts, depth_for, r_depth, nz, scale, mean_depth0, shared)
        tracks, vis, conf = _simulated_tracks(gts, q, r_track, nz)
        if any(blank):
            _blank_garbage(r_extra, blank, T_win_cam, depth, depth_conf, tracks, vis, conf, hw)
            T_cam_win = invert_T(T_win_cam)
            T_cam_win[0] = np.eye(4)
        return WindowPrediction(
            T_cam_win=T_cam_win, K=K, depth=depth, depth_conf=depth_conf,
            tracks=tracks.astype(np.float32), vis=vis.astype(np.float32), conf=conf.astype(np.float32),
            timings={"predict_s": time.perf_counter() - t_start, "scale_m_to_win": scale},
        )
