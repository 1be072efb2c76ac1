"""`vggt-ros replay --params` with scale_source depth / odometry on the sample bag: the bag's depth topic
and /tf feed the pipeline like the live node's subscriptions (runtime.metric_input), the outputs are in
metres (ATE without scale alignment), and bad sensor input is counted, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from vggt_ros.io.bag import read_messages
from vggt_ros.io.sample import write_sample
from vggt_ros.msgs.decode import decode_depth_m
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.replay import ReplayError, replay
from vggt_ros.sim.sequence import make_sequence

pytestmark = pytest.mark.slow  # sample bag + three replays

N = 96


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    seq = make_sequence("loop", N, width=160, height=120)
    bag, tum = write_sample(tmp_path_factory.mktemp("sample"), seq)
    return bag, tum, seq


def _replay(sample: tuple, tmp: Path, **params: object) -> dict:
    bag, tum, _ = sample
    res = replay(bag, tmp / "out", Params(params).replace(predictor="simulated"), ground_truth=str(tum),
                 progress=False, announce=lambda s: None)
    return json.loads((res.out_dir / "report.json").read_text())


def test_depth_source_metric_outputs(sample: tuple, tmp_path: Path) -> None:
    rep = _replay(sample, tmp_path, scale_source="depth", metric_depth_topic="/camera/depth/image_rect_raw")
    assert rep["scale_state"] == "metric"
    assert rep["ate_se3_percent"] < 1.0  # metres without any scale alignment
    assert abs(rep["scale"] - 1) < 0.01  # the Sim(3) alignment has nothing left to scale
    assert rep["scale_rejected"].get("no_frame_within_max_dt", 0) == 0  # every sample found its frame
    # the published depth images are metres (REP 118)
    seq = sample[2]
    out = tmp_path / "out" / "output.mcap"
    m = list(read_messages(out, ["/vggt/depth"]))[-1].message
    d = decode_depth_m(m)
    truth = seq.ground_truth(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec).depth
    ok = np.isfinite(d)
    assert abs(float(np.median(d[ok] / truth[ok])) - 1) < 0.02


def test_ground_truth_depth_topic_works_as_documented(sample: tuple, tmp_path: Path) -> None:
    rep = _replay(sample, tmp_path, scale_source="depth", metric_depth_topic="/ground_truth/depth")
    assert rep["scale_state"] == "metric" and rep["ate_se3_percent"] < 1.0


def test_odometry_source_metric_outputs(sample: tuple, tmp_path: Path) -> None:
    rep = _replay(sample, tmp_path, scale_source="odometry")
    assert rep["scale_state"] in ("metric", "held")
    assert rep["ate_se3_percent"] < 3.0
    assert abs(rep["scale"] - 1) < 0.05


def test_none_is_not_metric_and_the_sim3_scale_shows_it(sample: tuple, tmp_path: Path) -> None:
    rep = _replay(sample, tmp_path)
    assert "scale_state" not in rep or rep["scale_state"] == "none"
    assert abs(rep["scale"] - 1) > 0.5  # map units are the first window's, not metres


def test_wrong_encoding_depth_is_counted_and_diagnostics_warn(sample: tuple, tmp_path: Path) -> None:
    """The colour image as 'metric depth' (rgb8): every sample rejected by reason, the run completes,
    nothing is scaled, the state stays not_metric_yet."""
    rep = _replay(sample, tmp_path, scale_source="depth", metric_depth_topic="/camera/image_raw",
                  metric_depth_info_topic="/camera/camera_info")
    assert rep["metric_input_rejected"] == {"depth_unsupported_encoding": N}
    assert rep["scale_state"] == "not_metric_yet" and rep["frames_processed"] == N


def test_missing_depth_topic_is_a_clear_error(sample: tuple, tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="metric_depth_topic"):
        _replay(sample, tmp_path, scale_source="depth", metric_depth_topic="/no/such/depth")
