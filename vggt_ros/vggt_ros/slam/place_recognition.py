"""Keyframe place database for loop-closure and relocalisation candidates, and global descriptors.

``PlaceDatabase`` keeps one L2-normalised global descriptor per keyframe in a preallocated
float32 matrix (capacity doubles as it fills, up to ``max_entries``). A query is one
matrix-vector product (cosine similarity) plus a top-k selection, so its cost is bounded by the
cap: ~N*D multiply-adds (bench/pose_graph_bench.py measures 100 / 1,000 / 5,000 entries).
At the cap the most redundant entry (the highest cosine similarity to another entry; on a tie the
newer one) is dropped, so places seen once survive and long stays at one place thin out.

Descriptors:
- ``image_descriptor(rgb)``: classical, for test doubles (the simulated predictor has no network):
  a per-channel standardised colour thumbnail and gradient-orientation histograms over a 4x4 grid.
- for VGGT, the predictor gives its own (``model/descriptors.token_descriptors``: pooled DINOv2 patch
  tokens, in ``WindowPrediction.descriptors``); the database takes any unit-norm rows of one size.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

#: image_descriptor layout: colour thumbnail (w, h), gradient grid (cells per side), orientation
#: bins, and the weight of the gradient part against the thumbnail
THUMB_SIZE = (16, 12)
GRID = 4
ORIENT_BINS = 8
HOG_WEIGHT = 0.5
#: image width the gradients are computed at (the descriptor does not depend on input size)
GRAD_WIDTH = 128
IMAGE_DESCRIPTOR_DIM = 3 * THUMB_SIZE[0] * THUMB_SIZE[1] + GRID * GRID * ORIENT_BINS


@dataclass
class PlaceConfig:
    """PlaceDatabase settings (the single source of these defaults).

    max_entries: cap on stored descriptors (query cost ~ max_entries * D).
    initial_capacity: rows preallocated before the first doubling.
    """

    max_entries: int = 5000
    initial_capacity: int = 64

    def __post_init__(self) -> None:
        if self.max_entries < 1 or self.initial_capacity < 1:
            raise ValueError("max_entries and initial_capacity must be >= 1")


@dataclass(frozen=True)
class Candidate:
    """A query hit: keyframe id, cosine similarity in [-1, 1], its segment and pose (4,4) T_world_cam."""

    kf_id: int
    score: float
    segment_id: int
    T_world_cam: np.ndarray


def normalise(descriptor: np.ndarray) -> np.ndarray:
    """(D,) -> float32 unit vector. ValueError for non-1-d, non-finite or zero descriptors."""
    d = np.asarray(descriptor, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"descriptor must be a non-empty (D,) vector, got shape {d.shape}")
    n = float(np.linalg.norm(d))
    if not np.isfinite(n) or n <= 1e-12:
        raise ValueError("descriptor is zero or not finite")
    return (d / n).astype(np.float32)


def _check_pose(T_world_cam: np.ndarray) -> np.ndarray:
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"T_world_cam must be a finite (4,4) matrix, got shape {T.shape}")
    return T


class PlaceDatabase:
    """Keyframe descriptors, poses (T_world_cam, world units) and map-segment ids, queried by cosine."""

    def __init__(self, config: PlaceConfig | None = None) -> None:
        self.config = config or PlaceConfig()
        self.dim: int | None = None  # fixed by the first add
        self._n = 0
        self._next_seq = 0
        cap = min(self.config.initial_capacity, self.config.max_entries)
        self._alloc(cap, 1)
        self._row: dict[int, int] = {}
        self.dropped = 0  # entries dropped at the cap

    def _alloc(self, capacity: int, dim: int) -> None:
        self._desc = np.zeros((capacity, dim), np.float32)
        self._ids = np.zeros(capacity, np.int64)
        self._seq = np.zeros(capacity, np.int64)
        self._segment = np.zeros(capacity, np.int64)
        self._pose = np.zeros((capacity, 4, 4), np.float64)
        self._nn = np.full(capacity, -np.inf, np.float32)  # best similarity to another entry ...
        self._nn_id = np.full(capacity, -1, np.int64)  # ... and that entry's kf_id (-1: none)

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self._desc, self._ids, self._seq, self._segment, self._pose, self._nn, self._nn_id

    def _grow(self) -> None:
        cap = min(2 * len(self._ids), self.config.max_entries)
        old = self._arrays()
        self._alloc(cap, self._desc.shape[1])
        for new, arr in zip(self._arrays(), old):
            new[: self._n] = arr[: self._n]

    def __len__(self) -> int:
        return self._n

    def __contains__(self, kf_id: object) -> bool:
        return kf_id in self._row

    @property
    def capacity(self) -> int:
        return len(self._ids)

    @property
    def ids(self) -> list[int]:
        """Stored keyframe ids, oldest first."""
        order = np.argsort(self._seq[: self._n], kind="stable")
        return [int(i) for i in self._ids[: self._n][order]]

    def add(self, kf_id: int, descriptor: np.ndarray, T_world_cam: np.ndarray, segment_id: int = 0) -> None:
        """Store keyframe kf_id (ValueError if present, or on a bad descriptor / pose).

        descriptor: (D,), any scale (normalised here); D is fixed by the first add.
        T_world_cam: (4,4) pose, kept for the caller (e.g. to pick verification windows).
        """
        kf_id = int(kf_id)
        if kf_id in self._row:
            raise ValueError(f"keyframe {kf_id} already in the database")
        d = self._check_descriptor(descriptor)
        T = _check_pose(T_world_cam)
        if self.dim is None:
            self.dim = d.size
            self._alloc(self.capacity, self.dim)
        if self._n == self.config.max_entries:
            self._drop_most_redundant()
        elif self._n == self.capacity:
            self._grow()
        sims = self._desc[: self._n] @ d
        r = self._n
        self._desc[r], self._ids[r], self._seq[r] = d, kf_id, self._next_seq
        self._segment[r], self._pose[r] = int(segment_id), T
        if self._n:
            best = int(np.argmax(sims))
            self._nn[r], self._nn_id[r] = sims[best], self._ids[best]
        else:
            self._nn[r], self._nn_id[r] = -np.inf, -1
        closer = np.flatnonzero(sims > self._nn[: self._n])
        self._nn[closer], self._nn_id[closer] = sims[closer], kf_id
        self._row[kf_id] = r
        self._n += 1
        self._next_seq += 1

    def _check_descriptor(self, descriptor: np.ndarray) -> np.ndarray:
        d = normalise(descriptor)
        if self.dim is not None and d.size != self.dim:
            raise ValueError(f"descriptor has {d.size} dims, the database {self.dim}")
        return d

    def _drop_most_redundant(self) -> None:
        """Drop the entry most similar to another one (on a tie the newer: the older stays).

        Ties within 1e-6: a pair's two scores come from different products (rounding may differ).
        """
        nn = self._nn[: self._n]
        tied = np.flatnonzero(nn >= nn.max() - 1e-6)
        victim = int(tied[np.argmax(self._seq[tied])])
        self.remove(int(self._ids[victim]))
        self.dropped += 1

    def _refresh_nn(self, rows: np.ndarray) -> None:
        """Recompute the nearest neighbour of `rows` (their neighbour was removed), one (N, D)
        matrix-vector product each (OpenBLAS runs these ~10x faster than one thin (k, N) product)."""
        for r in rows:
            if self._n < 2:
                self._nn[r], self._nn_id[r] = -np.inf, -1
                continue
            sims = self._desc[: self._n] @ self._desc[r]
            sims[r] = -np.inf
            best = int(np.argmax(sims))
            self._nn[r], self._nn_id[r] = sims[best], self._ids[best]

    def remove(self, kf_id: int) -> None:
        """Remove a keyframe (KeyError if absent). The last row moves into its slot; entries whose
        nearest neighbour it was get theirs recomputed (the redundancy scores stay exact)."""
        r = self._row.pop(int(kf_id))
        last = self._n - 1
        if r != last:
            for arr in self._arrays():
                arr[r] = arr[last]
            self._row[int(self._ids[r])] = r
        self._n -= 1
        orphans = np.flatnonzero(self._nn_id[: self._n] == int(kf_id))
        if orphans.size:
            self._refresh_nn(orphans)

    def redundancy(self, kf_id: int) -> float:
        """Cosine similarity of kf_id to its most similar other entry (-inf if alone); KeyError if absent."""
        return float(self._nn[self._row[int(kf_id)]])

    def set_pose(self, kf_id: int, T_world_cam: np.ndarray) -> None:
        """Update a keyframe's pose (after a pose-graph correction). KeyError if absent."""
        self._pose[self._row[int(kf_id)]] = _check_pose(T_world_cam)

    def relabel_segment(self, old: int, new: int) -> int:
        """Move every entry of segment `old` to `new` (segments merged); returns how many moved."""
        mask = self._segment[: self._n] == int(old)
        self._segment[: self._n][mask] = int(new)
        return int(mask.sum())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The database as plain arrays (for np.savez), rows oldest first."""
        order = np.argsort(self._seq[: self._n], kind="stable")
        names = ("desc", "ids", "seq", "segment", "pose", "nn", "nn_id")
        out = {name: arr[: self._n][order].copy() for name, arr in zip(names, self._arrays())}
        out["next_seq"] = np.array(self._next_seq, np.int64)
        out["dropped"] = np.array(self.dropped, np.int64)
        return out

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], config: PlaceConfig | None = None) -> PlaceDatabase:
        """Rebuild a database saved by to_arrays (same entries, order and redundancy scores).
        ValueError if it holds more entries than config.max_entries or the arrays disagree."""
        db = PlaceDatabase(config)
        n = len(arrays["ids"])
        if n > db.config.max_entries:
            raise ValueError(f"{n} entries exceed max_entries {db.config.max_entries}")
        names = ("desc", "ids", "seq", "segment", "pose", "nn", "nn_id")
        if any(len(arrays[k]) != n for k in names) or len(set(arrays["ids"].tolist())) != n:
            raise ValueError("inconsistent place-database arrays")
        if n:
            db.dim = int(arrays["desc"].shape[1])
            db._alloc(max(n, min(db.config.initial_capacity, db.config.max_entries)), db.dim)
            for name, arr in zip(names, db._arrays()):
                arr[:n] = arrays[name]
            db._n = n
            db._row = {int(k): r for r, k in enumerate(arrays["ids"])}
        db._next_seq = int(arrays["next_seq"])
        db.dropped = int(arrays["dropped"])
        return db

    def query(self, descriptor: np.ndarray, k: int = 5, *, exclude_recent: int = 0,
              exclude_ids: Collection[int] = (), min_score: float = -1.0,
              segment_id: int | None = None) -> list[Candidate]:
        """Up to k entries most similar to `descriptor`, best first, with score >= min_score.

        exclude_recent: skip the entries among the last n added (the current neighbourhood).
        exclude_ids: skip these keyframe ids. segment_id: only entries of that segment (None: all).
        """
        if k < 1 or self._n == 0:
            return []
        d = self._check_descriptor(descriptor)
        n = self._n
        scores = self._desc[:n] @ d
        keep = scores >= min_score
        if exclude_recent > 0:
            keep &= self._seq[:n] < self._next_seq - int(exclude_recent)
        if segment_id is not None:
            keep &= self._segment[:n] == int(segment_id)
        for kf in exclude_ids:
            r = self._row.get(int(kf))
            if r is not None:
                keep[r] = False
        rows = np.flatnonzero(keep)
        if rows.size > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        return [Candidate(int(self._ids[r]), float(scores[r]), int(self._segment[r]), self._pose[r].copy())
                for r in rows]


def _bin_mean(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Area average of a (H, W) or (H, W, C) image over an out_h x out_w grid of (nearly) equal cells
    -> (out_h, out_w[, C]) float64 (sums in float64: exact for uint8 input)."""
    H, W = img.shape[:2]
    if H < out_h or W < out_w:
        raise ValueError(f"image {W}x{H} smaller than the {out_w}x{out_h} grid")
    rows = np.linspace(0, H, out_h + 1).astype(np.intp)
    cols = np.linspace(0, W, out_w + 1).astype(np.intp)
    sums = np.add.reduceat(np.add.reduceat(img, rows[:-1], axis=0, dtype=np.float64), cols[:-1], axis=1)
    area = np.outer(np.diff(rows), np.diff(cols))
    return sums / area.reshape(area.shape + (1,) * (img.ndim - 2))


