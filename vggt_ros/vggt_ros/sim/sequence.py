"""Synthetic camera sequences: lazily rendered Frames at 30 Hz with ground truth.

A SyntheticSequence holds only poses and intrinsics; each frame is rendered on access
(~20 ms at 320x240) with a small LRU cache, so a 5000-frame sequence costs no memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vggt_ros.sim.scene import Scene, render
from vggt_ros.sim.trajectories import TRAJECTORIES
from vggt_ros.types import Frame

#: default first stamp (2023-11-14T22:13:20Z): nonzero, realistic epoch nanoseconds
DEFAULT_T0_NS = 1_700_000_000_000_000_000


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth of one frame.

    stamp_ns: image stamp. T_world_cam: (4,4) optical camera pose in the world (metres, z up).
    K: (3,3) intrinsics the frame was rendered with. depth: (H,W) float32 metres along optical z.
    """

    stamp_ns: int
    T_world_cam: np.ndarray
    K: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class Cover:
    """The camera covered for frames [start, start + length) (ground truth keeps moving).

    mode "black": the image is black (sensor noise 0..3 grey levels, seeded by the frame index);
    "frozen": the image repeats frame start - 1 (a stalled driver re-sending its last image).
    """

    start: int
    length: int
    mode: Literal["black", "frozen"] = "black"

    def __post_init__(self) -> None:
        if self.mode not in ("black", "frozen"):
            raise ValueError(f"unknown cover mode {self.mode!r}")
        if self.start < 1 or self.length < 1:
            raise ValueError(f"need start >= 1 and length >= 1, got {self.start}, {self.length}")

    def covers(self, i: int) -> bool:
        return self.start <= i < self.start + self.length


