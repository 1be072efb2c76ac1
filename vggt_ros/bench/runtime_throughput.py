#!/usr/bin/env python3
"""Node throughput, serial vs pipelined, with a predictor double timed like VGGT on an H100 (issue 14).

The double replays the SimulatedPredictor's recorded outputs after VGGTPredictor's CPU preprocessing of
the window (the resize, in the frame callback when live, and the window canvas) and sleeps what
VGGT's aggregator takes for the window's frame count on one H100 (VGGT README, FlashAttention 3:
1: 0.04 s, 2: 0.05, 4: 0.07, 8: 0.11, 10: 0.14, 20: 0.31, 50: 1.04, 100: 3.12; linear in between),
times --cost-scale. A sleep releases the GIL as a CUDA forward does, so the overlap measured here is
the one the pipelined runtime can get on a GPU machine with this CPU. Everything else is the real
live path: NodeCore (live) -> slam.Pipeline -> MessageSink -> BagWriter (.mcap).

Runtimes: serial (`pipelined` false), pipelined (the shipped default: messages built and published on a
publisher thread), after keyframes (pipelined + `predict_after_keyframes`: the next window is predicted
on a predictor thread from the moment the previous one's keyframes and anchor links are in, with the
anchors a serial run chooses, while the worker does that window's cloud, loop closure and map), ahead
(pipelined + `predict_ahead`: the next window is predicted on a predictor thread while the worker
stitches the previous one, with anchors chosen one window earlier; its accuracy cost is measured by
bench/slam_robustness.py --param predict_ahead=true) and ahead with 6 anchors (18-frame windows: most
of that accuracy back, README "Real time on one GPU").

1. Throughput: all frames queued at once (queue 1000, nothing dropped), each runtime, same frames:
   new frames/s and the ratios to serial.
2. Live at 30 Hz: frames submitted at 30 Hz (drop 'latest'), for each --live-queues queue_size and
   --live-scales cost factor: frames processed / dropped by reason, latency p50/p95 from submit() to
   the odometry publication leaving the sink (image-to-TF latency on this machine).

Usage (from vggt_ros/): python bench/runtime_throughput.py [--frames 124 --width 640 --height 480]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpu_path_bench import TRACK_MIN_HW, ReplayedPredictorDouble, Store, record  # noqa: E402
from vggt_ros.io.bag import BagWriter  # noqa: E402
from vggt_ros.model.predictor import FramePreprocessor, PredictorConfig  # noqa: E402
from vggt_ros.msgs.builders import MessageBuilder  # noqa: E402
from vggt_ros.msgs.family import RosbagsFamily  # noqa: E402
from vggt_ros.runtime.core import NodeCore  # noqa: E402
from vggt_ros.runtime.factory import make_pipeline  # noqa: E402
from vggt_ros.runtime.params import Params  # noqa: E402
from vggt_ros.runtime.publishing import Publication  # noqa: E402
from vggt_ros.runtime.replay import BagSink, Recorder  # noqa: E402
from vggt_ros.sim.sequence import make_sequence  # noqa: E402
from vggt_ros.sim.simulated_predictor import SimulatedPredictor  # noqa: E402
from vggt_ros.types import Frame, WindowPrediction  # noqa: E402

H100_AGG_S = {1: 0.04, 2: 0.05, 4: 0.07, 8: 0.11, 10: 0.14, 20: 0.31, 50: 1.04, 100: 3.12}


def h100_seconds(frames: int) -> float:
    """VGGT aggregator time on one H100 for a window of `frames` frames (published table, interpolated)."""
    xs = sorted(H100_AGG_S)
    return float(np.interp(frames, xs, [H100_AGG_S[x] for x in xs]))


class TimedPredictorDouble(ReplayedPredictorDouble):
    """TEST DOUBLE: recorded outputs, after VGGTPredictor's own CPU preprocessing of the window (its
    FramePreprocessor: frames prepared in the frame callback are cached, the rest resized here) and
    sleeping `scale` x the H100 time of the window."""

    name = "timed-h100-double"

    def __init__(self, store: Store, scale: float, fallback: Any) -> None:
        super().__init__(store)
        self.scale = scale
        self.fallback = fallback  # windows never recorded (drops changed them): the simulated predictor
        self.misses = 0
        cfg = PredictorConfig()
        self.preprocessor = FramePreprocessor(cfg.mode, cfg.image_size, cfg.token_cache_frames)

    def prepare(self, frame: Frame) -> None:
        self.preprocessor.prepare(frame)

    def predict(self, frames: Sequence[Frame], query_points: np.ndarray,
                depth_for: Sequence[int]) -> WindowPrediction:
        self.preprocessor(frames, TRACK_MIN_HW)
        time.sleep(self.scale * h100_seconds(len(frames)))
        if tuple(int(f.stamp_ns) for f in frames) in self.store:
            return super().predict(frames, query_points, depth_for)
        self.misses += 1
        return self.fallback.predict(frames, query_points, depth_for)


class TimingSink:
    """BagSink (messages + .mcap) that notes when each frame's odometry left the sink."""

    def __init__(self, inner: BagSink) -> None:
        self.inner = inner
        self.published_at: dict[int, float] = {}

    def publish(self, pub: Publication) -> None:
        self.inner.publish(pub)
        if pub.topic == "odometry":
            self.published_at[pub.stamp_ns] = time.monotonic()


