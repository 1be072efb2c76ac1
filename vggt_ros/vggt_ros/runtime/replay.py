"""`vggt-ros replay BAG`: run a rosbag through the node's runtime, offline and deterministically.

The bag's image (and camera_info) messages are decoded (bad input is a counted drop by reason), turned
into `Frame`s and fed to `NodeCore` in sync mode (every valid frame processed, in order, as fast as the
predictor allows). The runtime's publications are written, with the messages the live node would
publish, into OUT/output.mcap under the namespace (default /vggt; /tf and /diagnostics absolute).
Beside it: trajectory.tum (every frame's T_map_cam), keyframes.tum, map.ply, report.json, report.md and,
with ground truth (--ground-truth, or a pose topic found in the bag), the evaluation plots.

Exit codes: 0 done; 2 bad input (bag, params, topics, ground truth); 3 predictor unavailable
(e.g. VGGT weights offline: the loader's message is printed, no traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vggt_ros.slam.updates import FramePose

from .core import NodeCore
from .factory import (
    SIMULATED_NOTE,
    PredictorUnavailable,
    make_pipeline,
    make_simulated_predictor,
    make_vggt_predictor,
)
from .params import ParamError, Params, load_params_yaml
from .publishing import TOPICS, PathOut, Publication

log = logging.getLogger("vggt_ros.replay")

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DEFAULT_NAMESPACE = "/vggt"


class ReplayError(RuntimeError):
    """Input the replay cannot use (missing bag, no image topic, ...); exit code 2."""


def output_topic(name: str, namespace: str) -> str:
    """Resolved output name: absolute names stay, relative ones go under the namespace."""
    if name.startswith("/"):
        return name
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{ns}/{name}"


def match_topic(wanted: str, topics: dict[str, str], types: tuple[str, ...],
                exact: bool = False) -> str | None:
    """The bag topic for a (possibly relative) name: exact, '/'+name, or the one topic ending in '/'+name;
    unless `exact`, else the only topic of `types` that is not depth or ground truth (by its name)."""
    of_type = {t for t, ty in topics.items() if ty in types}
    for cand in (wanted, "/" + wanted.lstrip("/")):
        if cand in of_type:
            return cand
    ending = [t for t in of_type if t.endswith("/" + wanted.strip("/"))]
    if len(ending) == 1:
        return ending[0]
    if exact:
        return None
    plain = [t for t in of_type if not any(k in t.lower() for k in ("depth", "ground_truth", "groundtruth"))]
    if len(plain) == 1:
        return plain[0]
    return None


@dataclass
class Recorder:
    """Keeps every published camera pose (from the path publications) for trajectory.tum."""

    poses: dict[int, FramePose] = field(default_factory=dict)

    def record(self, pub: Publication) -> None:
        if pub.topic == "path":
            assert isinstance(pub.data, PathOut)
            for p in pub.data.poses:
                self.poses[p.stamp_ns] = p


class BagSink:
    """Builds each publication's message (rosbags classes) and writes it to the output bag."""

    def __init__(self, writer: Any, builder: Any, namespace: str, recorder: Recorder) -> None:
        from vggt_ros.io.bag import QOS_PROFILES

        from .sinks import MessageSink

        self.writer = writer
        self.namespace = namespace
        self.recorder = recorder
        for spec in TOPICS.values():
            writer.add_topic(output_topic(spec.name, namespace), spec.msgtype, QOS_PROFILES[spec.qos])
        self.inner = MessageSink(builder, self._write)

    def _write(self, topic: str, msg: Any, stamp_ns: int) -> None:
        self.writer.write(output_topic(topic, self.namespace), int(stamp_ns), msg)

    def publish(self, pub: Publication) -> None:
        self.recorder.record(pub)
        self.inner.publish(pub)


