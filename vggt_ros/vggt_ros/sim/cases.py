"""Robustness cases (issue 9): a world, a camera path, covered frames, and how to simulate the network.

Each Case is pure data plus pure functions: `case.poses()` (n, 4, 4) T_world_cam, `case.scene()`,
`make_case_sequence` renders it lazily, `make_case_predictor` builds the simulated predictor
(the TEST DOUBLE of VGGT, CaseSimulatedPredictor) that knows only what the images show:

* frozen frames: it gets SyntheticSequence.image_truth (the repeated view's truth);
* black frames: sim.simulated_predictor detects the blank image and returns low-confidence garbage;
* views that share nothing with the window's first frame (a kidnap): arbitrary relative pose;
* twin rooms: fold_twin_rooms per window, as a network that sees two identical images must
  place them at the same spot.

Cases (30 Hz; pillar hall and twin rooms from sim.worlds):
  figure8         720 frames, figure-eight with height changes, 0.35 m from two pillars.
  loop3           1800 frames, three laps of an ellipse (0.4-0.55 m from pillars).
  twin_tour       room A (a circle), corridor, room B (the SAME circle, translated), corridor,
                  back into A (a third of the circle again): A-B is aliasing, only A-A is a loop.
  standing_start  150 frames standing still, then 600 frames of the figure-eight.
  kidnapped       figure8 frames 0-599 (facing south-west at the end), then a jump to frame 180
                  (the right lobe end facing the +x pillar, mapped; no shared view), continuing to
                  frame 419 (840 frames).
  covered_black   loop3 frames 0-839 with frames 660-719 black (2 s, mid lap 2: mapped places).
  covered_frozen  the same with frames 660-719 repeating frame 659.
  garbage         the default room's loop, 360 frames; windows containing frames 64, 124, ...
                  get confident garbage (the bench injects it; the case lists the frames).
  fast            figure8 five times faster: 144 frames, ~13 cm and up to ~10 deg between frames; some
                  windows' tracks no longer fit the map and they are re-predicted alone (recovery).
  spin            figure8 with a full turn in place about the vertical (180 frames, 60 deg/s) inserted at
                  frame 180, the right lobe end facing the +x pillar 0.35 m away: pure rotation from
                  close range (the pillar) to far walls and back (900 frames).
  stop_and_go     figure8 with a 5 s stop (150 identical poses) at frame 180, the right lobe end facing
                  the +x pillar 0.35 m away, as a robot waiting in front of an obstacle (870 frames).
  there_and_back  figure8, then the same path back to the start in reverse (1439 frames): every
                  place is seen again from the same viewpoint, in the opposite order.
  corridor_ring   two laps (3,125 frames) of the corridor around a 20 x 8 m block (sim.worlds.corridor_ring):
                  a long loop, 64 m per lap, whose straight corridors look alike every 5.12 m.
  open_eight      figure8 begun at its left lobe (frames 360-719, then 0-239; 600 frames): the close
                  pass at the -x pillar comes 180 frames in, on a young map, and the path never
                  comes back along a mapped view (no loop): open-loop tracking end to end.
  dropouts        figure8 with frames missing, as from a loaded driver or link: 10 % single
                  drops (seeded) and bursts of 15, 30 and 60 frames (0.5, 1, 2 s) from frames 100,
                  300 and 500 while the camera moves; 557 frames stay (at 30 Hz spacing). After
                  the 2 s burst the camera sees the figure-eight's crossing, mapped around
                  frames 270-300 from 4 m further back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from vggt_ros.geometry.depth import in_image, pixel_grid, project_points, sample_nearest, unproject_pixels
from vggt_ros.geometry.se3 import invert_T, so3_exp
from vggt_ros.sim.scene import Scene
from vggt_ros.sim.sequence import Cover, GroundTruth, SyntheticSequence, intrinsics
from vggt_ros.sim.simulated_predictor import SimNoise, SimulatedPredictor
from vggt_ros.sim.trajectories import TRAJECTORIES, figure_eight, laps_loop, look_at, waypoint_path
from vggt_ros.sim.worlds import TWIN_SHIFT, corridor_ring, pillar_hall, twin_room_of, twin_rooms
from vggt_ros.types import Frame, WindowPrediction

#: centre and radius of the circle walked in each twin room (room A coordinates, metres)
_TWIN_CIRCLE = ((2.3, 2.6), 1.1)


def twin_circle(n: int, dx: float = 0.0, turns: float = 1.0) -> np.ndarray:
    """(n, 4, 4) camera on a circle in a twin room (shifted by dx along x) looking out and ahead.

    Starts and ends (turns = 1) at the circle's south point (2.3 + dx, 1.5), yaw -40 deg.
    """
    (cx, cy), r = _TWIN_CIRCLE
    phi = np.deg2rad(-90.0) + 2 * np.pi * turns * np.arange(n) / max(n - 1, 1)
    eye = np.stack([cx + dx + r * np.cos(phi), cy + r * np.sin(phi), 1.4 + 0.1 * np.sin(2 * phi)], -1)
    yaw, pitch = phi + np.deg2rad(50.0), np.deg2rad(-5.0)
    d = np.stack([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.full(n, np.sin(pitch))], -1)
    return look_at(eye, eye + d)


def _twin_transit(x_from: float, x_to: float, step: float) -> np.ndarray:
    """Walk from one room's circle start, out of its door, along the corridor, into the other room."""
    east = x_to > x_from
    along = 0.0 if east else 180.0
    y_c = 0.5 * sum((-1.9, -0.25))
    sx = 1.0 if east else -1.0
    w = [(x_from, 1.5, 1.4, -40.0), (x_from, 0.4, 1.4, -90.0), (x_from, y_c, 1.4, -90.0 + 45.0 * sx),
         (x_from + sx, y_c, 1.4, along), (x_to - sx, y_c, 1.4, along), (x_to, y_c, 1.4, 90.0 - 45.0 * sx),
         (x_to, 0.4, 1.4, 90.0), (x_to, 1.5, 1.4, -40.0)]
    return waypoint_path(np.array(w), step)


