"""A textured indoor room rendered by ray casting (numpy + OpenCV, no GPU).

World frame: metres, z up, floor at z = 0. The room is an axis-aligned box with several
axis-aligned boxes (furniture) standing in it. Each surface has a procedural texture
(value noise at several octaves, checkers, stripes, blobs, rectangles, per-surface colour)
so feature trackers have something to hold, and a fixed Lambertian shade per face, so a
surface point has the same colour from every view (photo-consistent).

Cameras are OpenCV optical frames (x right, y down, z forward); pixel (u, v) has coordinates
u = 0..W-1, v = 0..H-1 without a +0.5 offset, the convention of geometry.depth. Rendered depth
is metric, along the optical z axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from vggt_ros.geometry.depth import pixel_grid

#: texture resolution (texels per metre) and tile size (texels); tiles repeat every 5.12 m
TEXELS_PER_M = 100.0
TEX_SIZE = 512


@dataclass(frozen=True)
class Box:
    """Axis-aligned box [lo, hi] in world metres with a texture index (into Scene.textures).

    tint: RGB gain of its faces; None draws one from the scene's seed (U(0.8, 1.15) per channel).
    Give an explicit tint to make two boxes look identical (e.g. the twin rooms of sim.worlds).
    """

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    texture: int
    tint: tuple[float, float, float] | None = None


def _value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1], (size, size) float32, from a cells x cells random grid (bicubic)."""
    g = rng.random((cells, cells)).astype(np.float32)
    return np.clip(cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def _fractal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multi-octave noise in [0, 1] with features from ~4 texels to ~1/4 tile."""
    acc = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for cells in (4, 12, 32, 96, 200):
        acc += amp * _value_noise(rng, size, cells)
        total += amp
        amp *= 0.6
    acc /= total
    return (acc - acc.min()) / max(float(acc.max() - acc.min()), 1e-6)


def _make_texture(rng: np.random.Generator, kind: str, size: int = TEX_SIZE) -> np.ndarray:
    """(size, size, 3) uint8 RGB texture of a given kind: noise, checker, stripes, blobs, planks, posters."""
    base = rng.uniform(60, 210, 3).astype(np.float32)
    second = rng.uniform(30, 230, 3).astype(np.float32)
    n = _fractal(rng, size)[..., None]
    img = base * (0.5 + 1.0 * n)  # every kind carries multi-scale noise for texture
    yy, xx = np.mgrid[0:size, 0:size]
    if kind == "checker":
        c = rng.integers(24, 64)
        mask = ((xx // c + yy // c) % 2 == 0)[..., None]
        img = np.where(mask, img, second * (0.7 + 0.6 * n))
    elif kind == "stripes":
        period = rng.integers(20, 60)
        ang = rng.uniform(0, np.pi)
        s = (np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period) > 0.3)[..., None]
        img = np.where(s, second * (0.8 + 0.4 * n), img)
    elif kind == "planks":
        w = rng.integers(30, 50)
        row = yy // w
        offs = (row * 97) % 211
        seam = ((yy % w) < 2) | (((xx + offs) % 200) < 2)
        grain = 0.85 + 0.3 * np.sin((xx + 13 * row) / rng.uniform(3, 8))[..., None]
        img = img * grain
        img[seam] *= 0.45
    elif kind == "blobs":
        img = img.copy()
        for _ in range(60):
            col = rng.uniform(20, 235, 3).tolist()
            cv2.circle(img, (int(rng.integers(0, size)), int(rng.integers(0, size))),
                       int(rng.integers(6, 40)), col, -1, lineType=cv2.LINE_AA)
    elif kind == "posters":
        img = img.copy()
        for _ in range(14):
            x0, y0 = (int(v) for v in rng.integers(0, size - 40, 2))
            pw, ph = (int(v) for v in rng.integers(30, 140, 2))
            col = rng.uniform(20, 235, 3).tolist()
            cv2.rectangle(img, (x0, y0), (x0 + pw, y0 + ph), col, -1)
            cv2.rectangle(img, (x0, y0), (x0 + pw, y0 + ph), (20.0, 20.0, 20.0), 3)
    return np.clip(img, 0, 255).astype(np.uint8)


@lru_cache(maxsize=4)
def _textures(seed: int, kinds: tuple[str, ...]) -> np.ndarray:
    """All textures of a scene (cached: generating them takes ~0.3 s)."""
    rng = np.random.default_rng(seed)
    tex = np.stack([_make_texture(rng, k) for k in kinds])
    tex.setflags(write=False)
    return tex


def _default_boxes() -> list[Box]:
    return [
        Box((-0.4, -0.4, 0.0), (0.4, 0.4, 1.0), 6),   # central pillar/table (occluder for the loop)
        Box((2.9, 1.5, 0.0), (3.9, 2.9, 0.9), 7),      # corner box
        Box((3.1, 1.8, 0.9), (3.6, 2.4, 1.3), 8),      # smaller box stacked on it
        Box((-3.9, -2.9, 0.0), (-2.8, -1.7, 1.6), 9),  # tall cabinet
        Box((-3.6, 1.8, 0.0), (-2.4, 2.9, 0.6), 10),   # low crate
        Box((1.0, -2.9, 0.0), (2.2, -2.3, 1.2), 11),   # sideboard along the wall
    ]


@dataclass
class Scene:
    """Textured indoor room: bounds room_lo..room_hi (metres, z up) and furniture boxes.

    Surface ids: object k (0 = the room, k >= 1 = boxes[k-1]) has faces k*6 + axis*2 + side
    (side 1 = the face at the upper coordinate). surf_tex / surf_gain give each face a texture
    and an RGB gain (Lambertian shade x tint).
    """

    room_lo: np.ndarray = field(default_factory=lambda: np.array([-4.0, -3.0, 0.0]))
    room_hi: np.ndarray = field(default_factory=lambda: np.array([4.0, 3.0, 2.8]))
    boxes: list[Box] = field(default_factory=_default_boxes)
    seed: int = 0

    def __post_init__(self) -> None:
        self.room_lo = np.asarray(self.room_lo, dtype=np.float64)
        self.room_hi = np.asarray(self.room_hi, dtype=np.float64)
        # room faces: 0 -x wall, 1 +x wall, 2 -y wall, 3 +y wall, 4 floor, 5 ceiling
        kinds = ["posters", "stripes", "blobs", "posters", "planks", "noise",
                 "checker", "stripes", "blobs", "checker", "stripes", "blobs"]
        n_tex = max(len(kinds), 1 + max((b.texture for b in self.boxes), default=0))
        kinds += ["noise"] * (n_tex - len(kinds))
        self.textures = _textures(self.seed, tuple(kinds))  # (T, S, S, 3) uint8, read-only
        rng = np.random.default_rng([self.seed, 1])
        n_surf = 6 * (1 + len(self.boxes))
        self.surf_tex = np.zeros(n_surf, np.intp)
        self.surf_tex[:6] = [0, 1, 2, 3, 4, 5]
        light = np.array([0.35, 0.55, 0.76])
        light /= np.linalg.norm(light)
        gain = np.ones((n_surf, 3), np.float32)
        for k in range(1 + len(self.boxes)):
            tint = np.ones(3) if k == 0 else rng.uniform(0.8, 1.15, 3)  # always drawn: same stream
            if k > 0 and self.boxes[k - 1].tint is not None:
                tint = np.asarray(self.boxes[k - 1].tint, dtype=np.float64)
            for axis in range(3):
                for side in range(2):
                    s = k * 6 + axis * 2 + side
                    if k > 0:
                        self.surf_tex[s] = self.boxes[k - 1].texture
                    # outward normal of a box face; the room's faces point inward
                    sign = (1.0 if side else -1.0) * (-1.0 if k == 0 else 1.0)
                    shade = 0.55 + 0.45 * abs(sign * light[axis]) + (0.1 if sign * light[axis] > 0 else 0.0)
                    gain[s] = shade * tint
        self.surf_gain = gain
        self._lo = np.array([b.lo for b in self.boxes], np.float64).reshape(-1, 3)
        self._hi = np.array([b.hi for b in self.boxes], np.float64).reshape(-1, 3)

    def is_free(self, pts: np.ndarray, margin: float = 0.2) -> np.ndarray:
        """Bool (N,): points at least `margin` metres inside the room and outside every box."""
        p = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        ok = np.all((p > self.room_lo + margin) & (p < self.room_hi - margin), axis=1)
        for lo, hi in zip(self._lo, self._hi):
            inside = np.all((p > lo - margin) & (p < hi + margin), axis=1)
            ok &= ~inside
        return ok

    def box_distance(self, pts: np.ndarray) -> np.ndarray:
        """(N,) Euclidean distance (metres) from points (N,3) to the nearest box (0 inside; inf: no box)."""
        p = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        if not len(self._lo):
            return np.full(len(p), np.inf)
        gap = np.maximum(np.maximum(self._lo[None] - p[:, None], p[:, None] - self._hi[None]), 0.0)
        return np.linalg.norm(gap, axis=2).min(axis=1)

    def _faces(self, o: np.ndarray) -> list[tuple[int, int, int, float]]:
        """Box faces that can face a camera at o: (surface id, axis, side, plane coordinate)."""
        faces = []
        for k, (lo, hi) in enumerate(zip(self._lo, self._hi), start=1):
            for a in range(3):
                if o[a] < lo[a]:
                    faces.append((k * 6 + a * 2, a, 0, float(lo[a])))
                elif o[a] > hi[a]:
                    faces.append((k * 6 + a * 2 + 1, a, 1, float(hi[a])))
        return faces

    def cast(self, origin: np.ndarray, dirs: np.ndarray,
             regions: dict[int, tuple[slice, ...] | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ray cast from one origin (3,) along dirs (3, ...) (component-first layout).

        Returns (t (...) ray parameter of the first hit, surface id (...)). The hit point is
        origin + t * dirs; with dirs having unit optical-z component, t is the depth.
        regions optionally maps a surface id to the index region (slices of dirs[0]) that can
        see it, or None when it is out of view (a culling hint from render); absent ids are
        tested everywhere.
        """
        o = np.asarray(origin, dtype=np.float64)
        shape = dirs.shape[1:]
        t = np.full(shape, np.inf)
        surf = np.zeros(shape, np.intp)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for a in range(3):  # exit through the room's walls/floor/ceiling (origin inside)
                d = dirs[a]
                ta = (np.where(d > 0, self.room_hi[a], self.room_lo[a]) - o[a]) / d
                closer = (ta > 0) & (ta < t)
                np.copyto(t, ta, where=closer)
                np.copyto(surf, a * 2 + (d > 0), where=closer)
            for sid, a, _side, plane in self._faces(o):
                k = sid // 6
                lo, hi = self._lo[k - 1], self._hi[k - 1]
                sl = regions.get(sid, ...) if regions is not None else ...
                if sl is None:
                    continue
                b, c = [ax for ax in range(3) if ax != a]
                tv = t[sl]
                ta = (plane - o[a]) / dirs[a][sl]
                pb = o[b] + ta * dirs[b][sl]
                pc = o[c] + ta * dirs[c][sl]
                hit = (ta > 0) & (ta < tv) & (pb >= lo[b]) & (pb <= hi[b]) & (pc >= lo[c]) & (pc <= hi[c])
                np.copyto(tv, ta, where=hit)
                np.copyto(surf[sl], sid, where=hit)
        return t, surf

    def face_corners(self, sid: int) -> np.ndarray:
        """(4,3) world corners of box face sid (k*6 + axis*2 + side, k >= 1)."""
        k, a, side = sid // 6, (sid % 6) // 2, sid % 2
        lo, hi = self._lo[k - 1], self._hi[k - 1]
        b, c = [ax for ax in range(3) if ax != a]
        out = np.empty((4, 3))
        out[:, a] = hi[a] if side else lo[a]
        out[:, b] = [lo[b], hi[b], hi[b], lo[b]]
        out[:, c] = [lo[c], lo[c], hi[c], hi[c]]
        return out

    def shade(self, pts: np.ndarray, surf: np.ndarray) -> np.ndarray:
        """RGB uint8 (..., 3) of surface points pts (3, ...) (component-first) on surfaces surf (...)."""
        axis = (surf % 6) // 2
        # in-surface coordinates: the two world axes other than the face's normal axis
        pu = np.where(axis == 0, pts[1], pts[0])
        pv = np.where(axis == 2, pts[1], pts[2])
        ui = np.floor(pu * TEXELS_PER_M).astype(np.intp) % TEX_SIZE
        vi = np.floor(pv * TEXELS_PER_M).astype(np.intp) % TEX_SIZE
        col = self.textures[self.surf_tex[surf], vi, ui].astype(np.float32) * self.surf_gain[surf]
        return np.clip(col, 0, 255).astype(np.uint8)


_RAY_CACHE: dict[tuple, np.ndarray] = {}


def camera_rays(K: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(3, H, W) ray directions in the optical frame with z = 1 (so the ray parameter is depth)."""
    K = np.asarray(K, dtype=np.float64)
    key = (tuple(np.round(K.reshape(-1), 9)), tuple(hw))
    rays = _RAY_CACHE.get(key)
    if rays is None:
        uv = pixel_grid(hw)
        rays = np.stack([(uv[..., 0] - K[0, 2]) / K[0, 0], (uv[..., 1] - K[1, 2]) / K[1, 1],
                         np.ones(hw)])
        if len(_RAY_CACHE) > 16:
            _RAY_CACHE.clear()
        _RAY_CACHE[key] = rays
    return rays


def _regions(scene: Scene, K: np.ndarray, T_world_cam: np.ndarray, hw: tuple[int, int]
             ) -> dict[int, tuple[slice, ...] | None]:
    """Image rectangle each candidate box face can cover (None: not in view); faces crossing
    the camera plane are tested everywhere (absent from the dict)."""
    H, W = hw
    R, o = T_world_cam[:3, :3], T_world_cam[:3, 3]
    out: dict[int, tuple[slice, ...] | None] = {}
    for sid, *_ in scene._faces(o):
        c = (scene.face_corners(sid) - o) @ R
        if np.any(c[:, 2] <= 1e-6):
            continue
        u = K[0, 0] * c[:, 0] / c[:, 2] + K[0, 2]
        v = K[1, 1] * c[:, 1] / c[:, 2] + K[1, 2]
        u0, u1 = max(int(np.floor(u.min())) - 1, 0), min(int(np.ceil(u.max())) + 2, W)
        v0, v1 = max(int(np.floor(v.min())) - 1, 0), min(int(np.ceil(v.max())) + 2, H)
        out[sid] = (slice(v0, v1), slice(u0, u1)) if (u0 < u1 and v0 < v1) else None
    return out


def render(scene: Scene, K: np.ndarray, T_world_cam: np.ndarray, hw: tuple[int, int]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Render (rgb (H,W,3) uint8, depth (H,W) float32 metres along optical z) of the scene.

    T_world_cam: (4,4) optical camera pose (maps camera points into the world). hw = (H, W).
    The camera must be inside the room and outside every box (ValueError otherwise).
    """
    T = np.asarray(T_world_cam, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    o = T[:3, 3]
    if not scene.is_free(o[None], margin=0.0)[0]:
        raise ValueError(f"camera centre {o} is outside the room or inside a box")
    rays_c = camera_rays(K, hw)
    dirs = np.einsum("ij,jhw->ihw", T[:3, :3], rays_c)
    t, surf = scene.cast(o, dirs, _regions(scene, K, T, hw))
    pts = o[:, None, None] + t * dirs
    rgb = scene.shade(pts, surf)
    return rgb, t.astype(np.float32)
