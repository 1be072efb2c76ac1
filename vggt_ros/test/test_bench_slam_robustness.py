"""bench/slam_robustness.py: shipped node configuration, table output on tiny cases, garbage counting."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from vggt_ros.runtime.factory import pipeline_config
from vggt_ros.runtime.params import Params
from vggt_ros.sim.simulated_predictor import SimNoise
from vggt_ros.slam.config import StitchConfig


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "bench" / "slam_robustness.py"
    spec = importlib.util.spec_from_file_location("slam_robustness", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["slam_robustness"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_runs_the_node_configuration_not_pipeline_config_defaults(bench: ModuleType) -> None:
    cfg = bench.node_config()
    assert cfg == pipeline_config(Params())
    assert cfg.stitch.max_rel_rms == Params()["max_window_residual_rel"]
    pm = bench.node_config("point_map")
    assert pm.stitcher == "point_map" and pm.stitch == cfg.stitch and pm.keyframes == cfg.keyframes
    over = bench.node_config(overrides={"max_window_residual_rel": 0.2, "window_new_frames": 8})
    assert over.stitch.max_rel_rms == 0.2 and over.window_size == 12 and over.map == cfg.map
    n2 = bench.scaled_noise(SimNoise.harsh(), 2.0)
    assert n2.rot_deg == 2.4 and n2.scale_jitter == 0.4 and n2.conf_max == SimNoise.harsh().conf_max


def _rows(text: str, case: str) -> list[dict[str, str]]:
    """The case's table rows, each a dict column name -> cell."""
    block = text.split(f"### {case}")[1].split("###")[0]

    def cells(ln: str) -> list[str]:
        return [c.strip() for c in ln.strip().strip("|").split("|")]

    names = cells(next(ln for ln in block.splitlines() if ln.startswith("| noise")))
    return [dict(zip(names, cells(ln))) for ln in block.splitlines() if re.match(r"\| \d+x", ln)]


def test_tiny_run_prints_the_table(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--cases", "figure8", "--frames", "60", "--seeds", "0,1", "--noise", "0",
                       "--loop-closure", "on"]) == 0
    out = capsys.readouterr().out
    from vggt_ros.runtime.params import Params

    shipped = Params()["max_window_residual_rel"]  # the bench states the node's shipped bound
    assert "pipeline_config(Params())" in out and f"max_rel_rms={shipped}" in out
    header = next(ln for ln in out.splitlines() if ln.startswith("| noise"))
    assert "posed %" in header and "pm ATE m" in header and "stuck" in header
    (row,) = _rows(out, "figure8")
    assert row["noise / config"].startswith("0x")
    assert row["posed %"].startswith("100.0")  # no noise: every frame posed, both seeds
    assert float(row["ATE m"].split()[0]) < 0.01 and row["stuck"] == "0/2"
    assert row["pm posed %"].startswith("100.0")  # the point-map baseline too


def test_garbage_windows_are_injected_and_counted(bench: ModuleType,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--cases", "garbage", "--frames", "140", "--seeds", "0", "--noise", "0",
                       "--loop-closure", "on",
                       "--no-baseline"]) == 0
    (row,) = _rows(capsys.readouterr().out, "garbage")
    assert row["garbage rej/inj"] == "2/2"  # garbage at frames 64 and 124: both windows rejected
    reasons = row["rejected (reason: median)"]
    assert "residual_too_high" in reasons or "tracks_disagree" in reasons or "too_few" in reasons


@pytest.mark.slow  # ~7 s: the 1071-frame twin rooms
def test_twin_rooms_doorway_false_loop_is_rejected_by_the_depth_slack(bench: ModuleType) -> None:
    """Twin rooms at 2x noise, seed 6: room B's doorway, seen from A's, verified as a loop whose implied
    move (1.68) fitted the drift bound while the bound's depth slack was 0.5 x the scene depth (1.85);
    that run closed 4 false loops (measured 2026-12-04). With the shipped max_correction_depth the
    bound is ~1.3: no false loop closes and the true one still does. (Not asserted: that 0.5 lets the
    false loop through, a 10 % margin in a 1071-frame run that another CPU's rounding may move.)"""
    case = bench.CASES["twin_tour"]
    seq = bench.make_case_sequence(case, 160, 120, None)
    noise = bench.scaled_noise(SimNoise.harsh(), 2.0)
    shipped = bench.node_config("tracks", True)
    assert shipped.loop.max_correction_depth == 0.2
    out = bench.run_once(case, seq, shipped, noise, 6)
    assert out["false_loops"] == 0 and out["loops"] >= 1, out["loops"]


