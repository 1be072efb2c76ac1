"""Replay of a bag with corrupt frames: it finishes, counts each drop by reason, loses no valid frame."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from vggt_ros.io.bag import BagWriter, read_messages
from vggt_ros.io.sample import IMAGE_TOPIC, write_sample_bag
from vggt_ros.io.tum import read_tum
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.msgs.stamps import stamp_ns, time_msg
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.replay import replay
from vggt_ros.sim.sequence import make_sequence

N_FRAMES = 64
pytestmark = pytest.mark.slow  # two bags + replay: ~15 s on 2 shared cores


def _with_stamp(msg, ns):
    header = dataclasses.replace(msg.header, stamp=time_msg(RosbagsFamily(), ns))
    return dataclasses.replace(msg, header=header)


def corrupt_variants(msg, ns):
    """(reason the replay must count, corrupt copy of a valid rgb8 Image stamped ns + 1, 2, 3, 4 ms)."""
    m = [_with_stamp(msg, ns + 1_000_000 * (k + 1)) for k in range(4)]
    row = int(msg.width) * 3
    return [
        ("unsupported_encoding", dataclasses.replace(m[0], encoding="weird16")),
        ("bad_step", dataclasses.replace(m[1], step=row - 3)),
        ("truncated", dataclasses.replace(m[2], data=np.asarray(msg.data)[: len(msg.data) // 2].copy())),
        ("empty", dataclasses.replace(m[3], width=0, height=0, step=0, data=np.zeros(0, np.uint8))),
    ]


@pytest.fixture(scope="module")
def corrupt_bag(tmp_path_factory):
    """The sample bag with, after every 8th valid image, one corrupt image of each kind (stamped 1-4 ms
    later), and a copy of every 10th valid image restamped 5 ms before its predecessor (non-monotonic)."""
    d = tmp_path_factory.mktemp("corrupt")
    src = d / "clean.mcap"
    write_sample_bag(src, make_sequence("loop", N_FRAMES, width=160, height=120))
    out = d / "corrupt.mcap"
    expected: dict[str, int] = {}
    valid: list[int] = []
    prev = None
    with BagWriter(out) as w:
        i = 0
        for m in read_messages(src):
            w.write(m.topic, m.stamp_ns, m.message)
            if m.topic != IMAGE_TOPIC:
                continue
            s = stamp_ns(m.message.header.stamp)
            valid.append(s)
            if i % 8 == 3:
                for k, (reason, bad) in enumerate(corrupt_variants(m.message, s)):
                    w.write(m.topic, m.stamp_ns + k + 1, bad)
                    expected[reason] = expected.get(reason, 0) + 1
            if i % 10 == 5 and prev is not None:
                w.write(m.topic, m.stamp_ns + 10, _with_stamp(m.message, prev - 5_000_000))
                expected["non_monotonic_stamp"] = expected.get("non_monotonic_stamp", 0) + 1
            prev = s
            i += 1
    return out, valid, expected


def test_corrupt_frames_are_counted_by_reason_and_no_valid_frame_is_lost(corrupt_bag, tmp_path):
    bag, valid, expected = corrupt_bag
    assert set(expected) == {"unsupported_encoding", "bad_step", "truncated", "empty", "non_monotonic_stamp"}
    # 48 new frames after the first 16-frame window: every frame leaves in a full window, none in flush
    res = replay(bag, tmp_path / "out", Params({"predictor": "simulated"}), progress=False)
    rep = res.report
    assert res.frames_in_bag == N_FRAMES + sum(expected.values())
    assert rep["drops"] == expected
    assert rep["frames_dropped"] == sum(expected.values())
    assert rep["frames_processed"] == N_FRAMES and rep["windows_rejected"] == 0
    stamps, _ = read_tum(tmp_path / "out" / "trajectory.tum")
    assert stamps.tolist() == valid  # every valid frame, once, in order
    assert rep["output_topics"]["/vggt/odometry"] == N_FRAMES
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["drops"] == expected and on_disk["evaluation"] == "ok"
