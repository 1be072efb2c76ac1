#!/usr/bin/env python3
"""CPU cost of the node around the network, per new frame, by stage (issue 14).

The network is replaced by a predictor double that costs (almost) nothing: the SimulatedPredictor's
outputs for the same frames are recorded first (untimed), then replayed by window stamps. Everything
else is the real code path of `vggt-ros replay`: bag read (CDR deserialisation) -> decode ->
NodeCore (sync) -> slam.Pipeline (stitching, keyframes, voxel map) -> Publications -> MessageSink
(depth image, PointCloud2 window and map, TF/odometry/path, diagnostics) -> BagWriter (.mcap).
VGGT's preprocessing (640x480 -> 518x392, what VGGTPredictor runs on every window frame) is timed
on the same windows beside it.

Usage (from vggt_ros/):
  python bench/cpu_path_bench.py                       # 640x480, 64 frames, 3 repeats
  python bench/cpu_path_bench.py --frames 96 --repeats 5 --profile 25
Prints one table: per stage the median ms per new frame over repeats and the spread (min-max),
then two totals: the replay's (everything) and the live node's, without what only a replay does (bag
read with its zstd decompression, mcap writing with zstd compression; the CDR serialisation stays in:
a live node pays it in rclpy's publish). Target (issue 14): <= 15 ms per new frame, live node.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vggt_ros.io.bag import BagWriter, read_messages  # noqa: E402
from vggt_ros.msgs.builders import MessageBuilder  # noqa: E402
from vggt_ros.msgs.family import RosbagsFamily  # noqa: E402
from vggt_ros.msgs.frame import image_to_frame  # noqa: E402
from vggt_ros.runtime.core import NodeCore  # noqa: E402
from vggt_ros.runtime.factory import make_pipeline  # noqa: E402
from vggt_ros.runtime.params import Params  # noqa: E402
from vggt_ros.runtime.replay import BagSink, Recorder  # noqa: E402
from vggt_ros.sim.sequence import make_sequence  # noqa: E402
from vggt_ros.sim.simulated_predictor import SimulatedPredictor  # noqa: E402
from vggt_ros.slam.place_recognition import image_descriptor  # noqa: E402
from vggt_ros.types import Frame, WindowPrediction  # noqa: E402

IMAGE_TOPIC = "/camera/image"
TOTAL_REPLAY = "TOTAL replay (with bag read and write)"
TOTAL_LIVE = "TOTAL live node (no bag I/O; the target)"
TRACK_MIN_HW = (140, 140)  # VGGT-1B's smallest network input (model.predictor.track_min_side)


class RecordingPredictor:
    """Wraps a predictor and keeps each window's prediction by its frames' stamps.

    Each frame's place descriptor is recorded with the prediction, as VGGTPredictor returns it (pooled
    on the device from the network's patch tokens): on the real path it costs no CPU time, while the
    simulated predictor has none and the pipeline would compute the image descriptor instead."""

    name = "recording"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.store: dict[tuple[int, ...], WindowPrediction] = {}

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray,
                depth_for: Sequence[int]) -> WindowPrediction:
        pred = self.inner.predict(frames, query_points, depth_for)
        if not pred.descriptors:
            pred.descriptors = {i: image_descriptor(f.rgb) for i, f in enumerate(frames)}
        self.store[tuple(int(f.stamp_ns) for f in frames)] = copy.deepcopy(pred)
        return pred


class ReplayedPredictorDouble:
    """TEST DOUBLE: returns the recorded prediction of the same window (a copy), no network."""

    name = "replayed"

    def __init__(self, store: dict[tuple[int, ...], WindowPrediction]) -> None:
        self.store = store

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray,
                depth_for: Sequence[int]) -> WindowPrediction:
        return copy.deepcopy(self.store[tuple(int(f.stamp_ns) for f in frames)])


class Stopwatch:
    """Seconds per stage name, accumulated by wrapped callables."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                name = stage(*args, **kw) if callable(stage) else stage
                self.total[name] += time.perf_counter() - t0
        return timed


class _TimedTypestore:
    """The writer's typestore with serialize_cdr timed (what a live node's rclpy publish also pays)."""

    def __init__(self, inner: Any, sw: Stopwatch) -> None:
        self._inner = inner
        self.serialize_cdr = sw.wrap("msg: CDR serialise", inner.serialize_cdr)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def write_input_bag(path: Path, frames: Sequence[Frame], K: np.ndarray) -> None:
    builder = MessageBuilder(RosbagsFamily(), map_frame="map")
    with BagWriter(path, overwrite=True) as bag:
        bag.add_topic(IMAGE_TOPIC, "sensor_msgs/msg/Image")
        for f in frames:
            bag.write(IMAGE_TOPIC, f.stamp_ns, builder.rgb_image(f.stamp_ns, f.frame_id, f.rgb))