def test_reloc_event_delay_counts_to_the_first_window_back_in_the_map(bench: ModuleType) -> None:
    """The delay ends at the newest frame of the first accepted window at or after the event posed in
    the pre-event segment: not at a new segment's windows, nor at a rejected one."""
    from types import SimpleNamespace

    from vggt_ros.slam.updates import WindowStats

    seq = SimpleNamespace(index_of=lambda s: s)  # stamps are frame indices here

    def stats(stamp: int, seg: int, state: str = "tracking", accepted: bool = True) -> WindowStats:
        return WindowStats(0, stamp, 16, 12, (0,), accepted, "", 1.0, 0.0, 0, 0, tracking_state=state,
                           segment_id=seg)

    ups = [stats(99, 0), stats(111, 1, "new_segment"), stats(123, 0, accepted=False), stats(135, 1),
           stats(147, 0, "relocalised"), stats(159, 0)]
    assert bench.reloc_event_delay(ups, seq, 100) == 47.0
    assert bench.reloc_event_delay(ups[:4], seq, 100) == float("inf")
    assert bench.reloc_event_delay([stats(99, 0), stats(111, 0)], seq, 100) == 11.0  # tracking resumed
    assert np.isnan(bench.reloc_event_delay(ups[1:], seq, 100))  # no window before the event


def test_map_scale_drift_reads_the_keyframes_depth_against_the_truth(bench: ModuleType) -> None:
    from types import SimpleNamespace

    from vggt_ros.sim.cases import CASES, make_case_sequence

    seq = make_case_sequence(CASES["figure8"], 64, 48, 60)
    st = 4

    def kf(i: int, k: int, seg: int, factor: float) -> SimpleNamespace:
        d = seq.image_truth(int(seq.stamps_ns[i])).depth[::st, ::st] * factor
        return SimpleNamespace(keyframe_id=k, segment_id=seg, stamp_ns=int(seq.stamps_ns[i]), depth_stride=st,
                               depth=d.astype(np.float32))

    # 20 keyframes whose depth scale grows linearly by 5 %: first 4 median 1 + 0.05 * 1.5 / 19, last 4
    # 1 + 0.05 * 17.5 / 19; a shorter segment with twice the scale and a keyframe without depth are ignored
    kfs = [kf(2 * k, k, 0, 1.0 + 0.05 * k / 19) for k in range(20)]
    kfs += [kf(50 + k, 20 + k, 1, 2.0) for k in range(5)]
    kfs.append(SimpleNamespace(keyframe_id=25, segment_id=0, stamp_ns=0, depth_stride=st, depth=None))
    expected = 100 * ((1 + 0.05 * 17.5 / 19) / (1 + 0.05 * 1.5 / 19) - 1)
    levels = bench.keyframe_scale_levels(kfs, seq)
    assert len(levels) == 20
    assert bench.map_scale_drift(levels) == pytest.approx(expected, abs=1e-3)  # 4.19 %
    assert np.isnan(bench.map_scale_drift(levels[:9]))  # < 10 keyframes