def twin_tour(circle_frames: int = 240, step: float = 0.045, revisit_frames: int = 80) -> np.ndarray:
    """Room A circle, transit to B, the same circle in B (translated by TWIN_SHIFT), back to A, a third
    of A's circle again. (N, 4, 4); the B circle is pose for pose A's circle + TWIN_SHIFT x."""
    xa = _TWIN_CIRCLE[0][0]
    a = twin_circle(circle_frames)
    b = twin_circle(circle_frames, TWIN_SHIFT)
    go = _twin_transit(xa, xa + TWIN_SHIFT, step)
    back = _twin_transit(xa + TWIN_SHIFT, xa, step)
    again = twin_circle(circle_frames)[:revisit_frames]
    return np.concatenate([a, go[1:-1], b, back[1:-1], again])


@lru_cache(maxsize=2)
def _loop3() -> np.ndarray:
    out = laps_loop(1800)
    out.setflags(write=False)
    return out


def _standing_start() -> np.ndarray:
    f = figure_eight(600)
    return np.concatenate([np.repeat(f[:1], 150, axis=0), f])


def _open_eight() -> np.ndarray:
    f = figure_eight(720)
    return np.concatenate([f[360:], f[:240]])


def _kidnapped() -> np.ndarray:
    f = figure_eight(720)
    return np.concatenate([f[:600], f[180:420]])


SPIN_AT, SPIN_FRAMES = 180, 180  # figure8 frame of the turn in place, frames it lasts (one full turn)