def record(params: Params, seq: Any, frames: Sequence[Frame]) -> dict[tuple[int, ...], WindowPrediction]:
    rec = RecordingPredictor(SimulatedPredictor(seq.ground_truth))
    core = NodeCore(params, make_pipeline(params, rec), _NullSink(), mode="sync")
    for f in frames:
        core.submit(f)
    core.finish()
    return rec.store


class _NullSink:
    def publish(self, pub: Any) -> None:
        pass


Store = dict[tuple[int, ...], WindowPrediction]


def run_once(params: Params, bag: Path, out: Path, K: np.ndarray, store: Store,
             preprocess: bool, blocks: list[list[float]]) -> tuple[dict[str, float], int]:
    """One timed replay; returns seconds by stage and the number of frames published; appends each
    frame's decode + submit seconds (node and bag writing, no bag read) to `blocks`."""
    sw = Stopwatch()
    pred = ReplayedPredictorDouble(store)
    pred.predict = sw.wrap("predictor double (copy)", pred.predict)  # type: ignore[method-assign]
    pipeline = make_pipeline(params, pred)
    # the runtime pulls the fused map when it publishes it (map_every 0): the grid update and the fused
    # output run there, outside push
    if hasattr(pipeline, "map_update"):
        pipeline.map_update = sw.wrap("voxel map (fuse)", pipeline.map_update)  # type: ignore[method-assign]
    else:  # an older version (for side-by-side runs): the fusion ran inside push
        pipeline.global_map.snapshot = sw.wrap("voxel map (in push)", pipeline.global_map.snapshot)
    builder = MessageBuilder(RosbagsFamily(), params["map_frame"])
    t_all = time.perf_counter()
    with BagWriter(out, overwrite=True) as writer:
        writer.write = sw.wrap("bag write (mcap)", writer.write)  # type: ignore[method-assign]
        writer.typestore = _TimedTypestore(writer.typestore, sw)
        sink = BagSink(writer, builder, "/vggt", Recorder())
        build = sink.inner.builder
        for meth in ("depth_image", "camera_info", "point_cloud", "odometry", "tf_message", "path",
                     "diagnostics", "window_stats", "keyframe", "transform_stamped"):
            setattr(build, meth, sw.wrap(f"msg: {meth}", getattr(build, meth)))
        core = NodeCore(params, pipeline, sink, mode="sync")
        core.pipeline.push = sw.wrap("slam core (push)", pipeline.push)  # type: ignore[method-assign]
        core.pipeline.flush = sw.wrap("slam core (push)", pipeline.flush)  # type: ignore[method-assign]
        submit = sw.wrap("runtime total (submit)", core.submit)
        it = iter(read_messages(bag, [IMAGE_TOPIC]))
        per_frame: list[float] = []
        while True:
            t0 = time.perf_counter()
            m = next(it, None)
            sw.total["bag read (deserialise)"] += time.perf_counter() - t0
            if m is None:
                break
            t0 = time.perf_counter()
            frame = image_to_frame(m.message, lambda hw: K)
            sw.total["decode (Image -> Frame)"] += time.perf_counter() - t0
            submit(frame)
            per_frame.append(time.perf_counter() - t0)
        sw.wrap("runtime total (submit)", core.finish)()
    total = time.perf_counter() - t_all
    stages = dict(sw.total)
    if preprocess:
        stages["preprocess 518x392 (VGGT input)"] = time_preprocess(store, bag)
    blocks.append(per_frame)
    return _derive(stages, total), core.frames_processed


def time_preprocess(store: dict[tuple[int, ...], WindowPrediction], bag: Path) -> float:
    """VGGTPredictor's preprocessing of every window's frames (anchors included), as on the real path:
    its FramePreprocessor, whose per-frame cache resizes an anchor once, into a uint8 window (the
    conversion to float runs on the network's device, model.preprocess.to_unit_float)."""
    from vggt_ros.model.predictor import FramePreprocessor, PredictorConfig

    cfg = PredictorConfig()
    prep = FramePreprocessor(cfg.mode, cfg.image_size, cfg.token_cache_frames)
    frames = {m.message.header.stamp.sec * 10**9 + m.message.header.stamp.nanosec:
              image_to_frame(m.message) for m in read_messages(bag, [IMAGE_TOPIC])}
    t = 0.0
    for stamps in store:
        window = [frames[s] for s in stamps if s in frames]
        t0 = time.perf_counter()
        prep(window, TRACK_MIN_HW)
        t += time.perf_counter() - t0
    return t


