"""`vggt-ros replay` on a small sample bag with the simulated predictor (the network's test double).

Checks the output bag against the topic contract with an independent reader (mcap-ros2-support),
that trajectory.tum scored by the `evo_ape` command line gives report.json's ATE, the plots, and that
the simulated predictor is announced in every output.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from test_eval_report import evo_ape_rmse
from vggt_ros.cli import main as cli_main
from vggt_ros.io.ply import read_ply
from vggt_ros.io.sample import write_sample
from vggt_ros.io.tum import read_tum
from vggt_ros.runtime.factory import SIMULATED_NOTE
from vggt_ros.runtime.publishing import TOPICS
from vggt_ros.sim.sequence import make_sequence

N_FRAMES = 90
pytestmark = pytest.mark.slow  # sample bag + replay: ~20 s on 2 shared cores


@pytest.fixture(scope="module")
def sample_bag(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sample")
    return write_sample(d, make_sequence("loop", N_FRAMES, width=160, height=120))


@pytest.fixture(scope="module")
def replayed(sample_bag, tmp_path_factory):
    bag, gt_tum = sample_bag
    out = tmp_path_factory.mktemp("replay") / "out"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli_main(["replay", str(bag), "-o", str(out), "--predictor", "simulated", "--no-progress"])
    return rc, out, buf.getvalue(), gt_tum


class Decoded:
    def __init__(self, schema, channel, ros_msg) -> None:
        self.schema, self.channel, self.ros_msg = schema, channel, ros_msg


def read_output(out: Path) -> list[Decoded]:
    """Every message of OUT/output.mcap decoded by mcap-ros2-support (independent of rosbags)."""
    with open(out / "output.mcap", "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [Decoded(s, c, m) for s, c, _, m in reader.iter_decoded_messages()]


def test_replay_writes_every_output_file(replayed):
    rc, out, stdout, _ = replayed
    assert rc == 0, stdout
    for name in ("output.mcap", "trajectory.tum", "keyframes.tum", "map.ply", "report.json", "report.md",
                 "trajectory_top_view.png", "ate_over_time.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_output_bag_topics_and_counts_match_the_contract(replayed):
    rc, out, _, _ = replayed
    rep = json.loads((out / "report.json").read_text())
    msgs = read_output(out)
    counts = Counter(m.channel.topic for m in msgs)
    expected = {("/vggt/" + t) if not t.startswith("/") else t for t in TOPICS}
    assert set(counts) == expected
    types = {m.channel.topic: m.schema.name for m in msgs}
    for name, spec in TOPICS.items():
        topic = name if name.startswith("/") else "/vggt/" + name
        assert types[topic] == spec.msgtype, topic
    n = rep["frames_processed"]
    assert n == N_FRAMES and rep["frames_dropped"] == 0
    for per_frame in ("/vggt/odometry", "/tf", "/vggt/depth", "/vggt/depth/camera_info"):
        assert counts[per_frame] == n, per_frame
    windows = rep["windows_accepted"] + rep["windows_rejected"]
    assert counts["/vggt/window_stats"] == windows >= N_FRAMES // 16
    assert counts["/vggt/points"] == rep["windows_accepted"]
    assert counts["/vggt/path"] == rep["windows_accepted"]
    assert counts["/vggt/keyframes"] == rep["keyframes"] >= 2
    # map every map_publish_period (2 s of bag time) + the final one: 3 s of data -> 2 or 3
    assert 2 <= counts["/vggt/map"] <= 3
    assert counts["/diagnostics"] >= 3
    assert rep["output_topics"] == dict(counts)


def test_output_messages_carry_the_contract_frames(replayed):
    rc, out, _, _ = replayed
    msgs = read_output(out)
    by = {}
    for m in msgs:
        by.setdefault(m.channel.topic, []).append(m.ros_msg)
    odo = by["/vggt/odometry"]
    assert {o.header.frame_id for o in odo} == {"map"}
    assert {o.child_frame_id for o in odo} == {"camera_optical_frame"}
    tf = by["/tf"][5].transforms[0]
    assert tf.header.frame_id == "map" and tf.child_frame_id == "camera_optical_frame"
    d = by["/vggt/depth"][0]
    assert d.encoding == "32FC1" and (d.height, d.width) == (120, 160)
    assert d.header.frame_id == "camera_optical_frame"
    info = by["/vggt/depth/camera_info"][0]
    assert (info.height, info.width) == (120, 160) and info.k[8] == 1.0
    m = by["/vggt/map"][-1]
    assert m.header.frame_id == "map" and m.width > 1000 and m.point_step == 20
    pts, cols, conf = read_ply(out / "map.ply")  # the pipeline's final map: about the last published one
    assert abs(len(pts) - m.width) <= 0.02 * m.width and cols is not None and conf is not None
    path = by["/vggt/path"][-1]
    assert len(path.poses) == N_FRAMES
    # the last path is the final trajectory (after any loop-closure correction): trajectory.tum
    stamps, T = read_tum(out / "trajectory.tum")
    p = path.poses[-1].pose.position
    assert (p.x, p.y, p.z) == pytest.approx(tuple(T[-1][:3, 3]), abs=1e-9)
    # odometry is published live (before later corrections): it ends near, not at, the final pose
    o = odo[-1].pose.pose.position
    assert np.linalg.norm(np.subtract((p.x, p.y, p.z), (o.x, o.y, o.z))) < 0.05
    ws = by["/vggt/window_stats"]
    assert all(w.accepted for w in ws) and ws[-1].windows_rejected == 0
    diag = by["/diagnostics"][-1].status[0]
    values = {kv.key: kv.value for kv in diag.values}
    assert values["predictor"] == "simulated" and values["predictor_note"] == SIMULATED_NOTE
    assert int(values["frames_processed"]) == N_FRAMES


def test_trajectory_scored_by_evo_ape_matches_report(replayed):
    rc, out, _, gt_tum = replayed
    rep = json.loads((out / "report.json").read_text())
    stamps, T = read_tum(out / "trajectory.tum")
    assert len(stamps) == N_FRAMES and np.all(np.diff(stamps) > 0)
    assert rep["evaluation"] == "ok" and rep["poses_matched"] == N_FRAMES
    assert rep["ate_rmse"] == pytest.approx(evo_ape_rmse(gt_tum, out / "trajectory.tum"), rel=1e-4)
    # simulated noise: 1 % of depth per frame; the loop's ATE stays well under 1 % of the path
    assert 0 < rep["ate_percent"] < 1.0
    kf_stamps, _ = read_tum(out / "keyframes.tum")
    assert len(kf_stamps) == rep["keyframes"] and set(kf_stamps) <= set(stamps)


def test_simulated_predictor_is_announced_everywhere(replayed):
    rc, out, stdout, _ = replayed
    rep = json.loads((out / "report.json").read_text())
    assert rep["predictor"] == "simulated" and rep["predictor_note"] == SIMULATED_NOTE
    assert SIMULATED_NOTE in (out / "report.md").read_text()
    assert SIMULATED_NOTE in stdout and "ATE RMSE" in stdout


def test_replay_refuses_bad_input_without_traceback(sample_bag, tmp_path, capsys):
    bag, _ = sample_bag
    assert cli_main(["replay", str(tmp_path / "missing.mcap"), "-o", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["replay", str(bag), "-o", str(tmp_path / "o"), "--predictor", "simulated",
                     "--image-topic", "/nope", "--no-progress"]) == 2
    assert "no image topic '/nope'" in capsys.readouterr().err
    bad = tmp_path / "p.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    queue_size: 0\n")
    assert cli_main(["replay", str(bag), "--params", str(bad)]) == 2
    assert "queue_size" in capsys.readouterr().err
    # the simulated predictor needs the sample bag's ground truth: a bag without it stops cleanly
    from vggt_ros.io.bag import BagWriter, read_messages

    nogt = tmp_path / "nogt.mcap"
    with BagWriter(nogt) as w:
        for m in read_messages(bag, ["/camera/image_raw"]):
            w.write(m.topic, m.stamp_ns, m.message)
    assert cli_main(["replay", str(nogt), "-o", str(tmp_path / "o2"), "--predictor", "simulated",
                     "--no-progress"]) == 3
    assert "ground-truth topics" in capsys.readouterr().err


def test_vggt_offline_stops_fast_with_the_weights_message(sample_bag, tmp_path, capsys, monkeypatch):
    import time

    bag, _ = sample_bag
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    t0 = time.monotonic()
    rc = cli_main(["replay", str(bag), "-o", str(tmp_path / "o"), "--no-progress"])
    dt = time.monotonic() - t0
    err = capsys.readouterr().err
    assert rc == 3 and dt < 20, (rc, dt, err)
    assert "facebook/VGGT-1B" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "output.mcap").exists()
    rc = cli_main(["replay", str(bag), "-o", str(tmp_path / "o"), "--no-progress",
                   "--weights", str(tmp_path / "absent.safetensors")])
    err = capsys.readouterr().err
    assert rc == 3 and "absent.safetensors" in err and "Traceback" not in err


def test_eval_command_on_the_replay_output_agrees(replayed, sample_bag, tmp_path, capsys):
    rc, out, _, gt_tum = replayed
    bag, _ = sample_bag
    rep = json.loads((out / "report.json").read_text())
    assert cli_main(["eval", "--estimate", str(out / "trajectory.tum"), "--ground-truth",
                     f"{bag}:/ground_truth/odometry", "-o", str(tmp_path / "ev"),
                     "--run-report", str(out / "report.json")]) == 0
    ev = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert ev["ate_rmse"] == pytest.approx(rep["ate_rmse"], rel=1e-6)  # TUM keeps 9 decimals
    assert ev["rpe_trans_rmse"] == pytest.approx(rep["rpe_trans_rmse"], rel=1e-6)
    # the run numbers travel with --run-report, and the simulated predictor is still announced
    assert ev["frames_processed"] == N_FRAMES and ev["predictor_note"] == SIMULATED_NOTE
    assert SIMULATED_NOTE in capsys.readouterr().out


def test_sample_bag_ground_truth_is_found_as_odometry_and_as_tf(sample_bag):
    from vggt_ros.io.ground_truth import (
        find_ground_truth_tf_child,
        find_ground_truth_topic,
        load_ground_truth,
    )

    bag, gt_tum = sample_bag
    assert find_ground_truth_topic(bag) == "/ground_truth/odometry"
    child = find_ground_truth_tf_child(bag)
    assert child == "camera_optical_frame_gt"
    s_tf, T_tf, _ = load_ground_truth(f"{bag}:/tf:{child}")
    s_tum, T_tum = read_tum(gt_tum)
    np.testing.assert_array_equal(s_tf, s_tum)
    np.testing.assert_allclose(T_tf, T_tum, atol=1e-8)
