"""`vggt-ros eval`: TUM and bag ground truth (Odometry, PoseStamped, TF), errors, report files."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from test_eval_report import loop_trajectory, noisy_estimate
from vggt_ros.eval import command
from vggt_ros.io.bag import BagWriter
from vggt_ros.io.ground_truth import (
    GroundTruthError,
    find_ground_truth_tf_child,
    find_ground_truth_topic,
    load_ground_truth,
)
from vggt_ros.io.tum import write_tum
from vggt_ros.msgs.builders import MessageBuilder
from vggt_ros.msgs.family import RosbagsFamily
from vggt_ros.slam.updates import FramePose


def run_eval(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


def write_gt_bag(path, stamps, T, log_offset_ns=5_000_000):
    """Ground truth as Odometry, PoseStamped and TF (map -> cam), log times offset from header stamps."""
    b = MessageBuilder(RosbagsFamily(), "world")
    with BagWriter(path) as w:
        for s, Tm in zip(stamps, T):
            fp = FramePose(int(s), 0, "cam", Tm, 0)
            odom = b.odometry(fp.stamp_ns, fp.T_map_cam, fp.frame_id)
            w.write("/ground_truth/odom", int(s) + log_offset_ns, odom)
            w.write("/other/pose", int(s) + log_offset_ns, b.pose_stamped(fp))
            tfs = [b.transform_stamped(int(s), "world", "cam", Tm),
                   b.transform_stamped(int(s), "world", "base", np.eye(4))]
            w.write("/tf", int(s) + log_offset_ns, b.tf_message(tfs))
    return path


@pytest.fixture(scope="module")
def traj(tmp_path_factory):
    d = tmp_path_factory.mktemp("evalcmd")
    stamps, T_gt = loop_trajectory(80)
    T_est = noisy_estimate(T_gt, 0.015, seed=2)
    return d, stamps, T_gt, write_tum(d / "est.tum", stamps, T_est), write_tum(d / "gt.tum", stamps, T_gt), \
        write_gt_bag(d / "gt.mcap", stamps, T_gt)


def test_eval_tum_and_bag_ground_truth_agree(traj, tmp_path, capsys):
    d, stamps, T_gt, est, gt_tum, gt_bag = traj
    assert run_eval(["--estimate", str(est), "--ground-truth", str(gt_tum), "-o", str(tmp_path / "a")]) == 0
    assert "ATE RMSE" in capsys.readouterr().out
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    for spec in (str(gt_bag), f"{gt_bag}:/ground_truth/odom", f"{gt_bag}:/other/pose", f"{gt_bag}:/tf:cam"):
        out = tmp_path / str(abs(hash(spec)))
        assert run_eval(["--estimate", str(est), "--ground-truth", spec, "-o", str(out)]) == 0
        b = json.loads((out / "report.json").read_text())
        assert b["ate_rmse"] == pytest.approx(a["ate_rmse"], rel=1e-6), spec
        assert b["poses_matched"] == 80, spec
    assert 0.015 < a["ate_rmse"] < 0.04
    assert (tmp_path / "a" / "trajectory_top_view.png").exists() and (tmp_path / "a" / "report.md").exists()


def test_ground_truth_uses_header_stamps_and_picks_topics(traj):
    d, stamps, T_gt, *_, gt_bag = traj
    s, T, desc = load_ground_truth(f"{gt_bag}:/ground_truth/odom")
    np.testing.assert_array_equal(s, stamps)  # header stamps, not the offset log times
    np.testing.assert_allclose(T, T_gt, atol=1e-12)
    assert find_ground_truth_topic(gt_bag) == "/ground_truth/odom"
    assert find_ground_truth_tf_child(gt_bag) is None  # 'cam' and 'base' do not say ground truth
    s, T, desc = load_ground_truth(f"{gt_bag}:/tf:cam")
    assert "world -> cam" in desc and len(s) == 80
    with pytest.raises(GroundTruthError, match="no transform to child 'nope'"):
        load_ground_truth(f"{gt_bag}:/tf:nope")
    with pytest.raises(GroundTruthError, match="no topic /missing"):
        load_ground_truth(f"{gt_bag}:/missing")
    with pytest.raises(GroundTruthError, match="no such file"):
        load_ground_truth(str(d / "absent.tum"))


def test_eval_errors_exit_nonzero_with_a_message(traj, tmp_path, capsys):
    d, stamps, T_gt, est, gt_tum, gt_bag = traj
    bad = tmp_path / "bad.tum"
    bad.write_text("1.0 0 0 0 0 0 0\n")
    assert run_eval(["--estimate", str(bad), "--ground-truth", str(gt_tum), "-o", str(tmp_path / "x")]) == 2
    assert "expected 8 fields" in capsys.readouterr().err
    far = write_tum(tmp_path / "far.tum", stamps + 10**12, T_gt)
    assert run_eval(["--estimate", str(far), "--ground-truth", str(gt_tum), "-o", str(tmp_path / "y")]) == 1
    assert "only 0 poses matched" in capsys.readouterr().err
    assert json.loads((tmp_path / "y" / "report.json").read_text())["evaluation"].startswith("not scored")
