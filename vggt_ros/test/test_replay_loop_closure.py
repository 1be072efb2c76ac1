"""Replay shows a loop closure as a user sees it: `loop_closures` in the output bag, after it a
republished `path` whose poses moved, the map republished, and trajectory.tum = the corrected path."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from vggt_ros.io.sample_bag import write_sample
from vggt_ros.io.tum import read_tum
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.replay import replay
from vggt_ros.sim.scene import Scene
from vggt_ros.sim.sequence import SyntheticSequence, intrinsics
from vggt_ros.sim.trajectories import TRAJECTORIES

W, H = 120, 90


def _messages(path):
    out = defaultdict(list)
    with open(path, "rb") as f:
        for _, ch, msg, ros in make_reader(f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
            out[ch.topic].append((msg.log_time, ros))
    return out


def test_replay_of_two_laps_closes_a_loop_and_moves_the_path(tmp_path):
    loop = TRAJECTORIES["loop"](240)
    seq = SyntheticSequence(Scene(seed=0), np.concatenate([loop, loop]), intrinsics(W, H), (W, H))
    bag, _ = write_sample(tmp_path / "sample", seq)
    res = replay(bag, tmp_path / "out", Params({"predictor": "simulated"}), progress=False,
                 announce=lambda s: None)
    msgs = _messages(res.out_dir / "output.mcap")
    loops = msgs["/vggt/loop_closures"]
    assert loops, "no loop closure on the second lap"
    t_loop, first = loops[0]
    assert first.header.frame_id == "map" and first.merged_segment == -1
    assert first.query_keyframe_id > first.match_keyframe_id
    # the path published right after the closure moved poses that were published before it
    before = [p for t, p in msgs["/vggt/path"] if t < t_loop][-1]
    after = [p for t, p in msgs["/vggt/path"] if t >= t_loop][0]
    n = len(before.poses)
    assert len(after.poses) >= n
    moved = [np.linalg.norm([a.pose.position.x - b.pose.position.x, a.pose.position.y - b.pose.position.y,
                             a.pose.position.z - b.pose.position.z])
             for a, b in zip(after.poses[:n], before.poses)]
    assert max(moved) > 1e-4
    assert any(t >= t_loop for t, _ in msgs["/vggt/map"])  # the map is republished after it
    # each closure took a verification prediction, counted in the run's diagnostics (report.json)
    assert res.report["loop_closures"] == len(loops)
    assert res.report["loop_verifications"] >= len(loops) and res.report["loop_checks_skipped"] == 0
    # trajectory.tum is the final, corrected path
    stamps, T = read_tum(res.out_dir / "trajectory.tum")
    last = msgs["/vggt/path"][-1][1].poses
    assert len(last) == len(stamps)
    np.testing.assert_allclose([last[-1].pose.position.x, last[-1].pose.position.y], T[-1][:2, 3], atol=1e-6)
