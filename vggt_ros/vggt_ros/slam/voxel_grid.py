"""VoxelGrid: the global map's fused voxel grid, kept up to date point set by point set.

Fusing the whole map from scratch sorts every stored point (seconds at millions of points), so a
runtime that did it after every window fell behind after a minute or two of mapping. The grid keeps
per occupied voxel running sums (confidence weight, weighted position, weighted colour, weighted
confidence, point count); adding or removing a keyframe's points costs O(its points) and the fused
output costs O(voxels). Removal subtracts exactly the contributions that were added (the caller
recomputes them from the same stored points and pose); a voxel whose count returns to zero is reset
to exact zeros, so no residue of removed points remains.

Voxel keys pack (kx, ky, kz) = floor(p / voxel) into one int64 with 21 bits per axis: points farther
than 2^20 voxels (10^4 x the first keyframe's median depth at the default voxel size) from the map
origin are not fused (counted in `dropped`). Lookup: a large sorted index plus a small sorted one for
new voxels, merged when the small one grows past 1/16 of the large one (amortised O(1) per voxel).
"""

from __future__ import annotations

import numpy as np

_BITS = 21
_HALF = 1 << (_BITS - 1)
_MIN_DELTA = 4096
SLOT_BYTES = 8 * 8 + 4 + 8 + 16  # sums (w, w*xyz, w*rgb, w*conf) f64, count, key; index (key + slot)


