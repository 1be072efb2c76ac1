"""GlobalMap: coloured points stored per keyframe (camera frame), fused into a voxel grid.

Points are stored in each keyframe's optical camera frame together with the keyframe's pose
T_map_cam, so correcting a keyframe pose later moves its points. The fused output is a voxel
grid in the map frame (first keyframe's BODY frame): confidence-weighted mean position, colour
and confidence per voxel. The grid (slam.voxel_grid) is built on the first snapshot and then kept
up to date keyframe by keyframe (a new keyframe, refined points, thinning, a pose correction cost
O(the points that changed)), so a snapshot costs O(voxels), not a sort of the whole map.
`snapshot(fresh=True)` rebuilds it from the keyframes in id order (what save and load do: a loaded
map's snapshot is bit-identical to the saved one).

Memory cap: `max_bytes` covers the stored points (19 B each: xyz f32, rgb u8, conf f32), the
fused grid and its cached snapshot, and the keyframe records. Stored points are held to half the
cap, and less when the fused part needs more than the other half: when a new keyframe would
exceed it, every keyframe's cloud is thinned to an equal share (highest-confidence points kept),
so the map stays under the cap for any sequence length, at the price of sparser old keyframes.

Persistence lives in `io.map_store` (the SLAM core never writes files).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt_ros.slam.voxel_grid import VoxelGrid

_BYTES_PER_POINT = 12 + 3 + 4


def to_map(T_map_cam: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Points (N,3) camera frame -> (N,3) float32 map frame, element by element in float64 (no BLAS):
    a point's result does not depend on the array it is in, so the grid can remove exactly what it
    added from any subset of a keyframe's points."""
    T = np.asarray(T_map_cam, dtype=np.float64)
    p = np.asarray(points_cam, dtype=np.float64)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    out = np.empty((len(p), 3), np.float32)
    for i in range(3):
        out[:, i] = T[i, 0] * x + T[i, 1] * y + T[i, 2] * z + T[i, 3]
    return out


@dataclass
class MapSnapshot:
    """Fused map: points (N,3) float32 map frame; colors (N,3) uint8; confidence (N,) float32."""

    points: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray

    def __len__(self) -> int:
        return int(len(self.points))


