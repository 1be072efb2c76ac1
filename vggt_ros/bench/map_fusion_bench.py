#!/usr/bin/env python3
"""Cost of keeping the global map fused as it grows (issue 14: a CPU path that does not grow with the run).

Keyframes of 20,000 points (the shipped `map_points_per_keyframe`) on the walls of a 12 x 8 x 3 m room
seen from a camera walking a loop, added to a GlobalMap with the shipped cap (`map_max_mb`) and voxel
size; per window the pipeline refines 4 anchors' points (replace_points) and adds about 2 keyframes.
Printed per map size: the map update of one window (4 anchor refinements + 2 new keyframes: stored,
the grid takes them at the next snapshot), the next snapshot (grid update + fused output), and fusing
the same stored points from scratch (what every window cost before the grid: `voxel_fuse(points_map())`).
Medians over `--repeats`; one process, same data. At the cap, a thinning of every keyframe (each time
the stored points grow by 10 %) drops the grid: the next snapshot rebuilds it (about one fusion from
scratch), then it is kept up to date again.

Usage (from vggt_ros/): python bench/map_fusion_bench.py [--sizes 100,350,1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vggt_ros.geometry.se3 import make_T, rot_y  # noqa: E402
from vggt_ros.runtime.factory import pipeline_config  # noqa: E402
from vggt_ros.runtime.params import Params  # noqa: E402
from vggt_ros.slam.global_map import GlobalMap, voxel_fuse  # noqa: E402

K = np.array([[400.0, 0, 259], [0, 400.0, 196], [0, 0, 1]])
SIZE = (392, 518)


def room_cloud(i: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keyframe i on a loop through the room: (T_map_cam (4,4), points_cam (n,3) f32 on the walls
    in view, colors (n,3) u8, confidence (n,) f32)."""
    rng = np.random.default_rng(i)
    a = 2 * np.pi * i / 400.0
    c = np.array([3.0 * np.cos(a), 0.0, 2.0 * np.sin(a)])
    T = make_T(rot_y(-a), c)
    u = rng.uniform(0, SIZE[1], n)
    v = rng.uniform(0, SIZE[0], n)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(n)], 1)
    d_world = rays @ T[:3, :3].T
    with np.errstate(divide="ignore"):  # distance along each ray to the box walls |x|<6, |y|<1.5, |z|<4
        wall = np.where(d_world > 0, [6.0, 1.5, 4.0], [-6.0, -1.5, -4.0])
        t = np.min(np.abs(wall - c) / np.abs(d_world), 1)
    pts = (rays * t[:, None]).astype(np.float32)
    col = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    return T, pts, col, rng.uniform(1.5, 10.0, n).astype(np.float32)


def one_window(m: GlobalMap, k: int, r: int, clouds: list[tuple[np.ndarray, ...]]) -> None:
    """What one window does to the map: refine the 4 newest anchors' points, add 2 keyframes
    (clouds: 4 refined + 2 new, made before the timing)."""
    for j in range(4):
        m.replace_points(k - 1 - j, *clouds[j][1:])
    for j in range(2):
        T, p, c, w = clouds[4 + j]
        m.add_keyframe(100_000 * (r + 1) + k + j, 0, 0, T, K, SIZE, p, c, w)


def timed(fn: Callable[..., object], *a: object) -> float:
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,350,1000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    mc = pipeline_config(Params()).map
    sizes = sorted(int(s) for s in args.sizes.split(","))
    m = GlobalMap(None, mc.max_bytes, mc.points_per_keyframe, voxel_size_rel=mc.voxel_size_rel)
    n = mc.points_per_keyframe
    rows = []
    k = 0
    for target in sizes:
        while k < target:
            T, p, c, w = room_cloud(k, n)
            m.add_keyframe(k, k, k, T, K, SIZE, p, c, w)
            k += 1
            if k == 1:
                m.snapshot()  # the grid exists from the first snapshot on, as in a run
        m.snapshot()  # untimed: the runtime pulls one every map_publish_period while the map grows
        upd, snap, full = [], [], []
        for r in range(args.repeats):
            clouds = [room_cloud(10_000 + k - 1 - j + r, n) for j in range(4)]
            clouds += [room_cloud(k + j, n) for j in range(2)]
            upd.append(timed(one_window, m, k, r, clouds))
            snap.append(timed(m.snapshot))
            full.append(timed(lambda: voxel_fuse(m.points_map(), float(m.voxel_size or 0.0))))
        rows.append((target, len(m), m.num_points_stored, len(m.snapshot()), m.peak_bytes / 2**20,
                     statistics.median(upd), statistics.median(snap), statistics.median(full)))
    print(f"map cap {mc.max_bytes / 2**20:.0f} MiB, {n} points per keyframe, voxel {m.voxel_size:.4f} m "
          f"({mc.voxel_size_rel} x the first keyframe's median depth)")
    print("| keyframes | stored points | voxels | peak map MiB | window update ms | snapshot ms | "
          "fuse from scratch ms | scratch / (update + snapshot) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _, kfs, pts, vox, mib, u, s, f in rows:
        print(f"| {kfs} | {pts} | {vox} | {mib:.0f} | {1e3 * u:.0f} | {1e3 * s:.0f} | {1e3 * f:.0f} | "
              f"{f / (u + s):.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
