"""`vggt-ros replay BAG`: run a rosbag through the node's runtime, offline and deterministically.

The bag's image (and camera_info) messages are decoded (bad input is a counted drop by reason), turned
into `Frame`s and fed to `NodeCore` in sync mode (every valid frame processed, in order, as fast as the
predictor allows). The runtime's publications are written, with the messages the live node would
publish, into OUT/output.mcap under the namespace (default /vggt; /tf and /diagnostics absolute).
Beside it: trajectory.tum (every frame's T_map_cam), keyframes.tum, map.ply, report.json, report.md and,
with ground truth (--ground-truth, or a pose topic found in the bag), the evaluation plots.

Predictor: --predictor vggt (strict: no weights is exit 3), simulated (the TEST DOUBLE: the sample bag's
ground truth plus noise) or auto (the demo's default: vggt, and when its weights cannot be had, one
paragraph on how to get them, then the same replay with the simulated predictor, labelled SIMULATED in
stdout, report, plots and /diagnostics).

Outputs are written into a staging folder beside OUT and moved in when done (io/outputs.py): a complete
run replaces an earlier output set whole; SIGINT / SIGTERM stop after the frame in hand and finalise
what was processed (valid output.mcap, trajectory, keyframes, map, report marked partial with the frame
counts, PARTIAL.txt), in OUT when OUT held no complete set, else in OUT.partial/.

Odd input: a camera whose resolution changes is rescaled to the working size (slam.validation.FrameSizer,
K scaled, each change counted); 16-bit images scale by the stream's bit depth (msgs.decode.BitDepth);
a truncated .mcap is read up to the cut (io.bag; `mcap recover` repairs the file).

Exit codes (EXIT_*): 0 done; 2 bad input (bag, params, topics, ground truth, output folder);
3 predictor unavailable (e.g. VGGT weights offline with --predictor vggt: the loader's message, no
traceback); 4 nothing processed (every frame dropped: e.g. --image-topic names a depth topic);
5 partial input (a truncated bag: the readable part was replayed); 130 / 143 interrupted by SIGINT /
SIGTERM (partial output set written).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
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
    model_spec,
)
from .metric_input import MetricInput
from .params import ParamError, Params, load_params_yaml
from .publishing import TOPICS, PathOut, Publication

log = logging.getLogger("vggt_ros.replay")

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
DEFAULT_NAMESPACE = "/vggt"

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NO_PREDICTOR = 3
EXIT_NOTHING_PROCESSED = 4
EXIT_PARTIAL_INPUT = 5
OUTPUT_FILES = ("output.mcap", "trajectory.tum", "keyframes.tum", "map.ply", "report.json", "report.md",
                "trajectory_top_view.png", "ate_over_time.png")


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
    """What a replay produced: where the output set went, the report dict and the output bag's counts.

    stopped: the stop request's name ('SIGTERM', ...) when interrupted, else ''. truncated: why the bag
    ended early (a truncated .mcap), else None.
    """

    out_dir: Path
    report: dict[str, Any]
    topic_counts: dict[str, int]
    image_topic: str
    frames_in_bag: int
    stopped: str = ""
    truncated: str | None = None

    @property
    def exit_code(self) -> int:
        """EXIT_* of the run, except interruptions (the caller knows the signal: 128 + signum)."""
        if not self.report.get("frames_processed"):
            return EXIT_NOTHING_PROCESSED
        if self.truncated:
            return EXIT_PARTIAL_INPUT
        return EXIT_OK


@dataclass(frozen=True)
class BagInput:
    """The bag's topics the replay reads; n_images counts the readable image messages."""

    bag: Path
    image_topic: str
    info_topic: str | None
    n_images: int
    truncated: str | None
    metric_topics: dict[str, str] = field(default_factory=dict)  # topic -> role (scale_source inputs)


def open_input(bag: Path, params: Params, image_topic: str | None,
               camera_info_topic: str | None) -> BagInput:
    """Find the image (and camera_info) topic; ReplayError for a missing/unreadable bag or topic."""
    from vggt_ros.io.bag import bag_info

    if not bag.exists():
        raise ReplayError(f"bag {bag} does not exist")
    try:
        info = bag_info(bag)
    except Exception as exc:  # rosbags raises several types on unreadable bags
        raise ReplayError(f"cannot read bag {bag}: {exc}") from exc
    types = {t: i.msgtype for t, i in info.topics.items()}
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
    if info.truncated:
        log.warning("%s is truncated (%s); replaying the readable part. `mcap recover %s -o fixed.mcap` "
                    "(the mcap CLI) may rescue more.", bag, info.truncated, bag)
    return BagInput(bag, img_topic, info_topic, info.topics[img_topic].count, info.truncated,
                    metric_topics(bag, params, types))


