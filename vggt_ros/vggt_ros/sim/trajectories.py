"""Camera trajectories: (n, 4, 4) T_world_cam of an OpenCV optical camera, pure functions.

World frame z up (Scene). TRAJECTORIES (loop, forward, rotation, still) stay at least 0.3 m from
walls and boxes of the default room (checked by the tests with Scene.is_free). figure_eight and
laps_loop are made for sim.worlds.pillar_hall (close passes at 0.35-0.55 m from pillars);
waypoint_path builds paths such as the twin-room tour of sim.cases. Vectorised: 5000 poses in ~1 ms.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_UP = np.array([0.0, 0.0, 1.0])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = _UP) -> np.ndarray:
    """T_world_cam (...,4,4) of optical cameras at eye (...,3) looking at target (...,3).

    No roll: image x is horizontal and image y points along -up. Raises ValueError when a
    viewing direction is parallel to up.
    """
    eye = np.asarray(eye, dtype=np.float64)
    f = np.asarray(target, dtype=np.float64) - eye
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    right = np.cross(f, up)
    n = np.linalg.norm(right, axis=-1, keepdims=True)
    if np.any(n < 1e-9):
        raise ValueError("viewing direction is parallel to up")
    right = right / n
    down = np.cross(f, right)
    T = np.zeros(eye.shape[:-1] + (4, 4))
    T[..., :3, 0], T[..., :3, 1], T[..., :3, 2], T[..., :3, 3] = right, down, f, eye
    T[..., 3, 3] = 1.0
    return T


def _direction(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    """Unit viewing directions (...,3) from yaw about z (from +x) and pitch (up positive), radians."""
    return np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)], -1)


def _check_n(n: int) -> int:
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return int(n)


def loop(n: int, *, center: tuple[float, float] = (0.0, 0.0), radii: tuple[float, float] = (2.4, 1.8),
         height: float = 1.4, bob: float = 0.1, target_height: float = 0.7, lead: float = 0.6
         ) -> np.ndarray:
    """Closed loop: one lap of an ellipse (radii in metres) around the central pillar, looking inward.

    The camera aims at the room centre shifted `lead` metres along the motion, so it looks
    roughly inward with some yaw variation and sees the pillar occlude the far walls. The height
    bobs by +-bob. Frame n-1 equals frame 0 exactly (the loop closes).
    """
    n = _check_n(n)
    a = 2 * np.pi * np.arange(n) / max(n - 1, 1)
    eye = np.stack([center[0] + radii[0] * np.cos(a), center[1] + radii[1] * np.sin(a),
                    height + bob * np.sin(2 * a)], -1)
    tangent = np.stack([-radii[0] * np.sin(a), radii[1] * np.cos(a), np.zeros(n)], -1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    target = np.array([center[0], center[1], target_height]) + lead * tangent
    out = look_at(eye, target)
    if n > 1:
        out[-1] = out[0]
    return out


def forward(n: int, *, start: tuple[float, float, float] = (-3.0, -1.0, 1.3), length: float = 5.0,
            sway: float = 0.1, pitch_deg: float = -8.0) -> np.ndarray:
    """Forward motion along +x over `length` metres, with a small sideways/vertical sway.

    The camera looks along +x, pitched down by pitch_deg, with a gentle yaw wiggle (+-3 deg).
    """
    n = _check_n(n)
    u = np.linspace(0.0, 1.0, n)
    eye = np.stack([start[0] + length * u, start[1] + sway * np.sin(2 * np.pi * u),
                    start[2] + 0.5 * sway * np.sin(4 * np.pi * u)], -1)
    d = _direction(np.deg2rad(3.0) * np.sin(3 * np.pi * u), np.full(n, np.deg2rad(pitch_deg)))
    return look_at(eye, eye + d)


def rotation(n: int, *, eye: tuple[float, float, float] = (0.8, -1.3, 1.4), yaw0_deg: float = 60.0,
             sweep_deg: float = 120.0, pitch_amp_deg: float = 6.0) -> np.ndarray:
    """Pure rotation: camera centre fixed at eye, yaw panning sweep_deg (from yaw0), pitch wobbling."""
    n = _check_n(n)
    u = np.linspace(0.0, 1.0, n)
    e = np.broadcast_to(np.asarray(eye, dtype=np.float64), (n, 3))
    pitch = np.deg2rad(-5.0 + pitch_amp_deg * np.sin(2 * np.pi * u))
    d = _direction(np.deg2rad(yaw0_deg + sweep_deg * u), pitch)
    return look_at(e, e + d)


def still(n: int, *, eye: tuple[float, float, float] = (-1.8, 1.2, 1.5),
          target: tuple[float, float, float] = (0.0, 0.0, 0.6)) -> np.ndarray:
    """Standing still: n copies of one pose looking at the central pillar."""
    n = _check_n(n)
    return np.repeat(look_at(np.asarray(eye, float), np.asarray(target, float))[None], n, axis=0)


def figure_eight(n: int, *, size: tuple[float, float] = (3.0, 3.0), height: float = 1.25,
                 height_amp: float = 0.35, laps: float = 1.0, gaze_deg: float = 90.0,
                 pitch_deg: float = -6.0) -> np.ndarray:
    """Figure-eight (Gerono lemniscate x = a sin u, y = b sin u cos u) with height changes.

    Made for sim.worlds.pillar_hall: the lobe ends (+-a, 0) lie 0.35 m from the pillars there.
    The camera looks along its velocity turned by gaze_deg * sin(u) towards the outside of the
    turn, so at the lobe ends it faces the pillar (0.35 m away, the wall ~3 m behind it) and at
    the crossing it looks ahead. Height h + height_amp * sin(u + 0.5); pitch pitch_deg +- 4 deg.
    With integer laps frame n-1 equals frame 0 exactly.
    """
    n = _check_n(n)
    a, b = size
    u = 2 * np.pi * laps * np.arange(n) / max(n - 1, 1)
    eye = np.stack([a * np.sin(u), b * np.sin(u) * np.cos(u), height + height_amp * np.sin(u + 0.5)], -1)
    heading = np.unwrap(np.arctan2(b * np.cos(2 * u), a * np.cos(u)))
    yaw = heading + np.deg2rad(gaze_deg) * np.sin(u)
    pitch = np.deg2rad(pitch_deg + 4.0 * np.sin(2 * u))
    out = look_at(eye, eye + _direction(yaw, pitch))
    if n > 1 and float(laps).is_integer():
        out[-1] = out[0]
    return out


def laps_loop(n: int, *, laps: int = 3, radii: tuple[float, float] = (4.2, 2.6), height: float = 1.4,
              bob: float = 0.12, target_height: float = 0.9, lead: float = 0.8, wobble: float = 0.15
              ) -> np.ndarray:
    """`laps` laps of an ellipse around the origin looking inward (like `loop`), n frames in all.

    Each lap differs a little: the radii shrink by up to `wobble` metres and the height rises
    by up to 0.1 m mid-run (sin(pi t) over the run), so later laps revisit places from nearby but
    not identical poses. Frame n-1 equals frame 0 exactly. Made for sim.worlds.pillar_hall: the
    lap ends pass 0.4-0.55 m from the pillars at (+-3.5, 0).
    """
    n = _check_n(n)
    t = np.arange(n) / max(n - 1, 1)
    a = 2 * np.pi * laps * t
    shrink = wobble * np.sin(np.pi * t)
    rx, ry = radii[0] - shrink, radii[1] - shrink
    z = height + bob * np.sin(2 * a) + 0.1 * np.sin(np.pi * t)
    eye = np.stack([rx * np.cos(a), ry * np.sin(a), z], -1)
    tangent = np.stack([-rx * np.sin(a), ry * np.cos(a), np.zeros(n)], -1)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    target = np.array([0.0, 0.0, target_height]) + lead * tangent
    out = look_at(eye, target)
    if n > 1:
        out[-1] = out[0]
    return out


def _chaikin(pts: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Corner cutting (Chaikin) of a polyline (K, D), endpoints kept: a smooth curve in its hull."""
    p = np.asarray(pts, dtype=np.float64)
    for _ in range(iterations):
        if len(p) < 3:
            break
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        mid = np.stack([q, r], 1).reshape(-1, p.shape[1])[1:-1]
        p = np.concatenate([p[:1], mid, p[-1:]])
    return p