def test_map_scale_walk_is_the_rms_log_scale_change_over_30_keyframes(bench: ModuleType) -> None:
    from types import SimpleNamespace

    from vggt_ros.sim.cases import CASES, make_case_sequence

    seq = make_case_sequence(CASES["figure8"], 64, 48, 60)
    st = 4

    def kfs(levels: np.ndarray, seg: int = 0, first_id: int = 0) -> list[SimpleNamespace]:
        return [SimpleNamespace(keyframe_id=first_id + k, segment_id=seg, stamp_ns=int(seq.stamps_ns[k]),
                                depth_stride=st,
                                depth=(seq.image_truth(int(seq.stamps_ns[k])).depth[::st, ::st] * f).astype(
                                    np.float32))
                for k, f in enumerate(levels)]

    ramp = np.exp(0.001 * np.arange(50))  # the scale grows 0.1 % per keyframe: 3 % over 30
    levels = bench.keyframe_scale_levels(kfs(ramp), seq)
    np.testing.assert_allclose(levels, ramp, rtol=1e-5)
    assert bench.map_scale_walk(levels) == pytest.approx(3.0, abs=1e-3)
    # the end-to-end figure reads the same ramp as first vs last 10 keyframes: 4 % apart
    assert bench.map_scale_drift(levels) == pytest.approx(100 * (np.exp(0.04) - 1), abs=1e-3)
    # a constant offset is no walk; the longest segment is the one read
    assert bench.map_scale_walk(np.full(50, 1.3)) == 0.0
    mixed = bench.keyframe_scale_levels(kfs(np.full(45, 1.3)) + kfs(ramp[:41], seg=1, first_id=100), seq)
    np.testing.assert_allclose(mixed, 1.3, rtol=1e-5)
    # a 2 % step at keyframe 40: of the 20 pairs (k, k + 30), the 10 with k >= 10 straddle it -> RMS
    step = np.where(np.arange(50) < 40, 1.0, 1.02)
    assert bench.map_scale_walk(step) == pytest.approx(100 * np.log(1.02) * np.sqrt(0.5), abs=1e-12)
    assert np.isnan(bench.map_scale_walk(ramp[:39]))  # < 30 + 10 keyframes


