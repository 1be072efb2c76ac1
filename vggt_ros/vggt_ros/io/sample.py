"""`vggt-ros sample OUT_DIR`: render a synthetic sequence and write it as the demo's sample bag.

The bag's layout is io/sample_bag.py's, its per-frame ground truth is read back by io/sample_truth.py
(both re-exported here for older imports). Output: OUT_DIR/sample.mcap and OUT_DIR/ground_truth.tum,
written beside OUT_DIR and moved in when complete (io/outputs.py). SIGINT / SIGTERM stop after the frame
in hand: the frames written so far become a valid (shorter) bag and its ground truth, marked by
PARTIAL.txt (in OUT_DIR.partial/ when OUT_DIR holds a complete sample), exit 130 / 143.

Exit codes: 0 done; 2 bad arguments or output folder; 130 / 143 interrupted (partial sample written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from vggt_ros.io.interrupt import stop_on_signals
from vggt_ros.io.outputs import OutputDirError, StagedOutput
from vggt_ros.io.progress import Progress
from vggt_ros.io.sample_bag import (  # noqa: F401  (re-exported)
    BAG_NAME,
    CAMERA_INFO_TOPIC,
    DEPTH_INFO_TOPIC,
    DEPTH_TOPIC,
    GT_CAMERA_FRAME,
    GT_DEPTH_INFO_TOPIC,
    GT_DEPTH_TOPIC,
    GT_ODOMETRY_TOPIC,
    IMAGE_TOPIC,
    TF_STATIC_TOPIC,
    TF_TOPIC,
    TOPIC_QOS,
    TOPIC_TYPES,
    TUM_NAME,
    WORLD_FRAME,
    SensorOptions,
    write_sample,
    write_sample_bag,
)
from vggt_ros.io.sample_truth import ground_truth_part, read_ground_truth  # noqa: F401  (re-exported)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sample",
        help="write a synthetic sequence as a ROS 2 bag (sample.mcap) + ground_truth.tum",
        description="Render a synthetic room sequence and write OUT_DIR/sample.mcap (image, camera_info, "
        "ground-truth odometry, /tf and depth, 30 Hz; robot sensors: a noisy 16UC1 depth camera and an "
        "odom -> base_link -> camera_optical_frame TF chain with drift and slip) and "
        "OUT_DIR/ground_truth.tum. Exit codes: 0 done, "
        "2 bad arguments or output folder, 130/143 interrupted (partial sample, marked PARTIAL.txt).",
    )
    p.add_argument("out_dir", type=Path, help="output folder (created; sample.mcap is replaced)")
    p.add_argument("--frames", type=int, default=300, help="number of frames (default 300 = 10 s at 30 Hz)")
    p.add_argument("--kind", choices=("loop", "forward", "rotation", "still"), default="loop",
                   help="camera trajectory (default loop: one closed lap of the room)")
    p.add_argument("--width", type=int, default=320, help="image width in pixels (default 320)")
    p.add_argument("--height", type=int, default=240, help="image height in pixels (default 240)")
    p.add_argument("--seed", type=int, default=0, help="texture seed of the room (default 0)")
    p.add_argument("--no-depth-sensor", action="store_true",
                   help="no metric depth camera topic (/camera/depth/image_rect_raw, 16UC1 mm, half size)")
    p.add_argument("--no-odometry", action="store_true",
                   help="no wheel odometry TF chain (odom -> base_link -> camera_optical_frame)")
    p.add_argument("--odometry-drift", type=float, default=0.02,
                   help="odometry translation scale error (default 0.02 = 2 %%)")
    p.add_argument("--slip-every", type=int, default=120,
                   help="a wheel-slip event every N frames (default 120; 0 = none)")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vggt_ros.sim.sequence import make_sequence

    if args.frames < 1 or args.width < 8 or args.height < 8:
        print("vggt-ros sample: need --frames >= 1 and an image of at least 8x8 pixels", file=sys.stderr)
        return 2
    try:
        stage = StagedOutput(args.out_dir, BAG_NAME, (BAG_NAME, TUM_NAME))
    except OutputDirError as exc:
        print(f"vggt-ros sample: {exc}", file=sys.stderr)
        return 2
    sensors = _sensors(args)
    seq = make_sequence(args.kind, args.frames, width=args.width, height=args.height, seed=args.seed)
    t0 = time.monotonic()
    bar = Progress(len(seq), "sample", enabled=not args.no_progress)
    try:
        with stop_on_signals() as stop:
            bag, tum = write_sample(stage.path, seq, progress=lambda i, n: bar.update(1), stop=stop,
                                    sensors=sensors)
            bar.close()
            written = bar.done
            note = None
            if stop() and written < len(seq):  # a stop after the last frame leaves a complete sample
                note = (f"partial sample: interrupted by {stop.name} after {written} of {len(seq)} frames "
                        f"(sample.mcap and ground_truth.tum hold those {written} frames)")
            where = stage.commit(note)
    finally:
        stage.discard()
    dt = time.monotonic() - t0
    bag = where / BAG_NAME
    print(f"wrote {bag} ({written} frames {args.kind} at {args.width}x{args.height}, 30 Hz, "
          f"{bag.stat().st_size / 1e6:.1f} MB) and {where / TUM_NAME} in {dt:.1f} s")
    if note is not None:
        print(f"vggt-ros sample: {note}; in {where}", file=sys.stderr)
        return stop.exit_code
    return 0


def _sensors(args: argparse.Namespace) -> SensorOptions:
    """The robot sensor topics the flags ask for (noise seed = the room's seed)."""
    from vggt_ros.sim.sensors import DepthSensor, OdometryNoise, OdometrySensor

    odom = OdometrySensor(OdometryNoise(drift=args.odometry_drift, slip_every=max(0, args.slip_every)))
    return SensorOptions(depth=None if args.no_depth_sensor else DepthSensor(),
                         odometry=None if args.no_odometry else odom, seed=args.seed)