def intrinsics(width: int = 320, height: int = 240, hfov_deg: float = 65.0) -> np.ndarray:
    """(3,3) pinhole K with square pixels, horizontal FoV hfov_deg, principal point (W/2, H/2)
    (VGGT's convention, docs/architecture.md#reference-conventions)."""
    f = (width / 2.0) / np.tan(np.deg2rad(hfov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


class SyntheticSequence:
    """Frames rendered on demand from a Scene along poses (n,4,4) T_world_cam, stamped at rate_hz.

    K: (3,3) intrinsics at image size = (width, height) (default 320 x 240; note the order,
    unlike render's hw = (H, W); the property hw gives (H, W)).

    stamps: t0_ns + round(i * 1e9 / rate_hz). Indexing gives Frame (rgb, K, frame_id);
    ground_truth(stamp_ns) gives GroundTruth (where the camera really is: score against this);
    unknown stamps raise KeyError.

    sensor_noise: grey levels of sensor noise on every rendered view: each pixel channel gets a
    uniform integer in [-sensor_noise, sensor_noise], seeded by the frame index (1 by default: a real
    camera's two exposures never match to the bit, so a standing camera's frames differ while a
    stalled driver's repeats do not; 0 = the noise-free render).

    covers: frames whose image is replaced (Cover: black or frozen). image_truth(stamp_ns) is the
    ground truth of the view the image shows, the lookup to give a simulated predictor: on a
    frozen frame it is the repeated frame's pose and depth (the image cannot tell more), on every
    other frame the same as ground_truth. Black frames are the predictor's to detect from the
    image (sim.simulated_predictor does: a near-constant image gives low-confidence garbage).
    """

    def __init__(self, scene: Scene, poses: np.ndarray, K: np.ndarray, size: tuple[int, int] = (320, 240),
                 *, t0_ns: int = DEFAULT_T0_NS, rate_hz: float = 30.0,
                 frame_id: str = "camera_optical_frame", cache_size: int = 32,
                 covers: tuple[Cover, ...] = (), sensor_noise: int = 1) -> None:
        self.scene = scene
        self.poses = np.asarray(poses, dtype=np.float64)
        if self.poses.ndim != 3 or self.poses.shape[1:] != (4, 4):
            raise ValueError(f"poses must be (n,4,4), got {self.poses.shape}")
        free = scene.is_free(self.poses[:, :3, 3], margin=0.05)
        if not free.all():
            raise ValueError(f"camera {int(np.argmin(free))} is inside a box or within 5 cm of a wall")
        self.K = np.asarray(K, dtype=np.float64)
        self.width, self.height = int(size[0]), int(size[1])
        self.rate_hz = float(rate_hz)
        self.frame_id = frame_id
        n = len(self.poses)
        self.stamps_ns = int(t0_ns) + np.round(np.arange(n) * (1e9 / self.rate_hz)).astype(np.int64)
        self._index = {int(s): i for i, s in enumerate(self.stamps_ns)}
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = int(cache_size)
        if not 0 <= int(sensor_noise) <= 32:
            raise ValueError(f"sensor_noise must be 0..32 grey levels, got {sensor_noise}")
        self.sensor_noise = int(sensor_noise)
        self.covers = tuple(covers)
        for c in self.covers:
            if c.start + c.length > n:
                raise ValueError(f"cover {c} runs past the last frame ({n})")

    @property
    def hw(self) -> tuple[int, int]:
        return self.height, self.width

    def __len__(self) -> int:
        return len(self.poses)

    def _render(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(rgb with sensor noise, depth) of pose i, cached."""
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        rgb, depth = render(self.scene, self.K, self.poses[i], self.hw)
        if self.sensor_noise:
            n = self.sensor_noise
            noise = np.random.default_rng([i, 11]).integers(-n, n + 1, rgb.shape, dtype=np.int16)
            rgb = (rgb + noise).clip(0, 255).astype(np.uint8)
        out = (rgb, depth)
        out[0].setflags(write=False)
        out[1].setflags(write=False)
        self._cache[i] = out
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def __getitem__(self, i: int) -> Frame:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        i %= n
        rgb = self.image(i)
        return Frame(stamp_ns=int(self.stamps_ns[i]), rgb=rgb, K=self.K.copy(), frame_id=self.frame_id)

    def cover_at(self, i: int) -> Cover | None:
        """The Cover hiding frame i, or None."""
        return next((c for c in self.covers if c.covers(i)), None)

    def shown_index(self, i: int) -> int:
        """Index of the frame whose rendered view frame i's image shows (i unless frozen)."""
        c = self.cover_at(i)
        return c.start - 1 if c is not None and c.mode == "frozen" else i

    def image(self, i: int) -> np.ndarray:
        """(H, W, 3) uint8 image of frame i, covers applied (read-only)."""
        c = self.cover_at(i)
        if c is not None and c.mode == "black":
            img = np.random.default_rng([i, 7]).integers(0, 4, (self.height, self.width, 3), dtype=np.uint8)
            img.setflags(write=False)
            return img
        return self._render(self.shown_index(i))[0]

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def index_of(self, stamp_ns: int) -> int:
        try:
            return self._index[int(stamp_ns)]
        except KeyError:
            raise KeyError(f"no frame at stamp {stamp_ns} ns") from None

    def ground_truth_at(self, i: int) -> GroundTruth:
        _, depth = self._render(i)
        return GroundTruth(int(self.stamps_ns[i]), self.poses[i].copy(), self.K.copy(), depth)

    def ground_truth(self, stamp_ns: int) -> GroundTruth:
        """Ground truth of the frame stamped stamp_ns (KeyError if there is none)."""
        return self.ground_truth_at(self.index_of(stamp_ns))

    def image_truth(self, stamp_ns: int) -> GroundTruth:
        """Ground truth of the view frame stamp_ns's image shows (see the class doc), with its own stamp."""
        i = self.index_of(stamp_ns)
        j = self.shown_index(i)
        if j == i:
            return self.ground_truth_at(i)
        _, depth = self._render(j)
        return GroundTruth(int(self.stamps_ns[i]), self.poses[j].copy(), self.K.copy(), depth)


def make_sequence(kind: str, n_frames: int, *, width: int = 320, height: int = 240, hfov_deg: float = 65.0,
                  seed: int = 0, t0_ns: int = DEFAULT_T0_NS, rate_hz: float = 30.0,
                  frame_id: str = "camera_optical_frame") -> SyntheticSequence:
    """A sequence in the default room: kind in {"loop", "forward", "rotation", "still"}.

    seed changes the scene's textures (not the geometry). Size width x height, horizontal FoV
    hfov_deg (65 deg default: a typical webcam / RealSense colour FoV).
    """
    if kind not in TRAJECTORIES:
        raise ValueError(f"unknown trajectory {kind!r}; choose from {sorted(TRAJECTORIES)}")
    poses = TRAJECTORIES[kind](n_frames)
    return SyntheticSequence(Scene(seed=seed), poses, intrinsics(width, height, hfov_deg), (width, height),
                             t0_ns=t0_ns, rate_hz=rate_hz, frame_id=frame_id)
