"""The custom-message typestore: package copies of vggt_ros_msgs are the canonical files, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.msgs.stamps import split_ns, stamp_ns, time_msg
from vggt_ros.msgs.typestore import CUSTOM_MESSAGES, DEFINITIONS_DIR, get_typestore

CANONICAL = Path(__file__).resolve().parents[2] / "vggt_ros_msgs" / "msg"


@pytest.mark.parametrize("name", CUSTOM_MESSAGES)
def test_package_copy_identical_to_canonical(name: str) -> None:
    assert (DEFINITIONS_DIR / f"{name}.msg").read_bytes() == (CANONICAL / f"{name}.msg").read_bytes()


def test_every_canonical_message_is_registered() -> None:
    assert sorted(p.stem for p in CANONICAL.glob("*.msg")) == sorted(CUSTOM_MESSAGES)


def test_custom_types_serialize_roundtrip() -> None:
    ts = get_typestore()
    fam = RosbagsFamily(ts)
    cls = ts.types["vggt_ros_msgs/msg/WindowStats"]
    names = [f[0] for f in ts.fielddefs["vggt_ros_msgs/msg/WindowStats"][1]]
    assert names[:3] == ["header", "window_id", "num_frames"]
    assert names[-5:] == ["tracking_state", "segment_id", "scale_state", "metric_scale", "metric_scale_sigma"]
    hdr = ts.types["std_msgs/msg/Header"](stamp=time_msg(fam, 5), frame_id="map")
    msg = cls(header=hdr, window_id=3, num_frames=8, num_new_frames=4,
              anchor_keyframe_ids=np.array([1, 2], np.uint32), accepted=True, reason="ok", scale=2.0,
              residual_rms=0.5, num_inliers=7, num_correspondences=9, predict_time_s=0.25,
              stitch_time_s=0.125, total_time_s=1.0, frames_dropped=2**40, windows_rejected=1,
              tracking_state="new_segment", segment_id=3, scale_state="metric", metric_scale=4.25,
              metric_scale_sigma=0.0025)
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, cls.__msgtype__), cls.__msgtype__)
    assert back.frames_dropped == 2**40 and list(back.anchor_keyframe_ids) == [1, 2]
    assert (back.tracking_state, back.segment_id) == ("new_segment", 3)
    assert (back.scale_state, back.metric_scale, back.metric_scale_sigma) == ("metric", 4.25, 0.0025)
    lc = ts.types["vggt_ros_msgs/msg/LoopClosure"]
    loop = lc(header=hdr, query_keyframe_id=40, match_keyframe_id=2, match_stamp=time_msg(fam, 3), score=0.93,
              num_inliers=120,
              merged_segment=-1, correction_m=0.25, correction_deg=1.5, correction_scale=1.02)
    back = ts.deserialize_cdr(ts.serialize_cdr(loop, lc.__msgtype__), lc.__msgtype__)
    assert (back.query_keyframe_id, back.match_keyframe_id, back.merged_segment) == (40, 2, -1)


@pytest.mark.parametrize(
    "ns", [0, 1, 999_999_999, 1_000_000_000, 1_732_000_000_123_456_789, -1, -1_500_000_000])
def test_stamp_split_roundtrip(ns: int) -> None:
    sec, nanosec = split_ns(ns)
    assert 0 <= nanosec < 10**9
    assert sec * 10**9 + nanosec == ns
    assert stamp_ns(time_msg(RosbagsFamily(), ns)) == ns


def test_stamp_out_of_range() -> None:
    with pytest.raises(ValueError):
        split_ns(2**31 * 10**9)