def _spin() -> np.ndarray:
    f = figure_eight(720)
    turn = [f[SPIN_AT].copy() for _ in range(SPIN_FRAMES)]
    for k, T in enumerate(turn):
        T[:3, :3] = so3_exp(np.array([0.0, 0.0, 2.0 * np.pi * k / SPIN_FRAMES])) @ T[:3, :3]
    return np.concatenate([f[:SPIN_AT], np.array(turn), f[SPIN_AT:]])


STOP_AT, STOP_FRAMES = 180, 150  # figure8 frame the camera stands at, frames it stands (5 s)


def _stop_and_go() -> np.ndarray:
    f = figure_eight(720)
    return np.concatenate([f[:STOP_AT], np.repeat(f[STOP_AT:STOP_AT + 1], STOP_FRAMES, axis=0), f[STOP_AT:]])


def _there_and_back() -> np.ndarray:
    f = figure_eight(720)
    return np.concatenate([f, f[-2::-1]])


def ring_laps(laps: int = 2, step: float = 0.045) -> np.ndarray:
    """(n, 4, 4) `laps` laps along the corridor ring's centre line (1 m from both walls), counter-clockwise
    from its south-west corner, looking along the corridor, turning 90 deg at each corner (1.35 m/s,
    ~80 deg/s in the turns); ends where it started."""
    w = [(-11.0, -5.0, 0.0), (11.0, -5.0, 0.0), (11.0, -5.0, 90.0), (11.0, 5.0, 90.0), (11.0, 5.0, 180.0),
         (-11.0, 5.0, 180.0), (-11.0, 5.0, 270.0), (-11.0, -5.0, 270.0)]
    pts = [(x, y, 1.4, yaw + 360.0 * lap) for lap in range(laps) for x, y, yaw in w]
    pts.append((-11.0, -5.0, 1.4, 360.0 * laps))
    return waypoint_path(np.array(pts), step, turn_radius=1.0)


DROPOUT_BURSTS = ((100, 15), (300, 30), (500, 60))  # (first figure8 frame, frames missing)


def dropout_keep() -> np.ndarray:
    """(720,) bool: the figure8 frames the dropouts case keeps."""
    keep = np.random.default_rng(42).random(720) >= 0.1
    for start, n in DROPOUT_BURSTS:
        keep[start: start + n] = False
    return keep


def _dropouts() -> np.ndarray:
    return figure_eight(720)[dropout_keep()]


@dataclass(frozen=True)
class Case:
    """A robustness case: scene(), poses() (N,4,4) T_world_cam, covers, aliasing (twin rooms),
    garbage_frames (the bench corrupts the first window holding each), close_range (min distance
    to an object the path is built to reach, metres; None when not a close-range case),
    reloc_from (first frame after a kidnap or a covered gap that sees a mapped place, or None)."""

    name: str
    scene: Callable[[], Scene]
    poses: Callable[[], np.ndarray]
    covers: tuple[Cover, ...] = ()
    aliasing: bool = False
    garbage_frames: tuple[int, ...] = ()
    close_range: float | None = None
    reloc_from: int | None = None
    description: str = ""