def metric_topics(bag: Path, params: Params, types: dict[str, str]) -> dict[str, str]:
    """The bag's topics for scale_source (topic -> role: depth, depth_info, tf, tf_static), as the live
    node would subscribe them; ReplayError when a needed one is missing."""
    from vggt_ros.runtime.metric_input import depth_info_topics

    source = params["scale_source"]
    if source == "depth":
        topic = params["metric_depth_topic"]
        if not topic or types.get(topic) != IMAGE_TYPE:
            raise ReplayError(f"{bag}: scale_source 'depth' needs metric_depth_topic, a sensor_msgs/Image "
                              f"topic of the bag (got {topic!r})")
        infos = [t for t in depth_info_topics(params) if types.get(t) == CAMERA_INFO_TYPE]
        if not infos:
            tried = ", ".join(depth_info_topics(params))
            raise ReplayError(f"{bag}: no CameraInfo for {topic} (tried {tried}; set metric_depth_info_topic)"
                              )
        return {topic: "depth", infos[0]: "depth_info"}
    if source == "odometry":
        if "/tf" not in types:
            raise ReplayError(f"{bag}: scale_source 'odometry' needs /tf with "
                              f"{params['odom_frame']} -> camera")
        return {"/tf": "tf", **({"/tf_static": "tf_static"} if "/tf_static" in types else {})}
    return {}


def _ground_truth_lookup(bag: Path) -> Any:
    """The sample bag's ground truth (io.sample_truth, read lazily) as a stamp_ns -> GroundTruth callable."""
    from vggt_ros.io.sample_truth import read_ground_truth

    try:
        return read_ground_truth(bag)
    except Exception as exc:  # no ground-truth topics, wrong bag: a user error, not a crash
        raise PredictorUnavailable(f"--predictor simulated needs the sample bag's ground-truth topics "
                                   f"(vggt-ros sample): {exc}") from exc


def fallback_paragraph(params: Params, exc: Exception) -> str:
    """What `--predictor auto` prints when VGGT's weights cannot be had: why, how to get them, licence."""
    from vggt_ros.model.weights import ModelSource, WeightsOfflineError, weights_help

    cause = exc.__cause__
    if isinstance(cause, WeightsOfflineError):
        why = "they are not in the hub cache and the hub cannot be reached (or HF_HUB_OFFLINE is set)"
    else:
        why = str(exc).split("; ")[0]
    try:
        source = ModelSource.parse(model_spec(params))
        how = weights_help(source, mention_simulated=False) if source.repo_id \
            else "Check --weights / weights_path."
    except ValueError:
        how = ""
    return (f"VGGT weights unavailable: {why}. {how} Running the same replay with the SIMULATED predictor "
            f"(test double) instead; `--predictor vggt` makes a missing model an error (exit 3).")


def choose_predictor(params: Params, bag: Path, fallback_to_simulated: bool,
                     announce: Callable[[str], None]) -> tuple[Any, Params]:
    """The predictor params ask for (and params with the kind that really runs): 'auto' fallback here."""
    if params["predictor"] == "simulated":
        return make_simulated_predictor(_ground_truth_lookup(bag)), params
    try:
        return make_vggt_predictor(params), params
    except PredictorUnavailable as exc:
        if not fallback_to_simulated:
            raise
        announce(fallback_paragraph(params, exc))
        return make_simulated_predictor(_ground_truth_lookup(bag)), params.replace(predictor="simulated")


