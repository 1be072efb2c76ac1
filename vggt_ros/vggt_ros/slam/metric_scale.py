"""Metric scale from a robot sensor: observations, a bounded filter and the buffers that pair samples
with colour frames by stamp (docs/architecture.md#scale). ROS-free; the pipeline owns one MetricScale.

Units: the map's unit is whatever the first window fixed until a scale is applied. An observation is
the log of (metres per current map unit) seen in one window: depth = robust median of log(metric depth
/ pipeline depth) over pixels valid in both; odometry = robust median of log(|odometry increment| /
|map increment|) of camera centres over a horizon of increments with enough motion. The filter keeps the
map's remaining log scale error (0 after each correction) with a variance; each window's correction is
its Kalman step, bounded by `max_step` once a first estimate exists. The pipeline applies a correction
to the whole map at once (Pipeline._rescale_world), so every output is in the same units.

States (WindowStats.scale_state): 'none' (no source configured), 'not_metric_yet' (no observation
accepted yet: outputs are NOT metres), 'metric' (this window's observation was used), 'held' (metric,
but this window gave no usable observation: standing still, rotating in place, sensor gap).
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from vggt_ros.geometry.alignment import ROBUST_SIGMA, median_and_sigma
from vggt_ros.geometry.se3 import Sim3, rotation_angle
from vggt_ros.slam.config import ScaleConfig


class ScaleState(str, Enum):
    NONE = "none"
    NOT_METRIC_YET = "not_metric_yet"
    METRIC = "metric"
    HELD = "held"


@dataclass(frozen=True)
class ScaleObservation:
    """log_scale: log(metres per map unit); sigma: its standard deviation (relative scale error);
    count: samples that agreed (pixels or increments)."""

    log_scale: float
    sigma: float
    count: int


class Rejected(ValueError):
    """An observation that cannot be used; reason is a stable counter key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def robust_log_median(log_ratios: np.ndarray, cfg: ScaleConfig, min_count: int) -> ScaleObservation:
    """Median of log ratios after rejecting those beyond outlier_sigmas robust sigmas; sigma = robust
    spread of the inliers / sqrt(count), floored at cfg.min_sigma. Raises Rejected."""
    r = np.asarray(log_ratios, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size < min_count:
        raise Rejected("too_few_samples")
    med, spread = median_and_sigma(r)
    inl = r[np.abs(r - med) <= cfg.outlier_sigmas * spread]
    if inl.size < max(min_count, cfg.min_inlier_ratio * r.size):
        raise Rejected("inconsistent")
    med = float(np.median(inl))
    spread = ROBUST_SIGMA * float(np.median(np.abs(inl - med)))
    return ScaleObservation(med, max(spread / math.sqrt(inl.size), cfg.min_sigma), int(inl.size))


def resample_to(depth_m: np.ndarray, K_m: np.ndarray, K: np.ndarray, size: tuple[int, int],
                stride: int = 1) -> np.ndarray:
    """Metric depth (h, w) with intrinsics K_m seen at the pixels of a camera (K, size = (W, H)) with
    the same optical centre and axes (a registered depth image): nearest sample per pixel (holes stay
    holes), NaN outside. Returns (ceil(H/stride), ceil(W/stride)) float32 at pixels (u, v) =
    stride x index."""
    W, H = int(size[0]), int(size[1])
    u, v = np.meshgrid(np.arange(0, W, stride, dtype=np.float64), np.arange(0, H, stride, dtype=np.float64))
    A = np.asarray(K_m, dtype=np.float64) @ np.linalg.inv(np.asarray(K, dtype=np.float64))
    um = A[0, 0] * u + A[0, 1] * v + A[0, 2]
    vm = A[1, 0] * u + A[1, 1] * v + A[1, 2]
    ui, vi = np.rint(um).astype(np.intp), np.rint(vm).astype(np.intp)
    h, w = depth_m.shape
    inside = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
    out = np.full(u.shape, np.nan, np.float32)
    out[inside] = depth_m[vi[inside], ui[inside]]
    return out


def depth_observation(depth_map: np.ndarray, K: np.ndarray, depth_m: np.ndarray, K_m: np.ndarray,
                      cfg: ScaleConfig, stride: int = 2) -> ScaleObservation:
    """One frame: the pipeline's depth (H, W) map units, NaN invalid (confidence already applied), with
    K, against a registered metric depth (h, w) metres with K_m. Raises Rejected."""
    H, W = depth_map.shape
    m = resample_to(depth_m, K_m, K, (W, H), stride)
    d = depth_map[::stride, ::stride].astype(np.float64)
    ok_m = np.isfinite(m) & (m >= cfg.min_depth_m) & (m <= cfg.max_depth_m)
    if not ok_m.any():
        raise Rejected("no_valid_metric_depth")
    ok = ok_m & np.isfinite(d) & (d > 0)
    if int(ok.sum()) < cfg.min_pixels:
        raise Rejected("too_few_pixels")
    return robust_log_median(np.log(m[ok] / d[ok]), cfg, cfg.min_pixels)


def check_metric_depth(depth_m: np.ndarray, K_m: np.ndarray) -> str | None:
    """Why a metric depth sample cannot be used at all (None: usable). NaN/inf are holes, not errors."""
    d, K = np.asarray(depth_m), np.asarray(K_m)
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2 or d.dtype.kind != "f":
        return "bad_shape"
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        return "bad_intrinsics"
    h, w = d.shape
    if not (0 <= K[0, 2] <= w and 0 <= K[1, 2] <= h):
        return "size_mismatch"  # K belongs to another resolution
    if not np.any(np.isfinite(d) & (d > 0)):
        return "no_valid_metric_depth"
    return None


@dataclass
class StampBuffer:
    """Samples by stamp (ns), sorted; nearest-within-tolerance lookup; bounded."""

    max_size: int
    stamps: list[int] = field(default_factory=list)
    items: list[object] = field(default_factory=list)
    used: set[int] = field(default_factory=set)

    def add(self, stamp_ns: int, item: object) -> None:
        i = bisect.bisect_left(self.stamps, stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == stamp_ns:
            self.items[i] = item
            return
        self.stamps.insert(i, stamp_ns)
        self.items.insert(i, item)

    def nearest(self, stamp_ns: int, max_dt_ns: int) -> object | None:
        i = bisect.bisect_left(self.stamps, stamp_ns)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(self.stamps) and abs(self.stamps[j] - stamp_ns) <= max_dt_ns:
                if best is None or abs(self.stamps[j] - stamp_ns) < abs(self.stamps[best] - stamp_ns):
                    best = j
        if best is None:
            return None
        self.used.add(self.stamps[best])
        return self.items[best]

    def expire(self, before_ns: int) -> int:
        """Drop samples stamped before `before_ns` and any beyond max_size (oldest first); returns how
        many of the dropped were never matched."""
        n = bisect.bisect_left(self.stamps, before_ns)
        n = max(n, len(self.stamps) - self.max_size)
        unused = sum(1 for s in self.stamps[:n] if s not in self.used)
        self.used -= set(self.stamps[:n])
        del self.stamps[:n], self.items[:n]
        return unused


@dataclass
class ScaleFilter:
    """Log-scale filter over windows (module doc). log_scale: total applied log(metres per first-window
    unit); var: variance of the map's remaining log error."""

    cfg: ScaleConfig
    log_scale: float = 0.0
    var: float = math.inf
    metric: bool = False

    def step(self, obs: ScaleObservation | None) -> float:
        """This window's correction ratio (multiply the map by it); 1.0 when holding."""
        if self.metric:
            self.var += self.cfg.process_sigma**2
        if obs is None:
            return 1.0
        R = obs.sigma**2
        if not self.metric:
            step, self.var, self.metric = obs.log_scale, R, True
        else:
            gain = self.var / (self.var + R)
            bound = math.log1p(self.cfg.max_step)
            step = float(np.clip(gain * obs.log_scale, -bound, bound))
            self.var = (1.0 - gain) * self.var
        self.log_scale += step
        return math.exp(step)

    @property
    def scale(self) -> float:
        return math.exp(self.log_scale)

    @property
    def sigma(self) -> float:
        return math.sqrt(self.var) if self.metric else math.nan


@dataclass
class OdometryIncrements:
    """Camera-centre increments of the map (map units) and of odometry (metres) between samples at least
    odom_min_step_m apart in odometry; the newest odom_horizon are kept."""

    cfg: ScaleConfig
    last: tuple[int, np.ndarray, np.ndarray] | None = None  # stamp, c_map, T_odom_cam
    pairs: list[tuple[float, float]] = field(default_factory=list)  # (|d map|, |d odom|)
    added: int = 0  # increments ever added (the horizon keeps the newest)

    def add(self, stamp_ns: int, c_map: np.ndarray, T_odom_cam: np.ndarray) -> str | None:
        """One posed frame (camera centre in the map) with its odometry pose; a rejection reason or None."""
        if self.last is None:
            self.last = (stamp_ns, c_map, T_odom_cam)
            return None
        s0, m0, T0 = self.last
        d_odom = float(np.linalg.norm(T_odom_cam[:3, 3] - T0[:3, 3]))
        dt = max((stamp_ns - s0) * 1e-9, 1e-3)
        if d_odom / dt > self.cfg.odom_max_speed_mps:
            self.last = (stamp_ns, c_map, T_odom_cam)  # a TF jump: restart the chain after it
            return "odometry_jump"
        if d_odom < self.cfg.odom_min_step_m:
            return None
        turn = math.degrees(rotation_angle(T0[:3, :3].T @ T_odom_cam[:3, :3]))
        if turn > self.cfg.odom_max_turn_deg_per_m * d_odom:
            self.last = (stamp_ns, c_map, T_odom_cam)  # turning in place: no scale information, restart
            return None
        self.pairs.append((float(np.linalg.norm(c_map - m0)), d_odom))
        self.added += 1
        del self.pairs[: max(0, len(self.pairs) - self.cfg.odom_horizon)]
        self.last = (stamp_ns, c_map, T_odom_cam)
        return None

    def rescale(self, ratio: float) -> None:
        if self.last is not None:
            self.last = (self.last[0], self.last[1] * ratio, self.last[2])
        self.pairs = [(dm * ratio, do) for dm, do in self.pairs]

    def observation(self) -> ScaleObservation:
        dm = np.array([p[0] for p in self.pairs])
        do = np.array([p[1] for p in self.pairs])
        if dm.size == 0 or not np.any(dm > 0):
            raise Rejected("no_motion")
        with np.errstate(divide="ignore"):
            return robust_log_median(np.log(do / dm), self.cfg, self.cfg.odom_min_increments)


@dataclass
class WindowFrame:
    """One new frame of an accepted window as the scale estimator needs it.
    depth: (H, W) map units NaN invalid; K: its intrinsics; T_world_cam: (4,4) pose in map units."""

    stamp_ns: int
    depth: np.ndarray
    K: np.ndarray
    T_world_cam: np.ndarray


class MetricScale:
    """The pipeline's metric scale: sensor buffers, observations, filter, counters (module doc)."""

    def __init__(self, cfg: ScaleConfig) -> None:
        self.cfg = cfg
        self.filter = ScaleFilter(cfg)
        self.depth = StampBuffer(cfg.max_buffer)
        self.odom = StampBuffer(cfg.max_buffer * 16)
        self.increments = OdometryIncrements(cfg)
        self.rejected: Counter[str] = Counter()
        self.samples = 0
        self.observations = 0
        self.state = ScaleState.NONE if cfg.source == "none" else ScaleState.NOT_METRIC_YET
        self._newest_window_ns = -(2**62)
        self.frame_log_ratio: dict[int, float] = {}  # last window, depth: stamp -> log(metric / map depth)

    @property
    def enabled(self) -> bool:
        return self.cfg.source != "none"

    def push_depth(self, stamp_ns: int, depth_m: np.ndarray, K_m: np.ndarray) -> str | None:
        """Buffer a metric depth image (metres, NaN/0 = hole); returns a rejection reason or None."""
        if self.cfg.source != "depth":
            return None
        why = check_metric_depth(depth_m, K_m)
        if why is None and stamp_ns < self._newest_window_ns - self._max_dt_ns:
            why = "stale_stamp"
        if why is not None:
            self.rejected[why] += 1
            return why
        self.samples += 1
        self.depth.add(int(stamp_ns), (np.asarray(depth_m, np.float32), np.asarray(K_m, np.float64)))
        return None

    def push_odometry(self, stamp_ns: int, T_odom_cam: np.ndarray) -> str | None:
        """Buffer an odometry pose (metres); returns a rejection reason or None."""
        if self.cfg.source != "odometry":
            return None
        T = np.asarray(T_odom_cam, dtype=np.float64)
        why = None
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            why = "bad_pose"
        elif stamp_ns < self._newest_window_ns - self._max_dt_ns:
            why = "stale_stamp"
        if why is not None:
            self.rejected[why] += 1
            return why
        self.samples += 1
        self.odom.add(int(stamp_ns), T)
        return None

    def depth_image(self, stamp_ns: int, K: np.ndarray, hw: tuple[int, int]) -> np.ndarray | None:
        """The metric depth paired with the colour frame stamped stamp_ns, resampled to its pixels:
        (H, W) float32 metres for intrinsics K (3,3) and hw = (H, W), NaN outside min_depth_m..max_depth_m
        and in holes. None when the source is not depth or no sample pairs with the frame."""
        if self.cfg.source != "depth":
            return None
        hit = self.depth.nearest(int(stamp_ns), self._max_dt_ns)
        if not isinstance(hit, tuple):
            return None
        m = resample_to(hit[0], hit[1], K, (int(hw[1]), int(hw[0])))
        m[~((m >= self.cfg.min_depth_m) & (m <= self.cfg.max_depth_m))] = np.nan
        return m

    @property
    def _max_dt_ns(self) -> int:
        return int(round(self.cfg.max_dt_s * 1e9))

    def window(self, frames: list[WindowFrame]) -> float:
        """An accepted window's new frames (before any correction): the correction ratio to apply to the
        whole map (1.0 = none), state updated."""
        self.frame_log_ratio = {}
        if not self.enabled or not frames:
            return 1.0
        obs = self._depth_obs(frames) if self.cfg.source == "depth" else self._odometry_obs(frames)
        newest = max(f.stamp_ns for f in frames)
        self._newest_window_ns = max(self._newest_window_ns, newest)
        buf = self.depth if self.cfg.source == "depth" else self.odom
        unused = buf.expire(newest - self._max_dt_ns)
        if unused and self.cfg.source == "depth":
            self.rejected["no_frame_within_max_dt"] += unused
        ratio = self.filter.step(obs)
        if obs is not None:
            self.observations += 1
            self.state = ScaleState.METRIC
        elif self.filter.metric:
            self.state = ScaleState.HELD
        if ratio != 1.0:
            self.increments.rescale(ratio)
        return ratio

    def _depth_obs(self, frames: list[WindowFrame]) -> ScaleObservation | None:
        per_frame: list[ScaleObservation] = []
        for f in frames:
            hit = self.depth.nearest(f.stamp_ns, self._max_dt_ns)
            if not isinstance(hit, tuple):
                continue
            depth_m: np.ndarray = hit[0]
            K_m: np.ndarray = hit[1]
            try:
                per_frame.append(depth_observation(f.depth, f.K, depth_m, K_m, self.cfg))
                self.frame_log_ratio[f.stamp_ns] = per_frame[-1].log_scale
            except Rejected as rej:
                self.rejected[rej.reason] += 1
        if not per_frame:
            return None
        logs = np.array([o.log_scale for o in per_frame])
        med = float(np.median(logs))
        within = float(np.median([o.sigma for o in per_frame]))
        between = ROBUST_SIGMA * float(np.median(np.abs(logs - med))) if len(logs) > 2 else within
        sigma = max(math.hypot(within, between) / math.sqrt(len(logs)), self.cfg.min_sigma)
        return ScaleObservation(med, sigma, sum(o.count for o in per_frame))

    def _odometry_obs(self, frames: list[WindowFrame]) -> ScaleObservation | None:
        before = self.increments.added
        for f in sorted(frames, key=lambda f: f.stamp_ns):
            T = self.odom.nearest(f.stamp_ns, self._max_dt_ns)
            if not isinstance(T, np.ndarray):
                continue
            why = self.increments.add(f.stamp_ns, f.T_world_cam[:3, 3].copy(), T)
            if why is not None:
                self.rejected[why] += 1
        if self.increments.added == before or len(self.increments.pairs) < self.cfg.odom_min_increments:
            return None  # no new increment with enough motion (hold), or not enough travel yet
        try:
            return self.increments.observation()
        except Rejected as rej:
            self.rejected[rej.reason] += 1
            return None

    def forget_motion(self) -> None:
        """Drop the odometry increments (the map moved under them: loop closure, new segment)."""
        self.increments = OdometryIncrements(self.cfg)

    def follow_correction(self, correction_at: Callable[[int], Sim3 | None]) -> None:
        """The emitted poses moved a little (a window's anchor-link solve): the last odometry sample's map
        position follows its frame's world-frame correction (correction_at(stamp_ns), None: unmoved), so the
        next increment does not count the move as motion."""
        last = self.increments.last
        C = correction_at(last[0]) if last is not None else None
        if last is not None and C is not None:
            self.increments.last = (last[0], C.apply(last[1]), last[2])

    def summary(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "scale": self.filter.scale if self.filter.metric else math.nan,
            "sigma": self.filter.sigma,
            "samples": self.samples,
            "observations": self.observations,
            "rejected": dict(self.rejected),
        }