@dataclass
class ReplayResult:
    """What a replay produced: output paths, the report dict and the output bag's message counts."""

    out_dir: Path
    report: dict[str, Any]
    topic_counts: dict[str, int]
    image_topic: str
    frames_in_bag: int


def _ground_truth_lookup(bag: Path) -> Any:
    """io.sample's ground truth of a sample bag, as a stamp_ns -> GroundTruth callable."""
    from vggt_ros.io.sample import read_ground_truth

    try:
        gt = read_ground_truth(bag)
    except Exception as exc:  # no ground-truth topics, wrong bag: a user error, not a crash
        raise PredictorUnavailable(f"--predictor simulated needs the sample bag's ground-truth topics "
                                   f"(vggt-ros sample): {exc}") from exc
    if callable(gt):
        return gt
    if isinstance(gt, dict):
        return gt.__getitem__
    raise PredictorUnavailable(f"io.sample.read_ground_truth returned {type(gt).__name__}")


def replay(bag: str | Path, out_dir: str | Path, params: Params | None = None, *,
           ground_truth: str | None = None, image_topic: str | None = None,
           camera_info_topic: str | None = None, namespace: str = DEFAULT_NAMESPACE,
           progress: bool = True, predictor: Any = None) -> ReplayResult:
    """Replay `bag` into `out_dir` (see the module docstring). `predictor` overrides params['predictor']
    (tests pass wrapped predictors). Raises ReplayError / PredictorUnavailable / ParamError."""
    from vggt_ros.eval.command import (
        GroundTruthError,
        find_ground_truth_tf_child,
        find_ground_truth_topic,
        load_ground_truth,
    )
    from vggt_ros.eval.report import write_report
    from vggt_ros.io.bag import BagWriter, bag_topics, read_messages
    from vggt_ros.io.ply import write_ply
    from vggt_ros.io.tum import write_tum
    from vggt_ros.msgs.builders import MessageBuilder
    from vggt_ros.msgs.decode import ImageDecodeError, camera_info_K
    from vggt_ros.msgs.family import RosbagsFamily
    from vggt_ros.msgs.frame import image_to_frame, intrinsics_if_size

    params = params or Params()
    bag = Path(bag)
    out = Path(out_dir)
    if not bag.exists():
        raise ReplayError(f"bag {bag} does not exist")
    try:
        infos = bag_topics(bag)
    except Exception as exc:  # rosbags raises several types on unreadable bags
        raise ReplayError(f"cannot read bag {bag}: {exc}") from exc
    types = {t: i.msgtype for t, i in infos.items()}
    compressed = params["image_transport"] == "compressed"
    want_image = image_topic or (params["compressed_image_topic"] if compressed else params["image_topic"])
    exact = image_topic is not None
    img_topic = match_topic(want_image, types, (COMPRESSED_TYPE,) if compressed else (IMAGE_TYPE,), exact) \
        or match_topic(want_image, types, (IMAGE_TYPE, COMPRESSED_TYPE), exact)
    if img_topic is None:
        listing = ", ".join(f"{t} [{ty}]" for t, ty in sorted(types.items()))
        raise ReplayError(f"{bag}: no image topic {want_image!r} (pass --image-topic; topics: {listing})")
    info_topic = match_topic(camera_info_topic or params["camera_info_topic"], types, (CAMERA_INFO_TYPE,),
                             camera_info_topic is not None)
    if camera_info_topic is not None and info_topic is None:
        raise ReplayError(f"{bag}: no camera_info topic {camera_info_topic!r}")

    # predictor first: a missing model must fail before any output is written
    kind = params["predictor"]
    note = ""
    if predictor is None:
        if kind == "simulated":
            predictor = make_simulated_predictor(_ground_truth_lookup(bag))
        else:
            predictor = make_vggt_predictor(params)
    if kind == "simulated":
        note = SIMULATED_NOTE
    pname = str(getattr(predictor, "name", kind))

    gt_data = None
    if ground_truth:
        try:
            gt_data = load_ground_truth(ground_truth)
        except GroundTruthError as exc:
            raise ReplayError(str(exc)) from exc

    out.mkdir(parents=True, exist_ok=True)
    pipeline = make_pipeline(params, predictor)
    recorder = Recorder()
    builder = MessageBuilder(RosbagsFamily(), params["map_frame"])
    n_images = infos[img_topic].count
    t_start = time.monotonic()
    K_info: np.ndarray | None = None
    K_size: tuple[int, int] | None = None
    info_problems: dict[str, int] = {}
    with BagWriter(out / "output.mcap", overwrite=True) as writer:
        sink = BagSink(writer, builder, namespace, recorder)
        core = NodeCore(params, pipeline, sink, mode="sync", predictor_name=pname, predictor_note=note)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n_images, unit="frame", desc="replay", file=sys.stderr, dynamic_ncols=True)
        topics = [img_topic] + ([info_topic] if info_topic else [])
        for m in read_messages(bag, topics):
            if m.topic == info_topic:
                if m.message is None:
                    info_problems["deserialize"] = info_problems.get("deserialize", 0) + 1
                    continue
                try:
                    K, why = camera_info_K(m.message)
                except (AttributeError, TypeError, ValueError) as exc:  # a CameraInfo we cannot read
                    K, why = None, f"unreadable ({type(exc).__name__})"
                if K is None:
                    info_problems[why] = info_problems.get(why, 0) + 1
                else:
                    K_info, K_size = K, (int(m.message.height), int(m.message.width))
                continue
            if bar is not None:
                bar.update(1)
            if m.message is None:
                core.count_drop("deserialize", m.error or "")
                continue
            try:
                frame = image_to_frame(m.message, intrinsics_if_size(
                    K_info if params["use_camera_info"] else None, K_size))
            except ImageDecodeError as exc:
                core.count_drop(exc.reason, str(exc))
                continue
            core.submit(frame)
            if bar is not None:
                bar.set_postfix(processed=core.frames_processed, dropped=core.frames_dropped, refresh=False)
        core.finish()
        if bar is not None:
            bar.close()
        wall = time.monotonic() - t_start
        counts = dict(writer.counts)

    poses = [recorder.poses[s] for s in sorted(recorder.poses)]
    stamps_est = np.array([p.stamp_ns for p in poses], np.int64)
    T_est = np.stack([p.T_map_cam for p in poses]) if poses else np.zeros((0, 4, 4))
    write_tum(out / "trajectory.tum", stamps_est, T_est)
    # keyframes and map from the pipeline's global map: the final (possibly corrected) keyframe poses
    _, kf_stamps, kf_T = pipeline.global_map.keyframe_arrays()
    order = np.argsort(kf_stamps, kind="stable")
    write_tum(out / "keyframes.tum", kf_stamps[order], kf_T[order])
    final_map = pipeline.global_map.snapshot()
    write_ply(out / "map.ply", final_map.points, final_map.colors, final_map.confidence)

    gt_desc = None
    if gt_data is None:  # ground truth in the bag: a pose topic, or a TF child named like ground truth
        topic = find_ground_truth_topic(bag)
        spec = f"{bag}:{topic}" if topic is not None else None
        if spec is None:
            child = find_ground_truth_tf_child(bag)
            spec = f"{bag}:/tf:{child}" if child is not None else None
        if spec is not None:
            try:
                gt_data = load_ground_truth(spec)
            except GroundTruthError as exc:
                log.warning("ground truth %s unusable: %s", spec, exc)
    if gt_data is not None:
        gt_desc = gt_data[2]

    diag = core.diagnostics()
    run = diag.as_dict()
    run["throughput_fps"] = diag.frames_processed / wall if wall > 0 else None
    run["wall_time_s"] = wall
    extra = {
        "bag": str(bag), "image_topic": img_topic, "camera_info_topic": info_topic,
        "frames_in_bag": n_images, "ground_truth": gt_desc,
        "camera_info_problems": info_problems,
        "output_topics": counts, "params": params.as_dict(),
    }
    rep = write_report(out, stamps_est, T_est, gt_data[0] if gt_data else None,
                       gt_data[1] if gt_data else None, run=run, extra=extra)
    return ReplayResult(out, rep, counts, img_topic, n_images)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay", help="run a rosbag through vggt_ros offline (output bag, trajectory, map, report)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="ROS 1 .bag, ROS 2 .db3/.mcap file or bag directory")
    p.add_argument("-o", "--output", default=None, help="output directory (default: <bag stem>_vggt)")
    p.add_argument("--params", default=None,
                   help="parameters YAML in the node's format (/**: ros__parameters:)")
    p.add_argument("--predictor", choices=("vggt", "simulated"), default=None,
                   help="'vggt' (default: VGGT-1B from the hub or weights_path) or 'simulated' "
                        "(TEST DOUBLE from the sample bag's ground truth, no weights)")
    p.add_argument("--weights", default=None, help="local checkpoint file (sets weights_path)")
    p.add_argument("--ground-truth", default=None, help="TUM file or BAG[:/topic] to score against")
    p.add_argument("--image-topic", default=None,
                   help="image topic in the bag (default: params image_topic)")
    p.add_argument("--camera-info-topic", default=None, help="camera_info topic in the bag")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="namespace of the output topics")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="vggt-ros replay: %(message)s")
    try:
        params = load_params_yaml(args.params) if args.params else Params()
        changes: dict[str, Any] = {}
        if args.predictor:
            changes["predictor"] = args.predictor
        if args.weights:
            changes["weights_path"] = args.weights
        params = params.replace(**changes)
    except ParamError as exc:
        print(f"vggt-ros replay: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else Path(args.bag).with_name(Path(args.bag).stem + "_vggt")
    if params["predictor"] == "simulated":
        print(f"vggt-ros replay: {SIMULATED_NOTE}")
    try:
        res = replay(args.bag, out, params, ground_truth=args.ground_truth, image_topic=args.image_topic,
                     camera_info_topic=args.camera_info_topic, namespace=args.namespace,
                     progress=not args.no_progress)
    except PredictorUnavailable as exc:
        print(f"vggt-ros replay: predictor unavailable: {exc}", file=sys.stderr)
        return 3
    except (ReplayError, ParamError) as exc:
        print(f"vggt-ros replay: {exc}", file=sys.stderr)
        return 2
    rep = res.report
    drops = rep.get("drops") or {}
    print(f"replayed {res.frames_in_bag} images from {res.image_topic}: {rep.get('frames_processed', 0)} "
          f"processed, {rep.get('frames_dropped', 0)} dropped"
          + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(drops.items())) + ")" if drops else "")
          + f", {rep.get('windows_rejected', 0)} windows rejected, {rep.get('keyframes', 0)} keyframes")
    if "ate_rmse" in rep:
        print(f"ATE RMSE {rep['ate_rmse']:.6f} (Sim(3)-aligned, {rep['ate_percent']:.3f} % of path), "
              f"RPE {rep['rpe_trans_rmse']:.6f} / {rep['rpe_rot_deg']:.4f} deg vs {rep.get('ground_truth')}")
    else:
        print(f"not scored: {rep.get('evaluation')}")
    lat = rep.get("latency_p50_s")
    if lat is not None:
        print(f"latency p50 {lat:.3f} s, p95 {rep.get('latency_p95_s'):.3f} s, "
              f"throughput {rep.get('throughput_fps') or 0:.2f} frames/s")
    print(f"outputs in {res.out_dir}: output.mcap, trajectory.tum, keyframes.tum, map.ply, report.json, "
          f"report.md" + ("".join(", " + p for p in rep.get("plots", []))))
    if rep.get("predictor_note"):
        print(rep["predictor_note"])
    return 0