class FrameFeed:
    """Bag messages -> Frames into NodeCore: camera_info K, decoding (16-bit depth per stream), the
    resolution rule (FrameSizer), drops counted by reason. Counts camera_info problems by reason.

    truth_end_ns: with the simulated predictor, the last stamp it has ground truth for; later frames
    (past the cut of a truncated sample bag) are counted drops 'no_ground_truth' instead of windows the
    test double cannot predict (earlier frames keep the pipeline's own checks and reasons).
    """

    def __init__(self, params: Params, core: NodeCore, info_topic: str | None,
                 truth_end_ns: int | None = None) -> None:
        from vggt_ros.msgs.decode import BitDepth
        from vggt_ros.slam.validation import FrameSizer

        self.params = params
        self.core = core
        self.info_topic = info_topic
        self.bit_depth = BitDepth()
        self.sizer = FrameSizer(params["window_anchors"] + params["window_new_frames"])
        self.K_info: np.ndarray | None = None
        self.K_size: tuple[int, int] | None = None
        self.info_problems: dict[str, int] = {}
        self.images_read = 0
        self.truth_end_ns = truth_end_ns
        self.metric_roles: dict[str, str] = {}
        self.image_topic = ""
        self.metric = MetricInput(core, params)

    def message(self, m: Any) -> None:
        """One bag message (BagMessage) of the image, camera_info or a metric-scale topic."""
        role = self.metric_roles.get(m.topic)
        if role is not None:
            self._metric(role, m)
            if m.topic not in (self.info_topic, self.image_topic):
                return
        if m.topic == self.info_topic:
            self._camera_info(m.message)
            return
        self.images_read += 1
        self._image(m)

    def _metric(self, role: str, m: Any) -> None:
        """A metric-scale message: the live node's callbacks (runtime.metric_input), same code path."""
        if m.message is None:
            self.metric.rejected[f"{role}_deserialize"] += 1
        elif role == "depth":
            self.metric.on_depth(m.message)
        elif role == "depth_info":
            self.metric.on_depth_info(m.message)
        else:
            self.metric.on_tf(m.message, static=role == "tf_static")

    def _camera_info(self, msg: Any) -> None:
        from vggt_ros.msgs.decode import camera_info_K

        if msg is None:
            self.info_problems["deserialize"] = self.info_problems.get("deserialize", 0) + 1
            return
        try:
            K, why = camera_info_K(msg)
        except (AttributeError, TypeError, ValueError) as exc:  # a CameraInfo we cannot read
            K, why = None, f"unreadable ({type(exc).__name__})"
        if K is None:
            self.info_problems[why] = self.info_problems.get(why, 0) + 1
        else:
            self.K_info, self.K_size = K, (int(msg.height), int(msg.width))

    def _image(self, m: Any) -> None:
        from vggt_ros.msgs.decode import ImageDecodeError
        from vggt_ros.msgs.frame import image_to_frame, intrinsics_if_size

        if m.message is None:
            self.core.count_drop("deserialize", m.error or "")
            return
        K_info = self.K_info if self.params["use_camera_info"] else None
        try:
            frame = image_to_frame(m.message, intrinsics_if_size(K_info, self.K_size), self.bit_depth)
        except ImageDecodeError as exc:
            self.core.count_drop(exc.reason, str(exc))
            return
        if self.truth_end_ns is not None and frame.stamp_ns > self.truth_end_ns:
            self.core.count_drop("no_ground_truth", f"stamp {frame.stamp_ns}: after the simulated "
                                 "predictor's last ground truth")
            return
        for f in self.sizer.push(frame):
            self.core.submit(f)

    def finish(self) -> None:
        """Release the frames the size rule still holds, then flush the pipeline's last window."""
        for f in self.sizer.flush():
            self.core.submit(f)
        self.core.finish()

    def resolution(self) -> dict[str, Any]:
        size = self.sizer.size
        return {"working_size_hw": list(size) if size else None, "changes": self.sizer.changes,
                "frames_rescaled": self.sizer.frames_rescaled}


def _feed(inp: BagInput, feed: FrameFeed, bar: Any, stop: Callable[[], bool]) -> None:
    """Read the bag into `feed` until its end or stop() (checked after every image)."""
    from vggt_ros.io.bag import read_messages

    core = feed.core
    topics = [inp.image_topic] + ([inp.info_topic] if inp.info_topic else [])
    topics += [t for t in inp.metric_topics if t not in topics]
    feed.metric_roles, feed.image_topic = dict(inp.metric_topics), inp.image_topic
    # with metric topics, an image waits for the messages logged at its time (its depth / TF come after
    # it in the bag), as a live node's queue lets them arrive before the worker takes the frame
    hold = bool(inp.metric_topics)
    held: Any = None
    for m in read_messages(inp.bag, topics):
        if held is not None and m.stamp_ns != held.stamp_ns:
            if _image_done(feed, held, bar, stop):
                held = None
                break
            held = None
        if m.topic == inp.image_topic and hold:
            held = m
            continue
        feed.message(m)
        if m.topic == inp.image_topic and _image_done(feed, None, bar, stop):
            break
    if held is not None:
        _image_done(feed, held, bar, stop)
    feed.finish()
    bar.close(processed=core.frames_processed, dropped=core.frames_dropped)


