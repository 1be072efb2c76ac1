"""GlobalMap: coloured points stored per keyframe (camera frame), fused into a voxel grid on demand.

Points are stored in each keyframe's optical camera frame together with the keyframe's pose
T_map_cam, so correcting a keyframe pose later moves its points. The fused output is a voxel
grid in the map frame (first keyframe's BODY frame): confidence-weighted mean position and
colour per voxel, maximum confidence.

Memory cap: `max_bytes` covers the stored points (19 B each: xyz f32, rgb u8, conf f32), the
cached fused snapshot (at most as many points as stored) and the keyframe records. Stored
points are held to half the cap: when a new keyframe would exceed it, every keyframe's cloud
is thinned to an equal share (highest-confidence points kept), so the map stays under the cap
for any sequence length, at the price of sparser old keyframes.

Persistence lives in `io.map_store` (the SLAM core never writes files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt_ros.geometry.se3 import apply_T

_BYTES_PER_POINT = 12 + 3 + 4


@dataclass
class MapSnapshot:
    """Fused map: points (N,3) float32 map frame; colors (N,3) uint8; confidence (N,) float32."""

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return int(len(self.points))


@dataclass
class MapKeyframe:
    """A keyframe as the map keeps it. points_cam (M,3) f32 optical camera frame; colors; conf."""

    keyframe_id: int
    stamp_ns: int
    frame_index: int
    T_map_cam: np.ndarray
    K: np.ndarray
    size: tuple[int, int]
    points_cam: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray
    segment_id: int = 0

    def nbytes(self) -> int:
        return len(self.points_cam) * _BYTES_PER_POINT + 256


class GlobalMap:
    """Per-keyframe point store + voxel fusion + memory cap + atomic save/load (map frame)."""

    def __init__(
        self,
        voxel_size: float | None = None,
        max_bytes: int = 256 * 1024 * 1024,
        points_per_keyframe: int = 20000,
        voxel_size_rel: float = 0.01,
    ) -> None:
        """voxel_size: fused-grid edge in map units; None = voxel_size_rel x the first keyframe's
        median point distance (slam.config.MapConfig.voxel_size_rel)."""
        if max_bytes <= 0 or points_per_keyframe <= 0:
            raise ValueError("max_bytes and points_per_keyframe must be > 0")
        self.voxel_size = voxel_size
        self.voxel_size_rel = float(voxel_size_rel)
        self.max_bytes = int(max_bytes)
        self.points_per_keyframe = int(points_per_keyframe)
        self.keyframes: dict[int, MapKeyframe] = {}
        self._snapshot: MapSnapshot | None = None
        self.peak_bytes = 0
        self.thinning_events = 0

    # --- content ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def num_points_stored(self) -> int:
        return sum(len(k.points_cam) for k in self.keyframes.values())

    def nbytes(self) -> int:
        n = sum(k.nbytes() for k in self.keyframes.values())
        if self._snapshot is not None:
            n += len(self._snapshot) * _BYTES_PER_POINT
        return n

    def note_peak(self) -> None:
        self.peak_bytes = max(self.peak_bytes, self.nbytes())

    def add_keyframe(
        self,
        keyframe_id: int,
        stamp_ns: int,
        frame_index: int,
        T_map_cam: np.ndarray,
        K: np.ndarray,
        size: tuple[int, int],
        points_cam: np.ndarray,
        colors: np.ndarray,
        confidence: np.ndarray,
        segment_id: int = 0,
    ) -> None:
        """Add a keyframe's cloud (points in its optical camera frame, (M,3)), thinning to the caps."""
        if keyframe_id in self.keyframes:
            raise ValueError(f"keyframe {keyframe_id} already in the map")
        pts = np.asarray(points_cam, dtype=np.float32).reshape(-1, 3)
        col = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        conf = np.asarray(confidence, dtype=np.float32).reshape(-1)
        if not (len(pts) == len(col) == len(conf)):
            raise ValueError("points, colors and confidence differ in length")
        ok = np.all(np.isfinite(pts), axis=1) & np.isfinite(conf)
        pts, col, conf = pts[ok], col[ok], conf[ok]
        if self.voxel_size is None and len(pts):
            self.voxel_size = float(self.voxel_size_rel * np.median(np.linalg.norm(pts, axis=1)))
        kf = MapKeyframe(
            int(keyframe_id),
            int(stamp_ns),
            int(frame_index),
            np.array(T_map_cam, dtype=np.float64),
            np.array(K, dtype=np.float64),
            (int(size[0]), int(size[1])),
            pts,
            col,
            conf,
            int(segment_id),
        )
        self._thin(kf, self.points_per_keyframe)
        self.keyframes[kf.keyframe_id] = kf
        self._snapshot = None
        self._enforce_cap()
        self.note_peak()

    def update_pose(self, keyframe_id: int, T_map_cam: np.ndarray, scale_ratio: float = 1.0) -> None:
        """Correct a keyframe's pose (and its local scale): its points move with it in the next snapshot.

        scale_ratio multiplies the keyframe's points in its camera frame (a Sim(3) correction's scale).
        """
        kf = self.keyframes[keyframe_id]
        kf.T_map_cam = np.array(T_map_cam, dtype=np.float64)
        if scale_ratio != 1.0:
            kf.points_cam = (kf.points_cam * np.float32(scale_ratio)).astype(np.float32)
        self._snapshot = None

    def replace_points(
        self, keyframe_id: int, points_cam: np.ndarray, colors: np.ndarray, confidence: np.ndarray
    ) -> None:
        """Replace a keyframe's cloud (e.g. after its depth was refined), same caps as add_keyframe."""
        kf = self.keyframes[keyframe_id]
        pts = np.asarray(points_cam, dtype=np.float32).reshape(-1, 3)
        col = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        conf = np.asarray(confidence, dtype=np.float32).reshape(-1)
        ok = np.all(np.isfinite(pts), axis=1) & np.isfinite(conf)
        budget = (
            min(self.points_per_keyframe, max(len(kf.points_cam), 1))
            if self.thinning_events
            else self.points_per_keyframe
        )
        kf.points_cam, kf.colors, kf.confidence = pts[ok], col[ok], conf[ok]
        self._thin(kf, budget)
        self._snapshot = None
        self._enforce_cap()
        self.note_peak()

    @staticmethod
    def _thin(kf: MapKeyframe, budget: int) -> bool:
        if len(kf.points_cam) <= budget:
            return False
        keep = np.sort(np.argsort(-kf.confidence, kind="stable")[: max(0, budget)])
        kf.points_cam, kf.colors, kf.confidence = kf.points_cam[keep], kf.colors[keep], kf.confidence[keep]
        return True

    def _enforce_cap(self) -> None:
        """Hold stored points to half the cap (the snapshot may take the other half)."""
        budget_bytes = self.max_bytes // 2 - 256 * len(self.keyframes)
        max_points = max(0, budget_bytes // _BYTES_PER_POINT)
        if self.num_points_stored <= max_points:
            return
        share = max_points // max(1, len(self.keyframes))
        for kf in self.keyframes.values():
            self._thin(kf, share)
        self.thinning_events += 1

    # --- output -------------------------------------------------------------------------------
    def points_map(self) -> MapSnapshot:
        """Every stored point in the map frame, unfused."""
        if not self.keyframes:
            return MapSnapshot(
                np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.float32)
            )
        pts = [apply_T(k.T_map_cam, k.points_cam).astype(np.float32) for k in self.keyframes.values()]
        return MapSnapshot(
            np.concatenate(pts),
            np.concatenate([k.colors for k in self.keyframes.values()]),
            np.concatenate([k.confidence for k in self.keyframes.values()]),
        )

    def snapshot(self) -> MapSnapshot:
        """Fused voxel grid (map frame), cached until the map changes."""
        if self._snapshot is not None:
            return self._snapshot
        raw = self.points_map()
        if len(raw) == 0 or not self.voxel_size:
            self._snapshot = raw
        else:
            self._snapshot = voxel_fuse(raw, float(self.voxel_size))
        self.note_peak()
        return self._snapshot

    def keyframe_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids (K,), stamps_ns (K,), T_map_cam (K,4,4)) in keyframe order."""
        ks = sorted(self.keyframes.values(), key=lambda k: k.keyframe_id)
        if not ks:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4, 4))
        return (
            np.array([k.keyframe_id for k in ks], np.int64),
            np.array([k.stamp_ns for k in ks], np.int64),
            np.stack([k.T_map_cam for k in ks]),
        )


def voxel_fuse(raw: MapSnapshot, voxel: float) -> MapSnapshot:
    """Confidence-weighted mean per voxel of edge `voxel` (position, colour), max confidence."""
    keys = np.floor(raw.points / voxel).astype(np.int64)
    keys -= keys.min(0)
    ext = keys.max(0) + 1
    flat = (keys[:, 0] * ext[1] + keys[:, 1]) * ext[2] + keys[:, 2]  # fits int64 for any sane extent
    _, inv = np.unique(flat, return_inverse=True)
    inv = inv.reshape(-1)
    n = int(inv.max()) + 1
    w = np.maximum(raw.confidence.astype(np.float64), 1e-6)
    sw = np.bincount(inv, w, n)
    pts = np.stack([np.bincount(inv, w * raw.points[:, i], n) for i in range(3)], 1) / sw[:, None]
    col = np.stack([np.bincount(inv, w * raw.colors[:, i], n) for i in range(3)], 1) / sw[:, None]
    conf = np.full(n, -np.inf)
    np.maximum.at(conf, inv, raw.confidence.astype(np.float64))
    return MapSnapshot(
        pts.astype(np.float32), np.clip(np.rint(col), 0, 255).astype(np.uint8), conf.astype(np.float32)
    )
