"""`vggt-ros eval --estimate TUM --ground-truth TUM|BAG[:topic] -o DIR`: score a trajectory.

Ground truth is a TUM file or a bag topic of nav_msgs/Odometry, geometry_msgs/PoseStamped,
geometry_msgs/PoseWithCovarianceStamped or tf2_msgs/TFMessage (`BAG:/tf:child_frame` picks the TF
child; without a topic the bag's ground-truth-looking pose topic is chosen). Header stamps are used
(not log times), so they match the image stamps the estimate carries.
Writes DIR/report.json, DIR/report.md and the PNG plots (eval.report).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vggt_ros.eval.report import write_report
from vggt_ros.io.tum import TumFormatError, read_tum
from vggt_ros.msgs.convert import pose_to_matrix, transform_to_matrix

POSE_TYPES = (
    "nav_msgs/msg/Odometry",
    "geometry_msgs/msg/PoseStamped",
    "geometry_msgs/msg/PoseWithCovarianceStamped",
)
TF_TYPE = "tf2_msgs/msg/TFMessage"
BAG_SUFFIXES = (".bag", ".db3", ".mcap")


class GroundTruthError(ValueError):
    """Ground truth that cannot be read (missing file, unknown topic, no poses)."""


def _stamp(header: Any) -> int:
    from vggt_ros.msgs.stamps import stamp_ns

    return stamp_ns(header.stamp)


def split_bag_spec(spec: str) -> tuple[Path, str | None, str | None]:
    """'BAG', 'BAG:/topic' or 'BAG:/tf:child' -> (bag path, topic or None, tf child or None)."""
    if Path(spec).exists():
        return Path(spec), None, None
    head, sep, rest = spec.partition(":/")
    if not sep or not Path(head).exists():
        raise GroundTruthError(f"ground truth {spec!r}: no such file (expected TUM, BAG or BAG:/topic)")
    topic, _, child = ("/" + rest).partition(":")
    return Path(head), topic, (child or None)


def is_bag(path: Path) -> bool:
    return path.is_dir() or path.suffix in BAG_SUFFIXES


def find_ground_truth_topic(bag: Path, exclude_prefix: str | None = None) -> str | None:
    """The bag's pose topic that looks like ground truth (name with 'ground_truth'/'gt' preferred)."""
    from vggt_ros.io.bag import bag_topics

    topics = bag_topics(bag)
    cands = [t for t, info in topics.items() if info.msgtype in POSE_TYPES
             and not (exclude_prefix and t.startswith(exclude_prefix))]
    if not cands:
        return None

    def score(t: str) -> tuple[int, int, str]:
        low = t.lower()
        named = any(k in low for k in ("ground_truth", "groundtruth", "/gt", "gt/", "truth"))
        kind = POSE_TYPES.index(topics[t].msgtype)
        return (0 if named else 1, kind, t)

    return sorted(cands, key=score)[0]


GT_NAME_HINTS = ("ground_truth", "groundtruth", "truth", "_gt", "gt_", "/gt", "vicon", "mocap", "optitrack")


def find_ground_truth_tf_child(bag: Path, topic: str = "/tf") -> str | None:
    """A TF child frame whose name says ground truth (e.g. 'camera_gt', 'vicon/cam'), or None.

    Robot TF trees are not ground truth, so a TF pair is only chosen automatically by its name.
    """
    from vggt_ros.io.bag import bag_topics, read_messages

    if bag_topics(bag).get(topic) is None:
        return None
    children: dict[str, int] = {}
    for m in read_messages(bag, [topic]):
        if m.message is not None:
            for tr in m.message.transforms:
                children[tr.child_frame_id] = children.get(tr.child_frame_id, 0) + 1
    named = [c for c in children if any(h in c.lower() for h in GT_NAME_HINTS)]
    return max(named, key=lambda c: children[c]) if named else None


