"""The ROS log bridge, throttled drop warnings and the services (issue: save_map killed the node).

`RclpyRuleLoggerDouble` enforces rclpy's RcutilsLogger rule: a call site (function, file, line,
bytecode offset of the first caller outside the logger) keeps the severity of its first call, else
ValueError("Logger severity cannot be changed between calls.").
"""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import pytest
from vggt_ros.runtime import services
from vggt_ros.runtime.core import NodeCore, SaveMapResult
from vggt_ros.runtime.factory import make_pipeline
from vggt_ros.runtime.logbridge import RosLogHandler
from vggt_ros.runtime.params import Params
from vggt_ros.runtime.publishing import ListSink
from vggt_ros.runtime.throttle import Throttle
from vggt_ros.sim.sequence import make_sequence
from vggt_ros.sim.simulated_predictor import SimulatedPredictor


class RclpyRuleLoggerDouble:
    """TEST DOUBLE of rclpy's RcutilsLogger: records lines, raises on a severity change per call site."""

    def __init__(self) -> None:
        self.sites: dict[tuple, str] = {}
        self.lines: list[tuple[str, str]] = []

    def _log(self, severity: str, message: str, **kwargs: object) -> None:
        frame = sys._getframe(2)  # the caller of debug()/info()/...
        site = (frame.f_code.co_name, frame.f_code.co_filename, frame.f_lineno, frame.f_lasti)
        if self.sites.setdefault(site, severity) != severity:
            raise ValueError("Logger severity cannot be changed between calls.")
        self.lines.append((severity, message))

    def debug(self, message: str, **kw: object) -> None:
        self._log("DEBUG", message, **kw)

    def info(self, message: str, **kw: object) -> None:
        self._log("INFO", message, **kw)

    def warning(self, message: str, **kw: object) -> None:
        self._log("WARN", message, **kw)

    def error(self, message: str, **kw: object) -> None:
        self._log("ERROR", message, **kw)


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_double_is_faithful_to_the_old_save_map_line():
    ros = RclpyRuleLoggerDouble()
    for ok in (True, False):  # ros/node.py's old line: one call site, two severities
        with pytest.raises(ValueError) if not ok else _nothing():
            (ros.info if ok else ros.warning)(f"save_map: {ok}")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> bool:
        return False


@pytest.fixture
def bridged():
    ros = RclpyRuleLoggerDouble()
    clock = FakeClock()
    handler = RosLogHandler(ros, period_s=5.0, clock=clock)
    root = logging.getLogger("vggt_ros")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield ros, clock
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_save_map_good_and_bad_names_alternating_never_raise(bridged, tmp_path):
    ros, _ = bridged
    seq = make_sequence("loop", 16, width=64, height=48)
    p = Params({"map_save_dir": str(tmp_path)})
    core = NodeCore(p, make_pipeline(p, SimulatedPredictor(seq.ground_truth)), ListSink())
    for i in range(16):
        core.submit(seq[i])
    results = [services.save_map(core, name) for _ in range(50) for name in ("run1", "../x")]
    assert [r.success for r in results] == [True, False] * 50
    assert not (tmp_path.parent / "x").exists()
    severities = {s for s, m in ros.lines if "save_map" in m}
    assert severities == {"INFO", "WARN"}  # both severities reached the ROS logger, nothing raised


def test_service_callbacks_answer_false_instead_of_raising(bridged):
    ros, _ = bridged

    class BrokenCore:
        def save_map(self, name: str) -> SaveMapResult:
            raise OSError("disk full")

        def reset(self) -> None:
            raise RuntimeError("pipeline gone")

    r = services.save_map(BrokenCore(), "a")  # type: ignore[arg-type]
    assert not r.success and "disk full" in r.message
    assert services.reset(BrokenCore()) == (False, "reset failed: RuntimeError: pipeline gone")  # type: ignore
    assert services.save_map(None, "a").success is False and services.reset(None)[0] is False

    @services.guarded
    def callback(request, response):
        raise KeyError("field")

    resp = callback(SimpleNamespace(name="a"), SimpleNamespace(success=True, message=""))
    assert resp.success is False and "KeyError" in resp.message
    assert any(s == "ERROR" and "callback" in m for s, m in ros.lines)
    filled = services.fill_save_map(SimpleNamespace(), SaveMapResult(True, "ok", "/m", 7, 2))
    assert (filled.success, filled.path, filled.num_points, filled.num_keyframes) == (True, "/m", 7, 2)


def test_the_bridge_throttles_repeats_per_kind_and_counts_them(bridged):
    ros, clock = bridged
    log = logging.getLogger("vggt_ros.slam.pipeline")
    for _ in range(30):  # 30 refused frames in 3 s: one line, then one more after 5 s with the count
        log.warning("frame refused: %s", "non_monotonic_stamp")
        log.warning("frame refused: %s", "size_changed")
        clock.t += 0.1
    clock.t += 5.0
    log.warning("frame refused: %s", "non_monotonic_stamp")
    lines = [m for s, m in ros.lines if "frame refused" in m]
    assert lines == ["frame refused: non_monotonic_stamp", "frame refused: size_changed",
                     "frame refused: non_monotonic_stamp [29 similar line(s) held back in the last 5 s]"]


def test_runtime_drop_warnings_one_line_per_reason_per_period_with_counts(caplog):
    seq = make_sequence("loop", 40, width=64, height=48)
    clock = FakeClock()
    p = Params()
    core = NodeCore(p, make_pipeline(p, SimulatedPredictor(seq.ground_truth)), ListSink(), wall_clock=clock)
    with caplog.at_level(logging.WARNING, logger="vggt_ros.runtime"):
        core.submit(seq[20])
        for i in range(100):  # 100 refused frames over 12.5 s (steps exact in binary)
            core.submit(seq[i % 20])
            clock.t += 0.125
    lines = [r.getMessage() for r in caplog.records if r.name == "vggt_ros.runtime"]
    assert core.diagnostics().drops == {"non_monotonic_stamp": 100}
    assert len(lines) == 3, lines  # at 0, 5 and 10 s
    assert "1 dropped for this reason so far" in lines[0] and "since the last line" not in lines[0]
    assert "41 dropped for this reason so far (39 since the last line)" in lines[1]
    assert "81 dropped for this reason so far (39 since the last line)" in lines[2]


def test_throttle_admits_once_per_period_and_counts_held_back():
    clock = FakeClock()
    t = Throttle(2.0, clock)
    assert t.admit("a") == 0 and t.admit("a") is None and t.admit("b") == 0
    clock.t += 1.0
    assert t.admit("a") is None and t.held("a") == 2
    clock.t += 1.0
    assert t.admit("a") == 2 and t.held("a") == 0