def _image_done(feed: FrameFeed, m: Any, bar: Any, stop: Callable[[], bool]) -> bool:
    """Feed a held image message (m, if any), update the bar; True when stop() asks to end."""
    if m is not None:
        feed.message(m)
    bar.update(1, processed=feed.core.frames_processed, dropped=feed.core.frames_dropped)
    return stop()


def _write_products(out: Path, recorder: Recorder, pipeline: Any) -> tuple[np.ndarray, np.ndarray]:
    """trajectory.tum (every published pose), keyframes.tum and map.ply (the final global map)."""
    from vggt_ros.io.ply import write_ply
    from vggt_ros.io.tum import write_tum

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
    return stamps_est, T_est


def _load_ground_truth(spec: str | None, bag: Path) -> Any:
    """--ground-truth (errors are ReplayError), else a pose topic / TF child in the bag that looks like it."""
    from vggt_ros.io.ground_truth import (
        GroundTruthError,
        find_ground_truth_tf_child,
        find_ground_truth_topic,
        load_ground_truth,
    )

    if spec:
        try:
            return load_ground_truth(spec)
        except GroundTruthError as exc:
            raise ReplayError(str(exc)) from exc
    try:
        topic = find_ground_truth_topic(bag)
        found = f"{bag}:{topic}" if topic is not None else None
        if found is None:
            child = find_ground_truth_tf_child(bag)
            found = f"{bag}:/tf:{child}" if child is not None else None
        return load_ground_truth(found) if found is not None else None
    except (GroundTruthError, OSError) as exc:
        log.warning("ground truth in %s unusable: %s", bag, exc)
        return None


def _partial_note(stop: Callable[[], bool], feed: FrameFeed, inp: BagInput) -> str | None:
    """Why the set is partial, or None: a stop that came after the last image leaves a complete set."""
    if not stop() or feed.images_read >= inp.n_images:
        return None
    name = getattr(stop, "name", "") or "a stop request"
    return (f"partial output: interrupted by {name} after {feed.images_read} of {inp.n_images} images "
            f"({feed.core.frames_processed} frames processed); everything processed so far is in this set")


def _report(out: Path, core: NodeCore, feed: FrameFeed, inp: BagInput, gt_data: Any, params: Params,
            est: tuple[np.ndarray, np.ndarray], counts: dict[str, int], wall: float,
            partial: str | None) -> dict[str, Any]:
    from vggt_ros.eval.report import write_report

    diag = core.diagnostics()
    run = diag.as_dict()
    run["throughput_fps"] = diag.frames_processed / wall if wall > 0 else None
    run["wall_time_s"] = wall
    extra = {
        "partial": partial is not None, "partial_reason": partial,
        "frames_read": feed.images_read, "frames_in_bag": inp.n_images,
        "bag": str(inp.bag), "bag_truncated": inp.truncated,
        "image_topic": inp.image_topic, "camera_info_topic": inp.info_topic,
        "ground_truth": gt_data[2] if gt_data is not None else None,
        "camera_info_problems": feed.info_problems, "resolution": feed.resolution(),
        "metric_topics": inp.metric_topics, "metric_input_rejected": feed.metric.as_dict(),
        "output_topics": counts, "params": params.as_dict(),
    }
    return write_report(out, est[0], est[1], gt_data[0] if gt_data else None,
                        gt_data[1] if gt_data else None, run=run, extra=extra)


