"""Ground-truth trajectories for scoring: a TUM file or a bag's pose / TF topic.

A bag topic is nav_msgs/Odometry, geometry_msgs/PoseStamped, geometry_msgs/PoseWithCovarianceStamped or
tf2_msgs/TFMessage (`BAG:/tf:child_frame` picks the TF child; without a topic the bag's
ground-truth-looking pose topic is chosen). Header stamps are used (not log times), so they match the
image stamps the estimate carries. Used by `vggt-ros eval` and `vggt-ros replay --ground-truth`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vggt_ros.io.bag import bag_topics, read_messages
from vggt_ros.io.tum import TumFormatError, read_tum
from vggt_ros.msgs.convert import pose_to_matrix, transform_to_matrix
from vggt_ros.msgs.stamps import stamp_ns

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
