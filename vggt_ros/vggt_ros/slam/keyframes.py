"""Keyframes: which frames enter the map, and what each keeps (bounded resolution and count).

A keyframe keeps its pose in the pipeline's world (= first keyframe's OPTICAL frame), its
camera-resolution intrinsics, and at bounded resolution its image, depth and confidence. Only
the newest `max_active` keyframes keep image/depth/confidence (they are the anchor
candidates); older keyframes keep pose, intrinsics and (in the GlobalMap) their points, so the
keyframe store does not grow with the sequence beyond a few hundred bytes per keyframe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from vggt_ros.geometry.alignment import median_and_sigma
from vggt_ros.geometry.depth import in_image, pixel_grid, project_points, unproject_pixels
from vggt_ros.geometry.se3 import Sim3, apply_T, invert_T
from vggt_ros.slam.config import KeyframeConfig
from vggt_ros.types import Frame


@functools.lru_cache(maxsize=8)
def _strided_pixel_grid(h: int, w: int, stride: int) -> np.ndarray:
    """(h, w, 2) float64 camera pixels (u, v) = (col, row) x stride; read-only (one per keyframe shape)."""
    grid = pixel_grid((h, w)) * stride
    grid.flags.writeable = False
    return grid


@dataclass
class Keyframe:
    """One keyframe.

    T_world_cam: (4,4) optical camera -> world (first keyframe's optical frame), map units.
    K: (3,3) intrinsics at the camera resolution `size` = (H, W).
    depth / conf: (ceil(H/s), ceil(W/s)) float32 at stride s = depth_stride: pixel (r, c) is camera
        pixel (u, v) = (c*s, r*s); depth in map units along optical z, NaN where invalid.
    image: (ceil(H/si), ceil(W/si), 3) uint8 at stride si = image_stride.
    depth / conf / image are None once the keyframe is no longer active.
    depth_measured: (like depth) bool, True where depth is a metric depth camera's measurement
        (set_measured_depth): fuse_depth and stitching.refresh_queries leave those pixels alone.
    pinned: True when PnP pinned the pose to the map's points in the window that made the keyframe,
        False when it kept the window's Sim(3)-aligned network pose (too few tracks, or a gate of
        stitching.TrackStitcher.refine_poses), None when unknown (a segment's first window, a baseline
        stitcher, a loaded map; not saved with the map). A gauge with pinned False is re-pinned first
        (StitchConfig.repin_gauge); bench/keyframe_chain.py splits the keyframe chain by it.
    """

    keyframe_id: int
    frame_index: int
    stamp_ns: int
    frame_id: str
    window_id: int
    T_world_cam: np.ndarray
    K: np.ndarray
    size: tuple[int, int]
    K_known: bool
    depth_stride: int
    image_stride: int
    depth: np.ndarray | None
    conf: np.ndarray | None
    image: np.ndarray | None
    median_depth: float
    scale: float = 1.0
    depth_count: np.ndarray | None = None
    segment_id: int = 0
    descriptor: np.ndarray | None = None
    archived: bool = False
    image_jpeg: bytes | None = None
    depth_measured: np.ndarray | None = None
    pinned: bool | None = None

    def apply_correction(self, C: Sim3) -> None:
        """Move the keyframe by a world-frame Sim(3) correction (pose-graph result): pose, depth in
        world units and median depth follow (its points keep their pixels)."""
        self.T_world_cam = C.transform_pose(self.T_world_cam)
        self.median_depth *= C.scale
        if self.depth is not None:
            self.depth = (self.depth * np.float32(C.scale)).astype(np.float32)

    def set_measured_depth(
        self, depth_m: np.ndarray, outlier_sigmas: float = 3.0, min_pixels: int = 50
    ) -> int:
        """Take a registered depth camera's measurement where it agrees with the stored depth.

        depth_m: (H, W) at camera resolution, map units (metres once the map is metric), NaN invalid.
        A stored pixel takes the measurement when both are valid and their log ratio lies within
        outlier_sigmas robust sigmas (1.4826 MAD) of the median log ratio (the sensor's outliers and
        the prediction's stay out); such pixels are marked in depth_measured. A depth camera's ~1 %
        noise beats the network's depth (several % plus a smooth bias), and the map points anchor every
        later pose (bench/metric_scale.py). Pixels the sensor misses keep the prediction. Returns the
        number of pixels taken (0 when fewer than min_pixels agree: nothing changes then)."""
        if self.depth is None:
            return 0
        s = self.depth_stride
        m = np.asarray(depth_m, dtype=np.float64)[::s, ::s]
        cur = self.depth.astype(np.float64)
        if m.shape != cur.shape:
            return 0
        with np.errstate(invalid="ignore", divide="ignore"):
            lr = np.log(m / cur)
        ok = np.isfinite(lr)
        if np.count_nonzero(ok) < min_pixels:
            return 0
        med, sigma = median_and_sigma(lr[ok])
        take = ok & (np.abs(lr - med) <= outlier_sigmas * sigma)
        if np.count_nonzero(take) < min_pixels:
            return 0
        self.depth = np.where(take, m, cur).astype(np.float32)
        self.depth_measured = take if self.depth_measured is None else (self.depth_measured | take)
        valid = self.depth[np.isfinite(self.depth) & (self.depth > 0)]
        self.median_depth = float(np.median(valid))
        return int(np.count_nonzero(take))

    def fuse_depth(
        self, depth: np.ndarray, conf: np.ndarray, max_rel_diff: float = 0.15, min_conf: float | None = None
    ) -> int:
        """Fold a re-prediction of this keyframe's depth into its stored depth (per-pixel running mean).

        depth, conf: (H, W) at camera resolution, map units, NaN invalid (already aligned to the map);
        min_conf: pixels of lower confidence count as invalid (tested on the stored pixels only: a
        full-resolution mask cost ~1 ms per anchor).
        VGGT re-run on another window gives the same image a new, partly independent error, so
        averaging the anchors' depth over the windows that see them shrinks each keyframe's own
        depth bias (and with it the scale random walk between keyframes). Pixels disagreeing by more
        than max_rel_diff are treated as outliers and skipped, and measured pixels (depth_measured)
        keep the measurement. Returns the number of pixels fused.
        """
        if self.depth is None or self.conf is None:
            return 0
        s = self.depth_stride
        d = depth[::s, ::s].astype(np.float64)
        c = conf[::s, ::s].astype(np.float32)
        if min_conf is not None:
            d[~(c >= min_conf)] = np.nan
        if self.depth_count is None:
            self.depth_count = np.isfinite(self.depth).astype(np.float32)
        cur = self.depth.astype(np.float64)
        new_ok = np.isfinite(d) & (d > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            agree = new_ok & np.isfinite(cur) & (np.abs(d / cur - 1.0) <= max_rel_diff)
        fill = new_ok & ~np.isfinite(cur)
        if self.depth_measured is not None:
            agree &= ~self.depth_measured
        n = self.depth_count
        cur[agree] += (d[agree] - cur[agree]) / (n[agree] + 1.0)
        cur[fill] = d[fill]
        n[agree | fill] += 1.0
        self.depth = cur.astype(np.float32)
        self.conf = np.where(agree | fill, np.fmax(self.conf, c), self.conf).astype(np.float32)
        return int(np.count_nonzero(agree | fill))

    def colors_at(self, uv: np.ndarray) -> np.ndarray:
        """(M,3) uint8 colours of camera pixels uv (M,2) from the stored (strided) image."""
        if self.image is None:
            return np.zeros((len(uv), 3), np.uint8)
        si = self.image_stride
        rows, cols = (uv[:, 1] // si).astype(np.intp), (uv[:, 0] // si).astype(np.intp)
        # one flat take of whole pixels: 3x cheaper than indexing the (h, w, 3) image by (rows, cols)
        return np.take(self.image.reshape(-1, 3), rows * self.image.shape[1] + cols, axis=0)

    @property
    def active(self) -> bool:
        """An anchor candidate: full-precision image/depth/confidence, not archived."""
        return self.depth is not None and not self.archived

    @property
    def verifiable(self) -> bool:
        """Image and depth are still held (active or archived): a loop can be verified against it."""
        return self.depth is not None and (self.image is not None or self.image_jpeg is not None)

    def pixel_grid(self) -> np.ndarray:
        """(h, w, 2) camera-resolution pixel (u, v) of each stored depth pixel (read-only, shared)."""
        h, w = self.depth.shape if self.depth is not None else (0, 0)
        return _strided_pixel_grid(h, w, self.depth_stride)

    def points_cam(
        self, max_points: int | None = None, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Valid depth pixels -> (uv (M,2) camera pixels, X_cam (M,3) optical camera frame, map units,
        conf (M,)), optionally subsampled (the same pixels as points_world with the same arguments)."""
        if self.depth is None or self.conf is None:
            return np.zeros((0, 2)), np.zeros((0, 3)), np.zeros(0)
        uv = self.pixel_grid().reshape(-1, 2)
        d = self.depth.reshape(-1).astype(np.float64)
        c = self.conf.reshape(-1).astype(np.float64)
        ok = np.flatnonzero(np.isfinite(d) & (d > 0))
        if max_points is not None and len(ok) > max_points:
            ok = np.sort(np.random.default_rng(seed).choice(ok, max_points, replace=False))
        return uv[ok], unproject_pixels(uv[ok], d[ok], self.K), c[ok]

    def points_world(
        self, max_points: int | None = None, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Valid depth pixels -> (uv (M,2) camera pixels, X_world (M,3), conf (M,)), optionally subsampled."""
        uv, X_cam, c = self.points_cam(max_points, seed)
        return uv, apply_T(self.T_world_cam, X_cam), c

    def points_world_at(self, uv: np.ndarray) -> np.ndarray:
        """Map points (M,3) world at camera pixels uv (M,2) (e.g. from points_world) with the keyframe's
        CURRENT depth and pose; NaN where the depth is no longer valid."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if self.depth is None or not len(uv):
            return np.full((len(uv), 3), np.nan)
        st = self.depth_stride
        d = self.depth[uv[:, 1].astype(np.intp) // st, uv[:, 0].astype(np.intp) // st].astype(np.float64)
        d[~(np.isfinite(d) & (d > 0))] = np.nan
        return unproject_pixels(uv, d, self.K, self.T_world_cam)

    def as_frame(self) -> Frame:
        """The keyframe's image as a Frame at camera resolution (nearest upsampling if strided)."""
        img = self.image
        if img is None and self.image_jpeg is not None:
            dec = cv2.imdecode(np.frombuffer(self.image_jpeg, np.uint8), cv2.IMREAD_COLOR)
            img = None if dec is None else cv2.cvtColor(dec, cv2.COLOR_BGR2RGB)
        if img is None:
            raise ValueError(f"keyframe {self.keyframe_id} keeps no image")
        s = self.image_stride
        if s > 1:
            img = np.repeat(np.repeat(img, s, axis=0), s, axis=1)[: self.size[0], : self.size[1]]
        return Frame(
            self.stamp_ns, np.ascontiguousarray(img), self.K.copy() if self.K_known else None, self.frame_id
        )

    def archive(self, jpeg_quality: int = 90) -> None:
        """Leave the active set: image to JPEG, depth/confidence to float16 (~10x less memory);
        still usable to verify a loop (as_frame, points_world)."""
        if self.archived:
            return
        if self.image is not None:
            ok, buf = cv2.imencode(
                ".jpg", cv2.cvtColor(self.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
            )
            self.image_jpeg = buf.tobytes() if ok else None
        self.image = None
        if self.depth is not None:
            self.depth = self.depth.astype(np.float16)
        if self.conf is not None:
            self.conf = self.conf.astype(np.float16)
        self.depth_count = None
        self.depth_measured = None
        self.archived = True

    def release(self) -> None:
        """Drop image/depth/confidence for good (pose, intrinsics, descriptor and map points stay)."""
        self.depth = None
        self.conf = None
        self.image = None
        self.image_jpeg = None
        self.depth_count = None
        self.depth_measured = None
        self.archived = True

    def nbytes(self) -> int:
        n = 256  # pose, K and scalars
        for a in (self.depth, self.conf, self.image, self.depth_count, self.depth_measured, self.descriptor):
            if a is not None:
                n += a.nbytes
        return n + (len(self.image_jpeg) if self.image_jpeg is not None else 0)


def track_parallax_deg(
    uv_a: np.ndarray, uv_b: np.ndarray, seen: np.ndarray, focal_px: float, min_tracks: int = 12
) -> float:
    """Median image shift (degrees: pixels over focal_px) of the tracks seen in two frames.

    uv_a, uv_b: (N, 2) the same tracks' pixels in frames a and b; seen: (N,) bool, tracked in both.
    NaN with fewer than min_tracks. No rotation is taken out: the question is whether the image moved at
    all, and an estimated rotation would bring its own noise in.
    """
    if int(np.count_nonzero(seen)) < min_tracks or not focal_px > 0:
        return float("nan")
    shift = np.linalg.norm(np.asarray(uv_a, np.float64)[seen] - np.asarray(uv_b, np.float64)[seen], axis=1)
    return float(np.degrees(np.median(shift) / focal_px))


def image_stride_for(size: tuple[int, int], max_pixels: int) -> int:
    """Smallest integer stride s with ceil(H/s)*ceil(W/s) <= max_pixels."""
    s = 1
    H, W = size
    while -(-H // s) * -(-W // s) > max_pixels:
        s += 1
    return s


class KeyframeManager:
    """Decides keyframes and stores them (newest `max_active` with image/depth/confidence)."""

    def __init__(self, config: KeyframeConfig | None = None) -> None:
        self.config = config or KeyframeConfig()
        self.keyframes: list[Keyframe] = []

    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def last(self) -> Keyframe | None:
        return self.keyframes[-1] if self.keyframes else None

    def active(self, n: int) -> list[Keyframe]:
        """Up to n newest active keyframes, newest first."""
        out = [k for k in reversed(self.keyframes) if k.active]
        return out[:n]

    def anchors(self, n: int, segment_id: int, T_world_cam: np.ndarray | None = None,
                long_slot: bool = True) -> list[Keyframe]:
        """The window's anchors (gauge first): the segment's newest active keyframe, then up to n-1 more
        active keyframes of the segment ranked by how much of them the last posed camera
        `T_world_cam` (4,4) still sees (covisible_geometric), newest first on ties; the last slot goes to
        the oldest one seen at least config.long_anchor_rel as well as the best (see there: less scale
        drift; not with long_slot False); without a pose, simply the newest. Anchors the new frames
        overlap stitch; stale ones only add outliers."""
        cands = [k for k in reversed(self.keyframes) if k.active and k.segment_id == segment_id]
        if T_world_cam is None or len(cands) <= n:
            return cands[:n]
        gauge, rest = cands[0], cands[1:]
        score = [
            round(self.covisible_geometric(k, T_world_cam, k.K, k.size, max_points=200), 1) for k in rest
        ]
        order = sorted(range(len(rest)), key=lambda i: -score[i])  # stable: newest first among equals
        pick = order[: n - 1]
        rel = self.config.long_anchor_rel
        if long_slot and rel > 0 and n > 2:
            pick = order[: n - 2]
            bar = rel * score[order[0]]
            old = [i for i in reversed(range(len(rest))) if i not in pick and 0 < score[i] >= bar]
            pick.append(old[0] if old else order[n - 2])
        return [gauge] + [rest[i] for i in pick]

    def last_in_segment(self, segment_id: int) -> Keyframe | None:
        for k in reversed(self.keyframes):
            if k.segment_id == segment_id:
                return k
        return None

    def reset(self) -> None:
        self.keyframes = []

    def nbytes(self) -> int:
        return sum(k.nbytes() for k in self.keyframes)

    # --- decision -------------------------------------------------------------------------------
    def covisible_geometric(
        self,
        kf: Keyframe,
        T_world_cam: np.ndarray,
        K: np.ndarray,
        size: tuple[int, int],
        max_points: int = 500,
    ) -> float:
        """Fraction of kf's depth points that project inside a view (T_world_cam, K, size), in front."""
        _, X, _ = kf.points_world(max_points=max_points)
        if len(X) == 0:
            return 0.0
        uv, z = project_points(K, invert_T(T_world_cam), X)
        return float(np.mean(in_image(uv, size) & (z > 0)))

    def covisible_tracks(
        self,
        tracks: np.ndarray,
        vis: np.ndarray,
        conf: np.ndarray,
        valid: np.ndarray,
        size: tuple[int, int],
        min_vis: float,
        min_conf: float,
    ) -> float:
        """Fraction of valid queries (from the keyframe) still visible: vis, conf above bounds, in image."""
        n = int(np.count_nonzero(valid))
        if n == 0:
            return 0.0
        seen = (vis > min_vis) & (conf > min_conf) & in_image(tracks, size) & valid
        return float(np.count_nonzero(seen)) / n

    def motion_rel(self, kf: Keyframe, T_world_cam: np.ndarray) -> float:
        """Camera-centre distance to kf divided by kf's median scene depth (parallax proxy)."""
        d = float(np.linalg.norm(T_world_cam[:3, 3] - kf.T_world_cam[:3, 3]))
        return d / max(kf.median_depth, 1e-9)

    def is_keyframe(
        self, covisible: float, motion_rel: float, frame_gap: int = 1 << 30,
        parallax_deg: float = float("nan"),
    ) -> bool:
        """Keyframe when the view changed (covisibility) or the camera moved (parallax).

        frame_gap: frames since the last keyframe. A covisibility-only keyframe needs at least
        min_frame_gap frames of baseline unless covisibility collapsed (below half the bound): at close
        range a passing object drops covisibility at every frame, and anchors one frame apart have no
        baseline to stitch against (issue seen at 0.1-0.9 m from a pillar with walls 3-6 m away).
        parallax_deg: the image's own shift since the last keyframe (track_parallax_deg; NaN: not
        measured). A motion keyframe needs it >= min_motion_parallax_deg: a pose that moved while the
        image did not is the pose's noise (a camera standing still at close range).
        """
        cfg = self.config
        if motion_rel > cfg.max_motion_rel and not parallax_deg < cfg.min_motion_parallax_deg:
            return True
        if covisible >= cfg.min_covisible:
            return False
        return frame_gap >= cfg.min_frame_gap or covisible < 0.5 * cfg.min_covisible

    # --- storage --------------------------------------------------------------------------------
    def add(
        self,
        *,
        frame_index: int,
        frame: Frame,
        window_id: int,
        T_world_cam: np.ndarray,
        K: np.ndarray,
        K_known: bool,
        depth: np.ndarray,
        conf: np.ndarray,
        scale: float = 1.0,
        segment_id: int = 0,
        descriptor: np.ndarray | None = None,
    ) -> Keyframe:
        """Store a new keyframe. depth (H,W) map units with NaN invalid; conf (H,W); K at (H,W)."""
        cfg = self.config
        H, W = frame.size
        s = max(1, int(cfg.depth_stride))
        d = np.ascontiguousarray(depth[::s, ::s], dtype=np.float32)
        c = np.array(conf[::s, ::s], dtype=np.float32, order="C")  # a copy: conf may be the prediction's
        si = image_stride_for((H, W), cfg.max_image_pixels)
        img = np.ascontiguousarray(frame.rgb[::si, ::si])
        valid = d[np.isfinite(d) & (d > 0)]
        med = float(np.median(valid)) if valid.size else 1.0
        kf = Keyframe(
            keyframe_id=len(self.keyframes),
            frame_index=int(frame_index),
            stamp_ns=int(frame.stamp_ns),
            frame_id=frame.frame_id,
            window_id=int(window_id),
            T_world_cam=np.array(T_world_cam, dtype=np.float64),
            K=np.array(K, dtype=np.float64),
            size=(H, W),
            K_known=K_known,
            depth_stride=s,
            image_stride=si,
            depth=d,
            conf=c,
            image=img,
            median_depth=med,
            scale=float(scale),
            segment_id=int(segment_id),
            descriptor=descriptor,
        )
        self.keyframes.append(kf)
        active = [k for k in self.keyframes if k.active]
        for old in active[: max(0, len(active) - max(1, cfg.max_active))]:
            old.archive()
        archived = [k for k in self.keyframes if k.archived and k.depth is not None]
        for old in archived[: max(0, len(archived) - max(0, cfg.max_archived))]:
            old.release()
        return kf