def _gray(rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _orientation_histograms(gray: np.ndarray) -> np.ndarray:
    """(GRID*GRID*ORIENT_BINS,) magnitude-weighted gradient-orientation histograms over a grid,
    soft-binned between the two nearest of ORIENT_BINS signed orientations, sqrt-compressed."""
    H, W = gray.shape
    h = max(GRID, int(round(H * GRAD_WIDTH / W)))
    small = _bin_mean(gray, h, min(GRAD_WIDTH, W))
    gy, gx = np.gradient(small)
    mag = np.hypot(gx, gy)
    pos = (np.arctan2(gy, gx) % (2 * np.pi)) * (ORIENT_BINS / (2 * np.pi))
    lo = np.floor(pos).astype(np.intp) % ORIENT_BINS
    frac = pos - np.floor(pos)
    hist = np.empty((ORIENT_BINS, GRID, GRID))
    for b in range(ORIENT_BINS):
        w = mag * ((lo == b) * (1.0 - frac) + (((lo + 1) % ORIENT_BINS) == b) * frac)
        hist[b] = _bin_mean(w, GRID, GRID)
    return np.sqrt(hist.transpose(1, 2, 0).reshape(-1))


def image_descriptor(rgb: np.ndarray) -> np.ndarray:
    """Classical global descriptor of an (H, W, 3) uint8 image -> (IMAGE_DESCRIPTOR_DIM,) float32, unit norm.

    Two L2-normalised parts, weighted 1 : HOG_WEIGHT: a THUMB_SIZE colour thumbnail with each
    channel standardised (zero mean, unit variance: exposure and white-balance invariant), and
    gradient-orientation histograms over a 4x4 grid, centred (texture layout). On the synthetic
    loop this ranked the right place first for every query of a second, offset lap, with a
    similarity margin >= 0.3 over places > 10 frames away (tests/test_slam_place_recognition.py).
    Not invariant to camera rotation (intended: it describes a view). A uniform image (covered
    camera) gets a fixed descriptor. Images narrower than GRAD_WIDTH are first enlarged by an integer
    factor (nearest pixel), so small cameras and strided keyframe images work. ValueError for a bad image.
    """
    img = np.asarray(rgb)
    _gray(img[:1, :1]) if img.ndim == 3 and img.size else _gray(img)  # type/shape check first
    f = -(-GRAD_WIDTH // max(1, img.shape[1]))
    if f > 1:
        img = np.repeat(np.repeat(img, f, axis=0), f, axis=1)
    gray = _gray(img)
    thumb = np.ascontiguousarray(_bin_mean(img, THUMB_SIZE[1], THUMB_SIZE[0]).transpose(2, 0, 1))
    thumb -= thumb.mean(axis=(1, 2), keepdims=True)
    thumb /= np.maximum(thumb.std(axis=(1, 2), keepdims=True), 1e-6)
    hog = _orientation_histograms(gray)
    hog -= hog.mean()
    parts = []
    for v, w in ((thumb.reshape(-1), 1.0), (hog, HOG_WEIGHT)):
        n = float(np.linalg.norm(v))
        parts.append(w * v / n if n > 1e-9 else np.zeros_like(v))
    out = np.concatenate(parts)
    n = float(np.linalg.norm(out))
    if n <= 1e-9:
        return np.full(out.shape, 1.0 / np.sqrt(out.size), np.float32)
    return (out / n).astype(np.float32)