CASES: dict[str, Case] = {c.name: c for c in (
    Case("figure8", pillar_hall, lambda: figure_eight(720), close_range=0.35,
         description="figure-eight with height changes, 0.35 m from two pillars, walls 3-6 m"),
    Case("loop3", pillar_hall, lambda: np.array(_loop3()), close_range=0.4,
         description="3 laps of an ellipse, 1800 frames"),
    Case("twin_tour", twin_rooms, twin_tour, aliasing=True,
         description="room A, corridor, identical room B (same motion), back to A"),
    Case("standing_start", pillar_hall, _standing_start,
         description="150 standing frames, then a figure-eight"),
    Case("kidnapped", pillar_hall, _kidnapped, reloc_from=600,
         description="jump at frame 600 to a place mapped at frame 180, no shared view"),
    Case("covered_black", pillar_hall, lambda: np.array(_loop3()[:840]), covers=(Cover(660, 60, "black"),),
         reloc_from=720,
         description="60 black frames (2 s) at frame 660"),
    Case("covered_frozen", pillar_hall, lambda: np.array(_loop3()[:840]), covers=(Cover(660, 60, "frozen"),),
         reloc_from=720,
         description="60 frozen frames (2 s) at frame 660"),
    Case("garbage", Scene, lambda: TRAJECTORIES["loop"](360), garbage_frames=(64, 124, 184, 244, 304),
         description="default room loop, 5 windows of confident garbage"),
    Case("fast", pillar_hall, lambda: figure_eight(144), close_range=0.35,
         description="the figure-eight five times faster (144 frames): stitches fail, windows recover"),
    Case("spin", pillar_hall, _spin, close_range=0.35,
         description="figure-eight with a full turn in place (6 s) facing a pillar 0.35 m away"),
    Case("stop_and_go", pillar_hall, _stop_and_go, close_range=0.35,
         description="figure-eight with a 5 s stop facing a pillar 0.35 m away"),
    Case("there_and_back", pillar_hall, _there_and_back, close_range=0.35,
         description="figure-eight, then back along the same path in reverse"),
    Case("corridor_ring", corridor_ring, lambda: ring_laps(2), close_range=0.4,
         description="two laps of a 64 m corridor ring whose walls repeat every 5.12 m"),
    Case("open_eight", pillar_hall, _open_eight, close_range=0.35,
         description="figure-eight begun at its left lobe: a close pass on a young map, no loop"),
    Case("dropouts", pillar_hall, _dropouts, close_range=0.35,
         reloc_from=int(np.count_nonzero(dropout_keep()[:560])),
         description="figure-eight missing 10 % of its frames and bursts of 0.5, 1 and 2 s"),
)}


def make_case_sequence(case: Case, width: int = 160, height: int = 120, max_frames: int | None = None,
                       cache_size: int | None = None) -> SyntheticSequence:
    """The case's sequence at width x height (first max_frames frames; covers past the end dropped)."""
    poses = case.poses()
    if max_frames is not None:
        poses = poses[:max_frames]
    n = len(poses)
    covers = tuple(c for c in case.covers if c.start + c.length <= n)
    return SyntheticSequence(case.scene(), poses, intrinsics(width, height), (width, height),
                             cache_size=cache_size if cache_size is not None else n + 8, covers=covers)


def view_overlap(a: GroundTruth, b: GroundTruth, stride: int = 8, tol: float = 0.05) -> float:
    """Fraction of a's pixels (every stride-th) whose surface point b sees (in image, in front, not
    occluded within tol relative depth), from ground truth."""
    uv = pixel_grid(a.depth.shape)[::stride, ::stride].reshape(-1, 2)
    d = a.depth[::stride, ::stride].reshape(-1).astype(np.float64)
    ok = np.isfinite(d) & (d > 0)
    if not ok.any():
        return 0.0
    pts = unproject_pixels(uv[ok], d[ok], a.K, a.T_world_cam)
    proj, z = project_points(b.K, invert_T(b.T_world_cam), pts)
    inside = in_image(proj, b.depth.shape) & (z > 1e-6)
    db = sample_nearest(b.depth, np.where(inside[:, None], proj, 0.0))
    with np.errstate(invalid="ignore"):
        seen = inside & (z <= db * (1.0 + tol))
    return float(seen.mean())


def view_groups(gts: Sequence[GroundTruth], min_overlap: float = 0.1) -> np.ndarray:
    """(S,) group label per frame: connected components of 'shares a view' (overlap either way >=
    min_overlap); frame 0's group is 0."""
    S = len(gts)
    label = np.full(S, -1, np.intp)
    nxt = 0
    for s0 in range(S):
        if label[s0] >= 0:
            continue
        label[s0], stack = nxt, [s0]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(label < 0).tolist():
                if max(view_overlap(gts[i], gts[j]), view_overlap(gts[j], gts[i])) >= min_overlap:
                    label[j] = nxt
                    stack.append(j)
        nxt += 1
    return label