def waypoint_path(waypoints: np.ndarray, step: float, *, turn_radius: float = 0.3,
                  pitch_deg: float = -5.0) -> np.ndarray:
    """Smooth path through waypoints (K, 4) = (x, y, z, yaw_deg) at `step` metres per frame.

    The polyline in (x, y, z, yaw) is rounded by corner cutting (it stays within the waypoints'
    convex hull); frames are spaced evenly in d = |dp| + turn_radius * |dyaw|, so a turn on the
    spot also takes frames. Yaw is unwrapped to the nearest turn between waypoints. Returns
    (n, 4, 4) T_world_cam, n >= 2, first and last frames exactly at the first/last waypoints.
    """
    w = np.asarray(waypoints, dtype=np.float64).copy()
    if w.ndim != 2 or w.shape[1] != 4 or len(w) < 2:
        raise ValueError(f"waypoints must be (K>=2, 4), got {w.shape}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    w[:, 3] = np.rad2deg(np.unwrap(np.deg2rad(w[:, 3])))
    c = _chaikin(w)
    seg = (np.linalg.norm(np.diff(c[:, :3], axis=0), axis=1)
           + turn_radius * np.abs(np.diff(np.deg2rad(c[:, 3]))))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(round(s[-1] / step)) + 1)
    si = np.linspace(0.0, s[-1], n)
    p = np.stack([np.interp(si, s, c[:, k]) for k in range(4)], -1)
    d = _direction(np.deg2rad(p[:, 3]), np.full(n, np.deg2rad(pitch_deg)))
    return look_at(p[:, :3], p[:, :3] + d)


TRAJECTORIES: dict[str, Callable[[int], np.ndarray]] = {
    "loop": loop, "forward": forward, "rotation": rotation, "still": still,
}