RUNTIMES: dict[str, dict[str, Any]] = {
    "serial": {"pipelined": False},
    "pipelined": {"pipelined": True},
    "after keyframes": {"pipelined": True, "predict_after_keyframes": True},
    "ahead": {"pipelined": True, "predict_ahead": True},
    "ahead, 6 anchors": {"pipelined": True, "predict_ahead": True, "window_anchors": 6},
}


#: node parameters that leave a run's windows (frames, anchors) as the shipped defaults make them
SAME_WINDOWS = frozenset({"pipelined", "predict_after_keyframes"})


def windows_key(overrides: dict[str, Any]) -> str:
    """Runs whose windows are the same share a recording: the overrides that change them."""
    return repr(sorted((k, v) for k, v in overrides.items() if k not in SAME_WINDOWS))


def drive_live(frames: Sequence[Frame], params: Params, pred: Any, out: Path,
               rate_hz: float | None) -> dict[str, Any]:
    """The live NodeCore (worker, publisher and predictor threads as the node runs them) writing an .mcap
    at `out`: frames submitted all at once (rate_hz None) or at rate_hz, then stopped and finished.
    Returns its diagnostics `d`, `wall_s` (first submit to the last odometry published) and `latency`
    (submit to odometry, s, per published frame)."""
    submitted: dict[int, float] = {}
    with BagWriter(out, overwrite=True) as writer:
        sink = TimingSink(BagSink(writer, MessageBuilder(RosbagsFamily(), params["map_frame"]), "/vggt",
                                  Recorder()))
        core = NodeCore(params, make_pipeline(params, pred), sink, mode="live")
        core.start()
        t0 = time.monotonic()
        for i, f in enumerate(frames):
            if rate_hz is not None:
                time.sleep(max(0.0, t0 + i / rate_hz - time.monotonic()))
            submitted[f.stamp_ns] = time.monotonic()
            core.submit(f)
        while len(core.queue) and time.monotonic() - t0 < 600:  # the last frames, not 'shutdown'
            time.sleep(0.005)
        core.stop(timeout=120.0)
        core.finish()
        core.wait_published(60.0)
        wall = max(sink.published_at.values(), default=t0) - t0
    lat = [sink.published_at[s] - submitted[s] for s in sink.published_at if s in submitted]
    return {"d": core.diagnostics(), "wall_s": wall, "latency": lat}


def percentile(x: list[float], q: float) -> float:
    """np.percentile, NaN for no samples."""
    return float(np.percentile(x, q)) if x else float("nan")