@dataclass(frozen=True)
class _GridPart:
    """A keyframe's cloud as the grid holds it: the arrays and pose it was added with."""

    T_map_cam: np.ndarray
    points_cam: np.ndarray
    colors: np.ndarray
    confidence: np.ndarray

    @staticmethod
    def of(kf: MapKeyframe) -> _GridPart:
        return _GridPart(kf.T_map_cam, kf.points_cam, kf.colors, kf.confidence)


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
        self._voxel_size = voxel_size
        self.voxel_size_rel = float(voxel_size_rel)
        self.max_bytes = int(max_bytes)
        self.points_per_keyframe = int(points_per_keyframe)
        self.keyframes: dict[int, MapKeyframe] = {}
        self._grid: VoxelGrid | None = None  # built by the first snapshot, then kept up to date
        self._in_grid: dict[int, _GridPart] = {}  # what the grid holds of each keyframe
        self._dirty: set[int] = set()  # keyframes changed since (points or pose)
        self._snapshot: MapSnapshot | None = None
        self.peak_bytes = 0
        self.thinning_events = 0

    @property
    def voxel_size(self) -> float | None:
        return self._voxel_size

    @voxel_size.setter
    def voxel_size(self, value: float | None) -> None:
        """A new voxel edge (e.g. the map rescaled to metres) drops the grid: rebuilt on the next snapshot."""
        self._voxel_size = value
        self._drop_grid()

    # --- content ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def num_points_stored(self) -> int:
        return sum(len(k.points_cam) for k in self.keyframes.values())

    def nbytes(self) -> int:
        return sum(k.nbytes() for k in self.keyframes.values()) + self._fused_bytes()

    def _fused_bytes(self) -> int:
        """The grid, its snapshot (counted while the grid exists, made or not) and the replaced clouds
        the grid still holds until its next update."""
        if self._grid is None:
            return len(self._snapshot) * _BYTES_PER_POINT if self._snapshot is not None else 0
        held = sum(
            len(g.points_cam) * _BYTES_PER_POINT
            for k in self._dirty
            if (g := self._in_grid.get(k)) is not None and g.points_cam is not self.keyframes[k].points_cam
        )
        return self._grid.nbytes() + self._grid.num_voxels * _BYTES_PER_POINT + held

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
        self._changed(kf.keyframe_id)
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
        self._changed(keyframe_id)

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
        self._changed(keyframe_id)
        self._enforce_cap()
        self.note_peak()

    def _changed(self, keyframe_id: int) -> None:
        """A keyframe's points or pose changed: the grid takes it at the next snapshot (a keyframe
        refined in every window until then costs the grid one update, not one per window)."""
        self._snapshot = None
        if self._grid is not None:
            self._dirty.add(keyframe_id)

    def _drop_grid(self) -> None:
        """Forget the grid (rebuilt at the next snapshot): a new voxel edge, or thinning every keyframe."""
        self._grid = None
        self._in_grid.clear()
        self._dirty.clear()
        self._snapshot = None

    def _update_grid(self, grid: VoxelGrid) -> None:
        """Bring the grid up to date in one pass: each changed keyframe's held cloud out, its cloud in."""
        parts: list[tuple[_GridPart, int]] = []
        for k in sorted(self._dirty):
            old = self._in_grid.get(k)
            if old is not None:
                parts.append((old, -1))
            new = _GridPart.of(self.keyframes[k])
            self._in_grid[k] = new
            parts.append((new, +1))
        self._dirty.clear()
        if parts:
            pts = [to_map(g.T_map_cam, g.points_cam) for g, _ in parts]
            grid.add(
                np.concatenate(pts),
                np.concatenate([g.colors for g, _ in parts]),
                np.concatenate([g.confidence for g, _ in parts]),
                np.concatenate([np.full(len(p), sg, np.int8) for p, (_, sg) in zip(pts, parts)]),
            )

    @staticmethod
    def _thin(kf: MapKeyframe, budget: int) -> bool:
        """Keep the `budget` highest-confidence points (new arrays); True when some were dropped."""
        if len(kf.points_cam) <= budget:
            return False
        keep = np.sort(np.argsort(-kf.confidence, kind="stable")[: max(0, budget)])
        kf.points_cam, kf.colors, kf.confidence = kf.points_cam[keep], kf.colors[keep], kf.confidence[keep]
        return True

    def _enforce_cap(self) -> None:
        """Hold stored points to half the cap, less when the fused grid needs more than the other half.

        The grid shrinks with the points it fuses, about in proportion, so the budget gives each stored
        point its share of the grid's bytes as measured now. Thinning goes to 90 % of the budget, so the
        next keyframes add without thinning every keyframe again; it drops the grid, which the next
        snapshot rebuilds from the thinned points (and measures again)."""
        records = 256 * len(self.keyframes)
        stored = self.num_points_stored
        per_point = _BYTES_PER_POINT + self._fused_bytes() / max(1, stored)
        half = (self.max_bytes // 2 - records) / _BYTES_PER_POINT
        max_points = int(max(0, min(half, (self.max_bytes - records) / per_point)))
        if stored <= max_points:
            return
        share = int(0.9 * max_points) // max(1, len(self.keyframes))
        for kf in self.keyframes.values():
            self._thin(kf, share)
        self.thinning_events += 1
        self._drop_grid()

    # --- output -------------------------------------------------------------------------------
    def points_map(self) -> MapSnapshot:
        """Every stored point in the map frame, unfused."""
        if not self.keyframes:
            return MapSnapshot(
                np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.float32)
            )
        pts = [to_map(k.T_map_cam, k.points_cam) for k in self.keyframes.values()]
        return MapSnapshot(
            np.concatenate(pts),
            np.concatenate([k.colors for k in self.keyframes.values()]),
            np.concatenate([k.confidence for k in self.keyframes.values()]),
        )

    def snapshot(self, fresh: bool = False) -> MapSnapshot:
        """Fused voxel grid (map frame), cached until the map changes. fresh: rebuild the grid from the
        keyframes in id order first (canonical: save and load give bit-identical snapshots)."""
        if fresh:
            self._drop_grid()
        if self._snapshot is not None:
            return self._snapshot
        if not self.voxel_size:
            self._snapshot = self.points_map()
        else:
            while True:  # the grid may need room: a thinning drops it, built again from fewer points
                if self._grid is None:
                    self._grid = VoxelGrid(float(self.voxel_size))
                    self._dirty = set(self.keyframes)
                grid = self._grid
                self._update_grid(grid)
                self._enforce_cap()  # each thinning keeps <= 90 % of the points: this ends
                if self._grid is grid:
                    break
            self._snapshot = MapSnapshot(*grid.fused())
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
    """Points fused at once: confidence-weighted mean per voxel of edge `voxel` (position, colour,
    confidence), as GlobalMap's grid keeps them."""
    grid = VoxelGrid(voxel)
    grid.add(raw.points, raw.colors, raw.confidence)
    return MapSnapshot(*grid.fused())