def replay(bag: str | Path, out_dir: str | Path, params: Params | None = None, *,
           ground_truth: str | None = None, image_topic: str | None = None,
           camera_info_topic: str | None = None, namespace: str = DEFAULT_NAMESPACE,
           progress: bool = True, predictor: Any = None, fallback_to_simulated: bool = False,
           stop: Callable[[], bool] | None = None,
           announce: Callable[[str], None] = print) -> ReplayResult:
    """Replay `bag` into `out_dir` (see the module docstring). `predictor` overrides params['predictor']
    (tests pass wrapped predictors); fallback_to_simulated is --predictor auto (announce() gets the
    paragraph); stop() is asked after every image (True: finalise a partial set).
    Raises ReplayError / PredictorUnavailable / ParamError / io.outputs.OutputDirError."""
    from vggt_ros.io.bag import BagWriter
    from vggt_ros.io.outputs import StagedOutput, check_output_dir
    from vggt_ros.io.progress import Progress
    from vggt_ros.msgs.builders import MessageBuilder
    from vggt_ros.msgs.family import RosbagsFamily

    params = params or Params()
    stop = stop or (lambda: False)
    check_output_dir(out_dir)
    inp = open_input(Path(bag), params, image_topic, camera_info_topic)
    # predictor first: a missing model must fail before any output is written
    if predictor is None:
        predictor, params = choose_predictor(params, inp.bag, fallback_to_simulated, announce)
    note = SIMULATED_NOTE if params["predictor"] == "simulated" else ""
    gt_data = _load_ground_truth(ground_truth, inp.bag)
    stage = StagedOutput(out_dir, "output.mcap", OUTPUT_FILES)
    try:
        pipeline = make_pipeline(params, predictor)
        recorder = Recorder()
        t_start = time.monotonic()
        builder = MessageBuilder(RosbagsFamily(), params["map_frame"])
        pname = str(getattr(predictor, "name", params["predictor"]))
        with BagWriter(stage.path / "output.mcap", overwrite=True) as writer:
            core = NodeCore(params, pipeline, BagSink(writer, builder, namespace, recorder), mode="sync",
                            predictor_name=pname, predictor_note=note)
            truth = getattr(getattr(predictor, "ground_truth", None), "stamps", None)
            feed = FrameFeed(params, core, inp.info_topic, max(truth) if truth else None)
            _feed(inp, feed, Progress(inp.n_images, "replay", enabled=progress), stop)
            counts = dict(writer.counts)
        wall = time.monotonic() - t_start
        est = _write_products(stage.path, recorder, pipeline)
        partial = _partial_note(stop, feed, inp)
        rep = _report(stage.path, core, feed, inp, gt_data, params, est, counts, wall, partial)
        where = stage.commit(partial)
    finally:
        stage.discard()
    return ReplayResult(where, rep, counts, inp.image_topic, inp.n_images,
                        getattr(stop, "name", "stop") if partial else "", inp.truncated)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "replay", help="run a rosbag through vggt_ros offline (output bag, trajectory, map, report)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bag", help="ROS 1 .bag, ROS 2 .db3/.mcap file or bag directory")
    p.add_argument("-o", "--output", default=None, help="output directory (default: <bag stem>_vggt)")
    p.add_argument("--params", default=None,
                   help="parameters YAML in the node's format (/**: ros__parameters:)")
    p.add_argument("--predictor", choices=("vggt", "simulated", "auto"), default=None,
                   help="'vggt' (default: VGGT-1B from the hub or --weights; exit 3 without them), "
                        "'simulated' (TEST DOUBLE from the sample bag's ground truth, no weights) or 'auto' "
                        "(vggt, falling back to simulated with a note when the weights cannot be had)")
    p.add_argument("--weights", default=None, help="local checkpoint file (sets weights_path)")
    p.add_argument("--ground-truth", default=None, help="TUM file or BAG[:/topic] to score against")
    p.add_argument("--image-topic", default=None,
                   help="image topic in the bag (default: params image_topic)")
    p.add_argument("--camera-info-topic", default=None, help="camera_info topic in the bag")
    p.add_argument("--namespace", default=DEFAULT_NAMESPACE, help="namespace of the output topics")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress output (a bar on a terminal, a line per 10%% otherwise)")
    p.set_defaults(func=run)


def _params_of(args: argparse.Namespace) -> Params:
    params = load_params_yaml(args.params) if args.params else Params()
    changes: dict[str, Any] = {}
    if args.predictor in ("vggt", "simulated"):
        changes["predictor"] = args.predictor
    elif args.predictor == "auto":
        changes["predictor"] = "vggt"
    if args.weights:
        changes["weights_path"] = args.weights
    return params.replace(**changes)