def test_sim_sets_a_noise_field_of_the_1x_set(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main(["--cases", "figure8", "--frames", "40", "--seeds", "0", "--noise", "1",
                       "--loop-closure", "on", "--no-baseline", "--sim", "depth_bias_shared=0.7"]) == 0
    assert "depth_bias_shared=0.7" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--cases", "figure8", "--sim", "no_such_field=1"])


def test_a_loop_is_false_when_its_images_share_no_view_not_when_its_cameras_are_far_apart(
        bench: ModuleType) -> None:
    """Dropouts case: frame 585 of the figure-eight looks along the view of frame 287 from 4.6 m closer
    (a true match); frame 585 against frame 480 (1.9 m away, turned 46 deg) shares nothing."""
    from vggt_ros.sim.cases import dropout_keep
    from vggt_ros.slam.updates import LoopClosure

    seq = bench.make_case_sequence(bench.CASES["dropouts"], 160, 120, None)
    kept = np.flatnonzero(dropout_keep())
    idx = {f: int(np.searchsorted(kept, f)) for f in (287, 480, 585)}
    assert all(kept[i] == f for f, i in idx.items())
    assert np.linalg.norm(seq.poses[idx[585]][:3, 3] - seq.poses[idx[287]][:3, 3]) > 4.0  # "> 1 m": false

    def loop(a: int, b: int) -> LoopClosure:
        s = seq.stamps_ns
        return LoopClosure(int(s[idx[a]]), 1, 0, int(s[idx[b]]), 0.4, 500, 1, 0.0, 0.0, 1.0)

    assert bench._loop_events([loop(585, 287)], seq) == (1, 0)
    assert bench._loop_events([loop(585, 287), loop(585, 480)], seq) == (2, 1)


@pytest.mark.slow  # ~15 s: 460 frames
def test_dropouts_relocalise_after_the_two_second_burst(bench: ModuleType) -> None:
    """2 s of frames missing while the camera moves: the new segment sees the figure-eight's crossing from
    4 m closer than the map did; the descriptor ranks it first at 0.41, under reloc_min_score. The best
    other-segment candidate is verified anyway: relocalised 23 frames after the burst (seed 0, harsh 1x;
    before: 143, only when the path came back to its start)."""
    case = bench.CASES["dropouts"]
    seq = bench.make_case_sequence(case, 160, 120, 460)
    out = bench.run_once(case, seq, bench.node_config("tracks", True), SimNoise.harsh(), 0)
    assert out["reloc_event"] <= 30 and out["false_loops"] == 0 and out["loops"] >= 1
    assert out["posed_pct"] == 100.0 and not out["stuck"]


@pytest.mark.slow  # ~10 s: 400 frames
def test_a_turn_in_place_facing_a_pillar_keeps_the_maps_scale(bench: ModuleType) -> None:
    """A full turn in place starting and ending 0.35 m from a pillar, twice the harsh noise, seed 1: a window
    near the end of the turn got a robust Sim(3) 49 % under its anchors' depth ratio, the Sim(3) scale was
    kept and the map's scale halved from there on (map scale drift 51 %, ATE 5.2 %, loop closure off). The
    depth ratio now always sets the scale (stitching.with_depth_scale)."""
    case = bench.CASES["spin"]
    seq = bench.make_case_sequence(case, 160, 120, 400)
    noise = bench.scaled_noise(SimNoise.harsh(), 2.0)
    out = bench.run_once(case, seq, bench.node_config("tracks", False), noise, 1)
    levels = out["map_levels"]
    steps = np.abs(np.diff(np.log(levels[np.isfinite(levels)])))
    assert steps.max() < 0.1  # no keyframe's scale 10 % off the one before (the halving was a 0.69 step)
    assert out["posed_pct"] == 100.0 and out["segments"] == 1


def _standing_run(bench: ModuleType, standstill_max_change: float) -> tuple[Any, np.ndarray, list[int]]:
    """The figure-eight stopped 5 s 0.35 m from a pillar (case stop_and_go, up to 70 frames after the
    stop), seed 0, harsh 1x, shipped defaults but the hold's threshold: (pipeline, final poses (N,4,4),
    frame indices emitted in order)."""
    from vggt_ros.sim.cases import STOP_AT, STOP_FRAMES
    from vggt_ros.slam.pipeline import Pipeline

    case = bench.CASES["stop_and_go"]
    seq = bench.make_case_sequence(case, 160, 120, STOP_AT + STOP_FRAMES + 70)
    cfg = bench.node_config("tracks", True, {"standstill_max_change": standstill_max_change})
    p = Pipeline(bench.make_case_predictor(case, seq, SimNoise.harsh(), 0), cfg)
    posed: list[int] = []
    for i in range(len(seq)):
        posed += [u.frame_index for u in p.push(seq[i]) if type(u).__name__ == "FramePose"]
    posed += [u.frame_index for u in p.flush() if type(u).__name__ == "FramePose"]
    assert posed == list(range(len(seq)))  # every frame posed once, in order
    return p, p.trajectory()[1], posed


@pytest.mark.slow  # ~12 s: two runs of 370 frames
def test_a_camera_standing_at_close_range_holds_still_and_adds_no_keyframes(bench: ModuleType) -> None:
    """Standing 5 s at 0.35 m, each window's pose error is all that moves: with the standstill hold off
    the standing frames jittered by more than the moving frames' steps (median 0.010 against 0.007 map
    units) and every jitter past max_motion_rel used to make a keyframe (46 in 150 frames, the map's
    scale walking with them); the parallax gate (min_motion_parallax_deg) stops that. With the hold (the
    shipped default) the 150 frames after the stop's first show its view unchanged: they stand at its
    pose, refined by their mean, and none becomes a keyframe."""
    from vggt_ros.sim.cases import STOP_AT, STOP_FRAMES

    def standing(p: Any) -> list[int]:
        return [k.frame_index for k in p.keyframes.keyframes
                if STOP_AT < k.frame_index <= STOP_AT + STOP_FRAMES]

    stop = slice(STOP_AT, STOP_AT + STOP_FRAMES + 1)  # frame STOP_AT + STOP_FRAMES resumes from the same pose
    off, T_off, _ = _standing_run(bench, 0.0)
    assert len(standing(off)) <= 3 and off.counters.frames_held == 0  # the parallax gate (41 without it)
    jitter = np.linalg.norm(np.diff(T_off[stop, :3, 3], axis=0), axis=1)
    on, T_on, _ = _standing_run(bench, 1.0)
    assert on.counters.frames_held == STOP_FRAMES and not standing(on)
    steps = np.linalg.norm(np.diff(T_on[stop, :3, 3], axis=0), axis=1)
    assert np.median(steps) < np.median(jitter) / 20  # 0.00007 against 0.010
    assert steps[10:].max() < np.median(jitter) / 2  # the mean settles within 10 frames
    moving = np.linalg.norm(np.diff(T_on[:STOP_AT + 1, :3, 3], axis=0), axis=1)
    assert np.all(moving > 0)  # before the stop every frame has its own pose


def _frozen_run(bench: ModuleType, refuse: bool) -> tuple[Any, dict[int, np.ndarray], Any]:
    """The 3-lap loop's first 220 frames with frames 100-129 frozen (repeating frame 99 while the camera
    moves on), seed 0, harsh 1x, shipped defaults but refuse_repeated_images: (pipeline, final pose (4,4)
    by frame index, sequence)."""
    from vggt_ros.sim.sequence import Cover
    from vggt_ros.slam.pipeline import Pipeline

    case = dataclasses.replace(bench.CASES["covered_frozen"], covers=(Cover(100, 30, "frozen"),))
    seq = bench.make_case_sequence(case, 160, 120, 220)
    cfg = bench.node_config("tracks", True, {"refuse_repeated_images": refuse})
    p = Pipeline(bench.make_case_predictor(case, seq, SimNoise.harsh(), 0), cfg)
    for i in range(len(seq)):
        p.push(seq[i])
    p.flush()
    stamps, T = p.trajectory()
    return p, {seq.index_of(int(s)): Ti for s, Ti in zip(stamps, T)}, seq


@pytest.mark.slow  # ~10 s: two runs of 220 frames
def test_a_frozen_driver_is_refused_not_posed_standing_while_the_camera_moves(bench: ModuleType) -> None:
    """A stalled driver re-sends frame 99 for 1 s while the camera moves 1.25 m on. Shipped: the 30 repeats
    are refused at the door ("repeated_image", counted), none is posed, and every other frame is. Without
    the check they passed the standstill hold as a standing camera: posed within a hair of frame 99 while
    the true camera was up to 1.25 m away (2.5 cm from frame 99, seed 0: what TF would have published)."""
    p, poses, seq = _frozen_run(bench, True)
    frozen = set(range(100, 130))
    assert p.counters.frames_refused["repeated_image"] == 30
    assert not frozen & set(poses) and set(poses) == set(range(220)) - frozen
    moved = np.linalg.norm(seq.poses[129, :3, 3] - seq.poses[99, :3, 3])
    assert moved > 1.0
    q, held, _ = _frozen_run(bench, False)
    assert q.counters.frames_refused["repeated_image"] == 0 and set(held) == set(range(220))
    assert q.counters.frames_held >= 29
    def centre(i: int) -> np.ndarray:
        return held[i][:3, 3]

    true_span = np.linalg.norm(seq.poses[219, :3, 3] - seq.poses[0, :3, 3])
    scale = np.linalg.norm(centre(219) - centre(0)) / true_span  # map units per metre
    still = max(np.linalg.norm(centre(i) - centre(99)) for i in frozen) / scale  # metres
    assert still < 0.1 * moved


def test_a_recovered_window_keeps_the_maps_scale(bench: ModuleType) -> None:
    """The figure-eight five times faster, seed 0, harsh 1x: window 10's tracks do not fit the map, it is
    re-predicted alone and continues the segment. Its scale used to be the last posed camera's median depth
    over the new frame 0's, two different views (far walls, then the pillar): the map's scale fell 7.3x
    from there (map scale drift 86 %, ATE 3.6 %). It is now carried from the failed prediction's anchors
    through the same frames' depth (stitching.rescale_through)."""
    case = bench.CASES["fast"]
    seq = bench.make_case_sequence(case, 160, 120)
    out = bench.run_once(case, seq, bench.node_config("tracks", True), SimNoise.harsh(), 0)
    levels = out["map_levels"]
    steps = np.abs(np.diff(np.log(levels[np.isfinite(levels)])))
    assert steps.max() < 0.1  # the fall was a 2.0 log step
    assert out["posed_pct"] == 100.0 and out["ate_pct"] < 1.5


def _orientation_jumps(bench: ModuleType, max_pnp_sigma_deg: float, anchor_links: bool = True) -> np.ndarray:
    """open_eight, first 260 frames, seed 5, harsh 1x, loop closure off, shipped defaults but the PnP
    orientation check (and the anchor links): (N-1,) the error (deg) of each step's relative rotation
    against the truth's."""
    from vggt_ros.geometry.frames import T_BODY_OPTICAL
    from vggt_ros.geometry.se3 import rotation_angle

    case = bench.CASES["open_eight"]
    seq = bench.make_case_sequence(case, 160, 120, 260)
    cfg = bench.node_config("tracks", False)
    stitch = dataclasses.replace(cfg.stitch, max_pnp_sigma_deg=max_pnp_sigma_deg, anchor_links=anchor_links)
    cfg = dataclasses.replace(cfg, stitch=stitch)
    out = bench.run_once(case, seq, cfg, SimNoise.harsh(), 5)
    assert out["posed_pct"] == 100.0
    stamps = sorted(out["poses"], key=seq.index_of)
    R_est = [(out["poses"][s][0] @ T_BODY_OPTICAL)[:3, :3] for s in stamps]
    R_true = [seq.poses[seq.index_of(s)][:3, :3] for s in stamps]
    return np.array([np.degrees(rotation_angle((R_true[k].T @ R_true[k + 1]).T @ (R_est[k].T @ R_est[k + 1])))
                     for k in range(len(stamps) - 1)])


@pytest.mark.slow  # ~10 s: two runs of 260 frames
def test_a_pnp_pose_on_a_few_close_tracks_does_not_bend_the_path(bench: ModuleType) -> None:
    """The figure-eight begun at its left lobe passes the -x pillar at frame ~183 on a young map: the
    window's last frame saw 19 tracks on the pillar, its PnP pose fitted them 11.5 deg away from the
    network's (inside max_pnp_deviation_deg) with an orientation uncertainty of 8.7 deg, 13.4 deg
    wrong; it became the next windows' gauge keyframe and the path after it turned with it (ATE 1.24 %
    of the 600 frames, against 0.28 % now). max_pnp_sigma_deg (shipped 2) keeps the network's pose there.
    The anchor links (StitchConfig.anchor_links, shipped) also undo part of such a bend on their own: the
    next windows measure the bent keyframe again and the local solve turns it back a little (check off:
    13.0 deg; 5.2 deg while a link's camera centre was held to 1e-4 of the depth, which made the links
    turn their disagreements into scale: loop_closure.LINK_MIN_TRANS_REL). That was seed 2; since the older
    anchors' depth joined the tracked points (stitching.track_depth_samples) it bent 6.1 deg, and seed 11
    11.0; since the last anchor slot went to an older keyframe (KeyframeConfig.long_anchor_rel) seed 11
    bends 3.8 deg, and of seeds 0-19 only seed 5 still bends by more than 8 deg without the check (10.3
    deg at frame 181, the same pillar pass; 3.7 deg with the check, 3.7 with the links alone; every
    other step of every seed <= 7.4 deg, most <= 4.6): this test's seed now."""
    unchecked = _orientation_jumps(bench, 0.0, anchor_links=False)
    assert unchecked.max() > 8.0 and 170 <= unchecked.argmax() <= 195  # the bend at the pass: 10.3 deg
    checked = _orientation_jumps(bench, StitchConfig().max_pnp_sigma_deg)
    assert checked.max() < 6.0  # 3.7: a network pose's own error (1.2 deg RMS per frame at 1x)
    linked = _orientation_jumps(bench, 0.0)
    assert linked.max() < 0.9 * unchecked.max()