def fold_twin_rooms(gts: list[GroundTruth]) -> list[GroundTruth]:
    """The twin rooms as the images tell them: when a window holds frames in both rooms (by camera
    position, worlds.twin_room_of; corridor frames count for neither), the frames in the other room
    move into the room of the window's first in-room frame (pose shifted by TWIN_SHIFT, depth kept:
    it is the same image)."""
    rooms = twin_room_of(np.stack([g.T_world_cam[:3, 3] for g in gts]))
    in_room = rooms[rooms >= 0]
    if len(set(in_room.tolist())) < 2:
        return gts
    ref = int(in_room[0])
    out = []
    for g, r in zip(gts, rooms):
        if r >= 0 and r != ref:
            T = g.T_world_cam.copy()
            T[0, 3] += TWIN_SHIFT if ref == 1 else -TWIN_SHIFT
            g = GroundTruth(g.stamp_ns, T, g.K, g.depth)
        out.append(g)
    return out


class CaseSimulatedPredictor:
    """The simulated predictor of the robustness cases (TEST DOUBLE of VGGT): SimulatedPredictor on
    the truth of what the images show, plus two things a network cannot know from images:

    * disjoint views: frames that share no view with frame 0's group (view_groups, from ground
      truth; e.g. after a kidnap, anchors before and new frames after the jump) get their poses
      in the window moved by one random rigid motion per group (rotation ~30 deg RMS, centre ~1
      window unit RMS), seeded by the window's stamps: consistent within the group, arbitrary
      between groups. Tracks from frame 0 into them are already invisible (ground truth).
    * aliasing (fold set, e.g. fold_twin_rooms): ground truth rewritten per window before all else.
    """

    name = "simulated"

    def __init__(self, truth: Callable[[int], GroundTruth], noise: SimNoise | None = None, seed: int = 0,
                 fold: Callable[[list[GroundTruth]], list[GroundTruth]] | None = None) -> None:
        self.truth = truth
        self.noise = noise if noise is not None else SimNoise()
        self.seed = int(seed)
        self.fold = fold
        self.folded_windows = 0   #: windows whose ground truth the fold rewrote (aliasing happened)
        self.split_windows = 0    #: windows with frames disjoint from frame 0's view group

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray,
                depth_for: Sequence[int]) -> WindowPrediction:
        stamps = [int(f.stamp_ns) for f in frames]
        gts = [self.truth(s) for s in stamps]
        if self.fold is not None:
            folded = self.fold(gts)
            self.folded_windows += int(any(a is not b for a, b in zip(gts, folded)))
            gts = folded
        lookup = dict(zip(stamps, gts))
        pred = SimulatedPredictor(lookup.__getitem__, self.noise, self.seed).predict(
            frames, query_points, depth_for)
        groups = view_groups(gts)
        if groups.max() > 0:
            self.split_windows += 1
            rng = np.random.default_rng([self.seed, 99, *[s % (1 << 63) for s in stamps]])
            T_win_cam = invert_T(pred.T_cam_win)
            for g in range(1, int(groups.max()) + 1):
                G = np.eye(4)
                G[:3, :3] = so3_exp(rng.normal(0.0, np.deg2rad(30.0) / np.sqrt(3.0), 3))
                G[:3, 3] = rng.normal(0.0, 1.0 / np.sqrt(3.0), 3)
                T_win_cam[groups == g] = G @ T_win_cam[groups == g]
            pred.T_cam_win = invert_T(T_win_cam)
            pred.T_cam_win[0] = np.eye(4)
        return pred


def make_case_predictor(case: Case, seq: SyntheticSequence, noise: SimNoise | None = None,
                        seed: int = 0) -> CaseSimulatedPredictor:
    """The simulated predictor for a case's sequence (sees the views the images show)."""
    return CaseSimulatedPredictor(seq.image_truth, noise, seed, fold_twin_rooms if case.aliasing else None)
