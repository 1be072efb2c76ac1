"""Simulated robot sensors for the metric-scale sources (docs/architecture.md#scale).

Ground truth stays separate: these are what a robot's drivers would publish, with documented noise.

- DepthSensor: a metric depth camera registered to the colour camera (same optical centre and axes)
  at an integer sub-resolution (`stride` 2 = half), 16UC1 millimetres (REP 118), with relative noise,
  millimetre quantisation, holes (0) and outliers (uniform 0.3..10 m).
- OdometrySensor: wheel odometry of a base_link that carries the camera: `odom -> base_link` per frame
  integrated from the true body increments with a translation scale drift and slip events (the wheels
  report motion the base did not make), plus the static `base_link -> camera_optical_frame`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vggt_ros.geometry.frames import T_BODY_OPTICAL
from vggt_ros.geometry.se3 import invert_T


@dataclass(frozen=True)
class DepthNoise:
    """rel_sigma: relative Gaussian depth noise (1 %); holes: fraction of pixels set to 0 (10 %);
    outliers: fraction replaced by a uniform 0.3..10 m depth (2 %); max_range_m: beyond is a hole."""

    rel_sigma: float = 0.01
    holes: float = 0.10
    outliers: float = 0.02
    max_range_m: float = 10.0


@dataclass(frozen=True)
class DepthSensor:
    """A depth image at 1/stride of the colour resolution, registered to the colour camera."""

    stride: int = 2
    noise: DepthNoise = DepthNoise()

    def intrinsics(self, K_color: np.ndarray) -> np.ndarray:
        """(3,3) K of the depth image: depth pixel (u, v) sees colour pixel (stride u, stride v)."""
        S = np.diag([1.0 / self.stride, 1.0 / self.stride, 1.0])
        return S @ np.asarray(K_color, dtype=np.float64)

    def measure(self, depth_m: np.ndarray, seed: int) -> np.ndarray:
        """(H/stride, W/stride) uint16 millimetres (0 = no return) from true depth (H, W) metres."""
        d = np.asarray(depth_m, dtype=np.float64)[:: self.stride, :: self.stride]
        rng = np.random.default_rng([int(seed), 13])
        nz = self.noise
        out = d * (1.0 + nz.rel_sigma * rng.standard_normal(d.shape))
        bad = rng.random(d.shape)
        out = np.where(bad < nz.outliers, rng.uniform(0.3, 10.0, d.shape), out)
        out[(bad >= nz.outliers) & (bad < nz.outliers + nz.holes)] = 0.0
        out[~np.isfinite(d) | (d <= 0) | (out > nz.max_range_m)] = 0.0
        return np.clip(np.round(out * 1000.0), 0, 65535).astype(np.uint16)


#: camera mounted 0.10 m ahead of and 0.20 m above base_link, looking forward (REP 103 body axes)
T_BASE_CAM_DEFAULT = np.array(
    [[1.0, 0, 0, 0.10], [0, 1.0, 0, 0.0], [0, 0, 1.0, 0.20], [0, 0, 0, 1.0]]
) @ T_BODY_OPTICAL


@dataclass(frozen=True)
class OdometryNoise:
    """drift: odometry translation = (1 + drift) x the true one (2 %); step_sigma_m: per-step noise;
    slip_every: a slip event every this many frames (0 = none), lasting slip_frames, during which each
    step reports slip_m extra metres along the base's x (wheels spinning)."""

    drift: float = 0.02
    step_sigma_m: float = 0.0005
    slip_every: int = 120
    slip_frames: int = 8
    slip_m: float = 0.02


@dataclass(frozen=True)
class OdometrySensor:
    """odom -> base_link from the camera's true poses; odom = base_link's first pose."""

    noise: OdometryNoise = OdometryNoise()
    T_base_cam: np.ndarray = field(default_factory=T_BASE_CAM_DEFAULT.copy)

    def poses(self, T_world_cam: np.ndarray, seed: int) -> np.ndarray:
        """(n,4,4) T_odom_base per frame from (n,4,4) true T_world_cam."""
        T_cam_base = invert_T(self.T_base_cam)
        base = np.asarray(T_world_cam, dtype=np.float64) @ T_cam_base
        rng = np.random.default_rng([int(seed), 17])
        nz = self.noise
        out = np.empty_like(base)
        out[0] = np.eye(4)
        for i in range(1, len(base)):
            step = invert_T(base[i - 1]) @ base[i]
            step[:3, 3] *= 1.0 + nz.drift
            step[:3, 3] += nz.step_sigma_m * rng.standard_normal(3)
            if nz.slip_every > 0 and i % nz.slip_every < nz.slip_frames and i >= nz.slip_every:
                step[0, 3] += nz.slip_m
            out[i] = out[i - 1] @ step
        return out