def read_bag_trajectory(bag: Path, topic: str | None = None, tf_child: str | None = None
                        ) -> tuple[np.ndarray, np.ndarray, str]:
    """(stamps_ns (N,), T (N,4,4) pose of the child/body in the parent frame, description)."""
    from vggt_ros.io.bag import bag_topics, read_messages

    topics = bag_topics(bag)
    if topic is None:
        topic = find_ground_truth_topic(bag)
        if topic is None:
            if "/tf" in topics:
                topic = "/tf"
            else:
                raise GroundTruthError(f"{bag}: no Odometry, PoseStamped or TF topic for ground truth")
    if topic not in topics:
        raise GroundTruthError(f"{bag}: no topic {topic} (topics: {', '.join(sorted(topics))})")
    msgtype = topics[topic].msgtype
    stamps: list[int] = []
    poses: list[np.ndarray] = []
    if msgtype in POSE_TYPES:
        for m in read_messages(bag, [topic]):
            if m.message is None:
                continue
            msg = m.message
            pose = msg.pose.pose if msgtype != "geometry_msgs/msg/PoseStamped" else msg.pose
            stamps.append(_stamp(msg.header))
            poses.append(pose_to_matrix(pose))
        desc = f"{bag}:{topic} ({msgtype})"
    elif msgtype == TF_TYPE:
        per_pair: dict[tuple[str, str], list[tuple[int, np.ndarray]]] = {}
        for m in read_messages(bag, [topic]):
            if m.message is None:
                continue
            for tr in m.message.transforms:
                per_pair.setdefault((tr.header.frame_id, tr.child_frame_id), []).append(
                    (_stamp(tr.header), transform_to_matrix(tr.transform)))
        if tf_child is not None:
            pairs = [p for p in per_pair if p[1] == tf_child]
            if not pairs:
                raise GroundTruthError(f"{bag}:{topic}: no transform to child {tf_child!r} "
                                       f"(children: {', '.join(sorted({c for _, c in per_pair}))})")
        else:
            pairs = list(per_pair)
        if not pairs:
            raise GroundTruthError(f"{bag}:{topic}: no transforms")
        pair = max(pairs, key=lambda p: len(per_pair[p]))
        for s, T in per_pair[pair]:
            stamps.append(s)
            poses.append(T)
        desc = f"{bag}:{topic} ({pair[0]} -> {pair[1]})"
    else:
        raise GroundTruthError(f"{bag}:{topic} is a {msgtype}; ground truth needs one of "
                               f"{', '.join(POSE_TYPES + (TF_TYPE,))}")
    if not stamps:
        raise GroundTruthError(f"{desc}: no poses")
    st = np.asarray(stamps, np.int64)
    Ts = np.stack(poses)
    _, first = np.unique(st, return_index=True)  # sorted by stamp, the first pose of a repeated stamp
    return st[first], Ts[first], desc


def load_ground_truth(spec: str) -> tuple[np.ndarray, np.ndarray, str]:
    """A TUM file, or BAG[:topic[:tf_child]] -> (stamps_ns, T (N,4,4), description)."""
    path, topic, child = split_bag_spec(spec)
    if is_bag(path):
        return read_bag_trajectory(path, topic, child)
    try:
        s, T = read_tum(path)
    except (TumFormatError, OSError) as exc:
        raise GroundTruthError(f"ground truth {path}: {exc}") from exc
    if len(s) == 0:
        raise GroundTruthError(f"ground truth {path}: no poses")
    return s, T, str(path)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "eval", help="score a TUM trajectory against ground truth (ATE Sim(3), RPE, plots, report)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--estimate", required=True, help="estimated trajectory, TUM file")
    p.add_argument("--ground-truth", required=True, help="TUM file, or BAG[:/topic[:tf_child]]")
    p.add_argument("-o", "--output", required=True, help="output directory (report.json, report.md, PNGs)")
    p.add_argument("--run-report", default=None,
                   help="report.json of a replay whose run numbers (drops, latency, ...) are carried over")
    p.add_argument("--max-diff", type=float, default=0.001,
                   help="stamp association tolerance in seconds (default 0.001)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        s_est, T_est = read_tum(args.estimate)
    except (TumFormatError, OSError) as exc:
        print(f"vggt-ros eval: estimate {args.estimate}: {exc}", file=sys.stderr)
        return 2
    try:
        s_gt, T_gt, desc = load_ground_truth(args.ground_truth)
    except (GroundTruthError, OSError) as exc:
        print(f"vggt-ros eval: {exc}", file=sys.stderr)
        return 2
    run_numbers: dict[str, Any] = {}
    if args.run_report:
        try:
            run_numbers = json.loads(Path(args.run_report).read_text())
        except (OSError, ValueError) as exc:
            print(f"vggt-ros eval: run report {args.run_report}: {exc}", file=sys.stderr)
            return 2
        run_numbers = {k: v for k, v in run_numbers.items() if not isinstance(v, dict) or k in
                       ("drops", "rejections")}
    rep = write_report(args.output, s_est, T_est, s_gt, T_gt, run=run_numbers,
                       extra={"estimate": str(args.estimate), "ground_truth": desc},
                       max_diff_ns=int(round(args.max_diff * 1e9)))
    if rep.get("evaluation") != "ok":
        print(f"vggt-ros eval: {rep.get('evaluation')}", file=sys.stderr)
        return 1
    print(f"ATE RMSE {rep['ate_rmse']:.6f} m ({rep['ate_percent']:.3f} % of path), "
          f"RPE {rep['rpe_trans_rmse']:.6f} m / {rep['rpe_rot_deg']:.4f} deg, scale {rep['scale']:.6f}, "
          f"{rep['poses_matched']} poses matched -> {args.output}")
    if rep.get("predictor_note"):
        print(rep["predictor_note"])
    return 0