def _derive(st: dict[str, float], total: float) -> dict[str, float]:
    """Exclusive stages: the slam core without the predictor double and the map fusion; the runtime
    (Updates -> Publications, stats) without slam and sink; messages grouped by kind."""
    out: dict[str, float] = {}
    pred, vox = st.get("predictor double (copy)", 0.0), st.get("voxel map (fuse)", 0.0)
    msgs = {k: v for k, v in st.items() if k.startswith("msg: ") and k != "msg: CDR serialise"}
    msg_total = sum(msgs.values())
    cdr = st.get("msg: CDR serialise", 0.0)
    write = st.get("bag write (mcap)", 0.0) - cdr
    slam = st.get("slam core (push)", 0.0)
    out["bag read (deserialise)"] = st.get("bag read (deserialise)", 0.0)
    out["decode (Image -> Frame)"] = st.get("decode (Image -> Frame)", 0.0)
    if "preprocess 518x392 (VGGT input)" in st:
        out["preprocess 518x392 (VGGT input)"] = st["preprocess 518x392 (VGGT input)"]
    out["slam: stitch, keyframes, emit"] = slam - pred - st.get("voxel map (in push)", 0.0)
    vox += st.get("voxel map (in push)", 0.0)
    out["slam: voxel map (grid update + fused map, pulled)"] = vox
    groups = {"depth_image": "msg: depth image", "camera_info": "msg: camera_info",
              "point_cloud": "msg: PointCloud2 (window + map)", "odometry": "msg: TF/odometry/path",
              "tf_message": "msg: TF/odometry/path", "transform_stamped": "msg: TF/odometry/path",
              "path": "msg: TF/odometry/path", "diagnostics": "msg: diagnostics",
              "window_stats": "msg: window_stats/keyframe", "keyframe": "msg: window_stats/keyframe"}
    for k, v in msgs.items():
        g = groups.get(k[5:], k)
        out[g] = out.get(g, 0.0) + v
    out["msg: CDR serialise"] = cdr
    out["bag write (mcap + zstd, replay only)"] = write
    out["runtime: updates -> publications"] = (
        st.get("runtime total (submit)", 0.0) - slam - st.get("voxel map (fuse)", 0.0)
        - msg_total - write - cdr
    )
    out["(excluded) predictor double"] = pred
    node = total - pred + st.get("preprocess 518x392 (VGGT input)", 0.0)
    out[TOTAL_REPLAY] = node
    out[TOTAL_LIVE] = node - out["bag read (deserialise)"] - write
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-preprocess", action="store_true", help="skip timing VGGT's preprocessing")
    ap.add_argument("--profile", type=int, default=0, help="print the top N cProfile entries of one run")
    ap.add_argument("--block", type=int, default=0,
                    help="also print the per-frame cost by block of this many frames (a long run's growth)")
    args = ap.parse_args(argv)

    params = Params()
    t0 = time.perf_counter()
    seq = make_sequence("loop", args.frames, width=args.width, height=args.height)
    frames = [seq[i] for i in range(len(seq))]
    K = seq.K
    store = record(params, seq, frames)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "in.mcap"
        write_input_bag(bag, frames, K)
        print(f"setup (render + record the simulated predictor, untimed): {time.perf_counter() - t0:.1f} s; "
              f"{args.frames} frames {args.width}x{args.height}, {len(store)} windows")
        runs: list[dict[str, float]] = []
        per_frame: list[list[float]] = []
        n_out = 0
        for r in range(args.repeats):
            st, n_out = run_once(params, bag, Path(tmp) / f"out{r}.mcap", K, store, not args.no_preprocess,
                                 per_frame)
            runs.append(st)
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run_once(params, bag, Path(tmp) / "prof.mcap", K, store, False, [])
            prof.disable()
            pstats.Stats(prof).sort_stats(os.environ.get("PROF_SORT", "tottime")).print_stats(args.profile)
    n = args.frames
    print(f"\nCPU path per new frame ({n} frames in, {n_out} published, {args.repeats} repeats; "
          f"pid {os.getpid()}, {os.cpu_count()} CPUs)")
    print("| stage | median ms/frame | spread (min-max) |\n|---|---:|---:|")
    for name in runs[0]:
        vals = [1e3 * r[name] / n for r in runs]
        print(f"| {name} | {statistics.median(vals):.2f} | {min(vals):.2f}-{max(vals):.2f} |")
    if args.block and n >= 2 * args.block:  # does the cost grow with the run (map, path)?
        starts = range(0, n - args.block + 1, args.block)
        means = [[1e3 * float(np.mean(f[b : b + args.block])) for b in starts] for f in per_frame]
        med = [statistics.median(m[i] for m in means) for i in range(len(means[0]))]
        print(f"\nnode + bag writing, mean ms per frame by block of {args.block} frames "
              "(median over repeats): " + ", ".join(f"{x:.1f}" for x in med))
    tot = statistics.median(r[TOTAL_LIVE] for r in runs)
    print(f"\nlive node, frames/s (CPU path only): {n / tot:.1f}; target <= 15 ms per frame: "
          f"{'met' if 1e3 * tot / n <= 15 else 'NOT met'} ({1e3 * tot / n:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
