#!/usr/bin/env python3
"""Loop-closure cost: Sim(3) pose-graph solves and place-database queries at 100 / 1,000 / 5,000 keyframes.

Examples (from vggt_ros/):
  python bench/pose_graph_bench.py                     # both tables, median of 3 repeats
  python bench/pose_graph_bench.py --sizes 100,1000 --repeats 5 --only graph

Pose graph: a chain of keyframes on a circle (radius 20 m, one lap) whose odometry drifts in
rotation, translation and scale (5 % over the lap) with noise, plus one loop edge from the last
keyframe to the first: one loop-closure event; and from each keyframe an anchor-link edge to each of the
--links keyframes before its predecessor (StitchConfig.anchor_links: 3 with the shipped 4 anchors), the true
relative pose in the chain's local units with PnP-like noise (the ATE columns then depend on that made-up
noise: read them as a check that the solve converges, the timings as the figures).
Columns: building the graph, a full Levenberg-Marquardt solve (slam.pose_graph, every node free), a
windowed solve (only the newest --window nodes free, the rest fixed), the per-window local solve of
the anchor links (the newest StitchConfig.anchor_link_window nodes free, LoopCloser.adjust_recent),
gtsam's ISAM2 batch update of the same graph for reference, iterations, and the keyframe position
RMSE against the truth (no alignment: the first keyframe is the gauge) before / after the full solve.

Place database: query time (cosine top-5 over all entries, median over --queries queries) and
add time (median over the last 10 % of the fill, and over 50 adds at the cap, each of which drops
the most redundant entry first) at each size for D = 256 and 1024 (VGGT-1B's DINOv2 width); plus
the descriptor functions' own cost. Medians: the CPU may be shared (single calls spike).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from importlib import metadata

import gtsam
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vggt_ros.geometry.se3 import Sim3, make_T, rot_z, so3_exp  # noqa: E402
from vggt_ros.model.descriptors import token_descriptors  # noqa: E402
from vggt_ros.slam.config import PipelineConfig, StitchConfig  # noqa: E402
from vggt_ros.slam.loop_closure import LINK_LOG_SCALE_SIGMA  # noqa: E402
from vggt_ros.slam.place_recognition import (  # noqa: E402
    PlaceConfig,
    PlaceDatabase,
    image_descriptor,
)
from vggt_ros.slam.pose_graph import EdgeSigmas, PoseGraph, edge_sigmas  # noqa: E402


def drifting_circle(n: int, seed: int = 0) -> tuple[list[Sim3], list[Sim3]]:
    """(truth, odometry estimate) of n keyframes on one lap of a 20 m-radius circle."""
    rng = np.random.default_rng(seed)
    step = Sim3(1.0, rot_z(2 * np.pi / n), np.array([2 * np.pi * 20.0 / n, 0.0, 0.0]))
    bias = Sim3(1.05 ** (1 / n), so3_exp(np.array([0.0, 0.0, 0.05 / n])), np.zeros(3))
    truth, est = [Sim3.identity()], [Sim3.identity()]
    for _ in range(n - 1):
        truth.append(truth[-1] @ step)
        noise = Sim3(float(np.exp(rng.normal(0, 0.001))), so3_exp(rng.normal(0, 0.001, 3)),
                     rng.normal(0, 0.002, 3))
        est.append(est[-1] @ step @ bias @ noise)
    return truth, est


def anchor_link(truth: list[Sim3], est: list[Sim3], i: int, j: int, rng: np.random.Generator) -> Sim3:
    """Keyframe i's window measuring keyframe j again: the true relative pose in the map's local units
    (est[i]'s drifted scale), with PnP-like noise (0.002 rad, 0.01 m per axis), independent of the chain."""
    rel = truth[i].inverse() @ truth[j]
    noise = Sim3(1.0, so3_exp(rng.normal(0, 0.002, 3)), rng.normal(0, 0.01, 3))
    return Sim3(1.0, rel.R, rel.t * est[i].scale) @ noise


def build_graph(truth: list[Sim3], est: list[Sim3], links: int) -> tuple[PoseGraph, int]:
    g = PoseGraph()
    rng = np.random.default_rng(1)
    sig = edge_sigmas(300, 0.02, depth=3.0)
    link_sig = EdgeSigmas(0.002, 0.01, LINK_LOG_SCALE_SIGMA)
    for k, S in enumerate(est):
        g.add_node(k, make_T(S.R, S.t))
    for k in range(len(est) - 1):
        g.add_sequential(k, k + 1, g.relative(k, k + 1), sig)
        for d in range(1, links + 1):  # the window of keyframe k + 1 measures k - 1 .. k - links again
            if k - d >= 0:
                g.add_sequential(k + 1, k - d, anchor_link(truth, est, k + 1, k - d, rng), link_sig)
    n = len(est)
    loop = (truth[0].inverse() @ truth[-1]) @ Sim3(1.0 / est[-1].scale)
    return g, g.add_loop(0, n - 1, loop, sig)


def isam2_batch(g: PoseGraph) -> float:
    """Seconds for gtsam.ISAM2 to take the same factors (shows Similarity3 works with ISAM2)."""
    graph, values, _, _ = g._assemble(set(g.node_ids))
    t0 = time.perf_counter()
    isam = gtsam.ISAM2()
    isam.update(graph, values)
    isam.calculateEstimate()
    return time.perf_counter() - t0


def graph_row(n: int, repeats: int, window: int, links: int) -> list[str]:
    truth, est = drifting_circle(n)
    build, full, win, local, isam = [], [], [], [], []
    local_window = StitchConfig().anchor_link_window
    for _ in range(repeats):
        t0 = time.perf_counter()
        g, _ = build_graph(truth, est, links)
        build.append(time.perf_counter() - t0)
        r = g.optimize()
        full.append(r.time_s)
        win.append(g.optimize(window=min(window, n)).time_s)
        local.append(g.optimize(window=min(local_window, n)).time_s)
        isam.append(isam2_batch(g))
    ate0 = np.sqrt(np.mean([np.sum((S.t - G.t) ** 2) for S, G in zip(est, truth)]))
    ate1 = np.sqrt(np.mean([np.sum((r.T_world_cam[k][:3, 3] - G.t) ** 2) for k, G in enumerate(truth)]))
    med = statistics.median
    return [f"{n}", f"{med(build) * 1e3:.0f}", f"{med(full) * 1e3:.0f}", f"{r.iterations}",
            f"{med(win) * 1e3:.0f}", f"{med(local) * 1e3:.1f}", f"{med(isam) * 1e3:.0f}", f"{ate0:.2f}",
            f"{ate1:.3f}"]


def _median_us(fn, calls) -> float:
    ts = []
    for args in calls:
        t0 = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6


def place_row(n: int, dim: int, queries: int) -> list[str]:
    """Median times: query (top-5), add near full size, add at the cap (drops one entry first)."""
    rng = np.random.default_rng(0)
    desc = rng.normal(size=(n + 50, dim)).astype(np.float32)
    db = PlaceDatabase(PlaceConfig(max_entries=max(n, 1)))
    fill = n - max(1, n // 10)
    for i in range(fill):
        db.add(i, desc[i], np.eye(4))
    add_us = _median_us(db.add, [(i, desc[i], np.eye(4)) for i in range(fill, n)])
    qs = rng.normal(size=(queries, dim)).astype(np.float32)
    query_ms = _median_us(lambda q: db.query(q, k=5, exclude_recent=20), [(q,) for q in qs]) / 1e3
    capped_us = _median_us(db.add, [(i, desc[i], np.eye(4)) for i in range(n, n + 50)])
    return [f"{n}", f"{dim}", f"{query_ms:.3f}", f"{add_us:.0f}", f"{capped_us:.0f}"]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def descriptor_costs(repeats: int) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    tokens = torch.from_numpy(rng.normal(size=(37 * 21, 1024)).astype(np.float32))  # 294x518, 14 px patches
    rows = []
    for name, fn in (("image_descriptor 320x240", lambda: image_descriptor(rgb)),
                     ("token_descriptors 777x1024 mean (CPU)", lambda: token_descriptors(tokens)),
                     ("token_descriptors 777x1024 gem (CPU)", lambda: token_descriptors(tokens, "gem"))):
        ts = []
        for _ in range(max(repeats, 5)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        rows.append([name, f"{statistics.median(ts) * 1e3:.2f}"])
    print_table("Descriptor cost (median)", ["descriptor", "ms"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,5000", help="keyframe counts")
    ap.add_argument("--repeats", type=int, default=3, help="repeats per pose-graph size (median)")
    ap.add_argument("--window", type=int, default=200, help="free nodes of the windowed solve")
    ap.add_argument("--links", type=int, default=PipelineConfig().num_anchors - 1,
                    help="anchor-link edges per keyframe (shipped: num_anchors - 1; 0: chain and loop only)")
    ap.add_argument("--queries", type=int, default=200, help="place queries per size (median)")
    ap.add_argument("--only", choices=("graph", "place"), default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"gtsam {metadata.version('gtsam')}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    if args.only != "place":
        rows = [graph_row(n, args.repeats, args.window, args.links) for n in sizes]
        print_table(f"Sim(3) pose graph, one loop closure, {args.links} anchor links per keyframe "
                    f"(median of {args.repeats}; ms)",
                    ["keyframes", "build", "full LM", "iters", f"window {args.window}",
                     f"local {StitchConfig().anchor_link_window}", "ISAM2 batch", "ATE before m",
                     "ATE after m"], rows)
    if args.only != "graph":
        rows = [place_row(n, d, args.queries) for d in (256, 1024) for n in sizes]
        print_table("Place database (medians; query: top-5 of all entries)",
                    ["entries", "D", "query ms", "add us", "add at cap us"], rows)
        descriptor_costs(args.repeats)


if __name__ == "__main__":
    main()