def voxel_keys(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Points (N,3) -> (packed int64 keys (M,), indices (M,) of the points inside the key range)."""
    k = np.floor(np.asarray(points) / voxel)  # in the points' dtype, as a fusion from scratch
    ok = np.flatnonzero(np.all(np.abs(k) < _HALF, axis=1))
    ki = (k if len(ok) == len(k) else k[ok]).astype(np.int64) + _HALF  # usually every point is inside
    return (ki[:, 0] << (2 * _BITS)) | (ki[:, 1] << _BITS) | ki[:, 2], ok


def _contributions(
    points: np.ndarray, colors: np.ndarray, confidence: np.ndarray, ok: np.ndarray | slice, sg: np.ndarray
) -> np.ndarray:
    """Per point ok[i] (ok: an index array or a slice; input order): the 8 running-sum terms (8, M)
    [w, w*xyz, w*rgb, w*conf] with w = max(conf, 1e-6) * sg[i] (sign +1 adds, -1 removes); each
    term's row is contiguous (bincount's weights), built row by row (no strided writes)."""
    conf = np.asarray(confidence, np.float64)[ok]
    xyz = np.ascontiguousarray(np.asarray(points)[ok].T, dtype=np.float64)  # (3, M)
    rgb = np.ascontiguousarray(np.asarray(colors)[ok].T, dtype=np.float64)  # (3, M)
    v = np.empty((8, len(conf)))
    np.multiply(np.maximum(conf, 1e-6), sg, out=v[0])
    np.multiply(xyz, v[0], out=v[1:4])
    np.multiply(rgb, v[0], out=v[4:7])
    np.multiply(conf, v[0], out=v[7])
    return v


def _grown(a: np.ndarray, rows: int) -> np.ndarray:
    out = np.empty((rows,) + a.shape[1:], a.dtype)
    out[: len(a)] = a
    return out


class VoxelGrid:
    """Running per-voxel sums of edge `voxel` (map frame); `fused()` gives the confidence-weighted mean
    position and colour per occupied voxel and the confidence-weighted mean confidence."""

    def __init__(self, voxel: float) -> None:
        if not voxel > 0:
            raise ValueError(f"voxel must be > 0, got {voxel}")
        self.voxel = float(voxel)
        self._main_k = np.zeros(0, np.int64)
        self._main_s = np.zeros(0, np.int64)
        self._delta_k = np.zeros(0, np.int64)
        self._delta_s = np.zeros(0, np.int64)
        self._sums = np.zeros((0, 8))  # per slot: w, w*x, w*y, w*z, w*r, w*g, w*b, w*conf
        self._n = np.zeros(0, np.int32)
        self._key = np.zeros(0, np.int64)
        self._used = 0
        self.num_voxels = 0  # occupied voxels
        self.dropped = 0

    def nbytes(self) -> int:
        return int(len(self._n)) * SLOT_BYTES

    def add(
        self, points: np.ndarray, colors: np.ndarray, confidence: np.ndarray, sign: int | np.ndarray = 1
    ) -> None:
        """Add (sign +1) or remove (sign -1) points (N,3) map frame, colors (N,3) uint8, confidence (N,);
        sign may be one per point (N,) to add and remove in one pass. A removal must repeat the values
        of an earlier addition."""
        keys, ok = voxel_keys(points, self.voxel)
        signs = np.broadcast_to(np.where(np.asarray(sign) < 0, -1, 1), (len(points),))
        self.dropped += int(np.count_nonzero(signs > 0)) - int(np.count_nonzero(signs[ok] > 0))
        if not len(ok):
            return
        u, inv = np.unique(keys, return_inverse=True)  # voxels (M,) sorted; each point's voxel
        sel = slice(None) if len(ok) == len(points) else ok  # no gather when every point is inside
        sg = signs[sel].astype(np.float64)
        v = _contributions(points, colors, confidence, sel, sg)
        # per voxel, its points' terms summed in input order (bincount: a plain loop, the same on any
        # machine, whatever order the sort left equal keys in)
        per_voxel = np.empty((len(u), 8))
        for c in range(8):
            per_voxel[:, c] = np.bincount(inv, weights=v[c], minlength=len(u))
        gains = np.bincount(inv, weights=np.maximum(sg, 0.0), minlength=len(u)) > 0
        slots = self._slots(u, gains)
        if np.any(slots < 0):
            raise ValueError("removing points that were never added")
        self._sums[slots] += per_voxel
        was = self._n[slots] > 0
        self._n[slots] += np.rint(np.bincount(inv, weights=sg, minlength=len(u))).astype(np.int32)
        now = self._n[slots] > 0
        self.num_voxels += int(np.count_nonzero(now & ~was)) - int(np.count_nonzero(was & ~now))
        empty = slots[~now]
        if len(empty):  # every point of these voxels is gone: exact zeros, no float residue
            self._sums[empty] = 0.0
            self._n[empty] = 0
            if self._used > 4 * _MIN_DELTA and self.num_voxels < self._used // 2:
                self.compact()

    def fused(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(points (V,3) float32, colors (V,3) uint8, confidence (V,) float32) of the occupied voxels."""
        a = self._sums[np.flatnonzero(self._n[: self._used] > 0)]
        w = a[:, :1]
        pts = (a[:, 1:4] / w).astype(np.float32)
        col = np.clip(np.rint(a[:, 4:7] / w), 0, 255).astype(np.uint8)
        return pts, col, (a[:, 7] / a[:, 0]).astype(np.float32)

    # --- index --------------------------------------------------------------------------------
    def _slots(self, u: np.ndarray, create: np.ndarray) -> np.ndarray:
        """Slots of the sorted unique keys u (M,); a missing one is created where create (M,) bool is
        set, else -1."""
        slots = np.full(len(u), -1, np.int64)
        for keys, sl in ((self._main_k, self._main_s), (self._delta_k, self._delta_s)):
            miss = np.flatnonzero(slots < 0)
            if not len(keys) or not len(miss):
                continue
            i = np.minimum(np.searchsorted(keys, u[miss]), len(keys) - 1)
            hit = keys[i] == u[miss]
            slots[miss[hit]] = sl[i[hit]]
        new = np.flatnonzero((slots < 0) & create)
        if len(new):
            slots[new] = self._allocate(len(new))
            self._key[slots[new]] = u[new]
            self._insert_delta(u[new], slots[new])
        return slots

    def _allocate(self, n: int) -> np.ndarray:
        need = self._used + n
        if need > len(self._n):
            cap = max(need, len(self._n) + len(self._n) // 2, 1024)
            self._sums = _grown(self._sums, cap)
            self._n = _grown(self._n, cap)
            self._key = _grown(self._key, cap)
        first = self._used
        self._used = need
        self._sums[first:need] = 0.0
        self._n[first:need] = 0
        return np.arange(first, need, dtype=np.int64)

    def compact(self) -> None:
        """Drop the empty voxels' slots (after many removals): slots renumbered, index rebuilt, the
        arrays cut to the occupied voxels (nbytes shrinks)."""
        live = np.flatnonzero(self._n[: self._used] > 0)
        self._sums, self._n, self._key = self._sums[live], self._n[live], self._key[live]
        self._used = len(live)
        order = np.argsort(self._key)
        self._main_k, self._main_s = self._key[order], order.astype(np.int64)
        self._delta_k, self._delta_s = np.zeros(0, np.int64), np.zeros(0, np.int64)

    def _insert_delta(self, keys: np.ndarray, slots: np.ndarray) -> None:
        k = np.concatenate([self._delta_k, keys])
        s = np.concatenate([self._delta_s, slots])
        if len(k) > max(_MIN_DELTA, len(self._main_k) // 16):
            k = np.concatenate([self._main_k, k])
            s = np.concatenate([self._main_s, s])
            order = np.argsort(k)
            self._main_k, self._main_s = k[order], s[order]
            self._delta_k, self._delta_s = np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            order = np.argsort(k)
            self._delta_k, self._delta_s = k[order], s[order]