def run_live(frames: Sequence[Frame], store: Store, fallback: Any, out: Path, runtime: str,
             scale: float, rate_hz: float | None, queue_size: int) -> dict[str, Any]:
    """One live run; rate_hz None = everything queued at once (throughput, drop 'oldest')."""
    q = {"drop_policy": "oldest"} if rate_hz is None else {}
    params = Params({**RUNTIMES[runtime], "queue_size": queue_size, **q})
    pred = TimedPredictorDouble(store, scale, fallback)
    r = drive_live(frames, params, pred, out, rate_hz)
    d, wall, lat = r["d"], r["wall_s"], r["latency"]
    return {"processed": d.frames_processed, "dropped": dict(d.drops), "received": d.frames_received,
            "wall_s": wall, "fps": d.frames_processed / wall if wall > 0 else float("nan"),
            "lat_p50": percentile(lat, 50), "lat_p95": percentile(lat, 95), "misses": pred.misses}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=124, help="16 + 12k frames fill whole windows")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--cost-scale", type=float, default=1.0, help="x the H100 time (throughput runs)")
    ap.add_argument("--live-scales", default="1.0,0.25", help="cost factors of the 30 Hz live runs")
    ap.add_argument("--live-queues", default="4,16", help="queue_size of the live runs (4 = default)")
    ap.add_argument("--live-frames", type=int, default=0, help="frames of the live runs (0 = --frames)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    seq = make_sequence("loop", args.frames, width=args.width, height=args.height)
    frames = [seq[i] for i in range(len(seq))]
    truth = {f.stamp_ns: seq.ground_truth_at(i) for i, f in enumerate(frames)}
    fallback = SimulatedPredictor(truth.__getitem__)
    stores: dict[str, Store] = {}
    for p in RUNTIMES.values():
        if windows_key(p) not in stores:
            ask = Params({k: v for k, v in p.items() if k != "pipelined"})
            stores[windows_key(p)] = record(ask, seq, frames)
    store_of = {m: stores[windows_key(p)] for m, p in RUNTIMES.items()}
    print(f"setup (render + record, untimed): {time.perf_counter() - t0:.1f} s; {len(frames)} frames "
          f"{args.width}x{args.height}; double: H100 aggregator time x {args.cost_scale} "
          f"(16 frames: {h100_seconds(16):.3f} s, 12 new per window -> GPU bound "
          f"{12 / (args.cost_scale * h100_seconds(16)):.0f} frames/s)")
    with tempfile.TemporaryDirectory() as tmp:
        res = {m: run_live(frames, store_of[m], fallback, Path(tmp) / f"{m}.mcap", m,
                           args.cost_scale, None, 1000) for m in RUNTIMES}
        print("\n| runtime | frames processed | dropped | wall s | new frames/s | x serial |\n"
              "|---|---:|---:|---:|---:|---:|")
        for m, r in res.items():
            print(f"| {m} | {r['processed']} | {sum(r['dropped'].values())} | {r['wall_s']:.2f} | "
                  f"{r['fps']:.1f} | {r['fps'] / res['serial']['fps']:.2f} |")
        live_frames = frames[: args.live_frames or len(frames)]
        print(f"\nLive at 30 Hz ({len(live_frames)} frames, drop 'latest'):")
        print("| runtime | queue_size | cost x H100 | processed | drops by reason | latency p50 s | p95 s | "
              "unrecorded windows |\n|---|---:|---:|---:|---|---:|---:|---:|")
        runs = [(int(qs), float(sc), m) for qs in args.live_queues.split(",")
                for sc in args.live_scales.split(",") for m in RUNTIMES]
        for qsize, scale, m in runs:
            r = run_live(live_frames, store_of[m], fallback, Path(tmp) / "live.mcap", m, scale,
                         30.0, qsize)
            assert r["received"] == r["processed"] + sum(r["dropped"].values())
            print(f"| {m} | {qsize} | {scale:g} | {r['processed']}/{r['received']} | {r['dropped'] or '-'} | "
                  f"{r['lat_p50']:.3f} | {r['lat_p95']:.3f} | {r['misses']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