def _summary(res: ReplayResult) -> None:
    rep = res.report
    drops = rep.get("drops") or {}
    print(f"replayed {rep.get('frames_read', res.frames_in_bag)} of {res.frames_in_bag} images from "
          f"{res.image_topic}: {rep.get('frames_processed', 0)} processed, "
          f"{rep.get('frames_dropped', 0)} dropped"
          + (" (" + ", ".join(f"{k}: {v}" for k, v in sorted(drops.items())) + ")" if drops else "")
          + f", {rep.get('windows_rejected', 0)} windows rejected, {rep.get('keyframes', 0)} keyframes")
    if "ate_rmse" in rep:
        print(f"ATE RMSE {rep['ate_rmse']:.6f} (Sim(3)-aligned, {rep['ate_percent']:.3f} % of path), "
              f"RPE {rep['rpe_trans_rmse']:.6f} / {rep['rpe_rot_deg']:.4f} deg vs {rep.get('ground_truth')}")
        metric = rep.get("scale_source") not in (None, "none")
        if rep.get("ate_se3_rmse") is not None and metric:
            print(f"ATE RMSE {rep['ate_se3_rmse']:.6f} m SE(3)-aligned, no scale alignment "
                  f"({rep.get('ate_se3_percent', float('nan')):.3f} % of path): the outputs' error in metres")
    else:
        print(str(rep.get("evaluation")))
    if rep.get("scale_source") not in (None, "none"):
        print(f"metric scale ({rep['scale_source']}): {rep.get('scale_state')}, "
              f"{rep.get('metric_scale')} +- {rep.get('metric_scale_sigma')} (relative); rejected samples "
              f"{rep.get('scale_rejected') or {}}, input {rep.get('metric_input_rejected') or {}}")
    else:
        print("map units are arbitrary (scale_source none): set scale_source depth|odometry for metres")
    lat = rep.get("latency_p50_s")
    if lat is not None:
        print(f"latency p50 {lat:.3f} s, p95 {rep.get('latency_p95_s'):.3f} s, "
              f"throughput {rep.get('throughput_fps') or 0:.2f} frames/s")
    print(f"outputs in {res.out_dir}: output.mcap, trajectory.tum, keyframes.tum, map.ply, report.json, "
          f"report.md" + ("".join(", " + p for p in rep.get("plots", []))))
    if rep.get("predictor_note"):
        print(rep["predictor_note"])


def _exit_code(res: ReplayResult, stop: Any) -> int:
    rep = res.report
    if res.stopped:
        print(f"vggt-ros replay: {rep.get('partial_reason')}; in {res.out_dir}", file=sys.stderr)
        return int(stop.exit_code)
    code = res.exit_code
    if code == EXIT_NOTHING_PROCESSED:
        drops = ", ".join(f"{k}: {v}" for k, v in sorted((rep.get("drops") or {}).items()))
        print(f"vggt-ros replay: nothing processed: {rep.get('frames_read', 0)} images read, every frame "
              f"dropped ({drops or 'no frames'}); exit {code}", file=sys.stderr)
    elif code == EXIT_PARTIAL_INPUT:
        print(f"vggt-ros replay: the bag is truncated, only its readable part was replayed; "
              f"`mcap recover {rep.get('bag')} -o fixed.mcap` may rescue more; exit {code}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from vggt_ros.io.interrupt import stop_on_signals
    from vggt_ros.io.outputs import OutputDirError

    logging.basicConfig(level=logging.WARNING, format="vggt-ros replay: %(message)s")
    try:
        params = _params_of(args)
    except ParamError as exc:
        print(f"vggt-ros replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.output) if args.output else Path(args.bag).with_name(Path(args.bag).stem + "_vggt")
    if params["predictor"] == "simulated":
        print(f"vggt-ros replay: {SIMULATED_NOTE}")
    try:
        with stop_on_signals() as stop:
            res = replay(args.bag, out, params, ground_truth=args.ground_truth, image_topic=args.image_topic,
                         camera_info_topic=args.camera_info_topic, namespace=args.namespace,
                         progress=not args.no_progress, fallback_to_simulated=args.predictor == "auto",
                         stop=stop, announce=lambda text: print(f"vggt-ros replay: {text}"))
    except PredictorUnavailable as exc:
        print(f"vggt-ros replay: predictor unavailable: {exc}", file=sys.stderr)
        return EXIT_NO_PREDICTOR
    except (ReplayError, ParamError, OutputDirError) as exc:
        print(f"vggt-ros replay: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _summary(res)
    return _exit_code(res, stop)
